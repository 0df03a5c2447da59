// libFuzzer target: arbitrary bytes as a chat-completions body through
// edge_request_parse, then the Job protobuf of an accepted request, or the JSON error
// body of a refused one. Invariants beyond "no crash": error bodies are valid UTF-8.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "reply.h"
#include "utf8.h"

static const char *s_conf =
    "edge\n"
    "    max_body = 65536\n"
    "models\n"
    "    fast-sim\n"
    "        provider = sim\n"
    "    slow-sim\n"
    "        provider = sim\n"
    "        latency_ms = 200\n"
    "    flaky-sim\n"
    "        provider = sim\n"
    "        fail_rate = 0.5\n"
    "groups\n"
    "    quick\n"
    "        targets = \"fast-sim, slow-sim\"\n"
    "    careful\n"
    "        policy = fallback\n"
    "        targets = \"flaky-sim, slow-sim\"\n"
    "        hedge_delay_ms = 150\n"
    "        deadline_ms = 5000\n"
    "        ttft_timeout_ms = 800\n"
    "    steady\n"
    "        policy = hedge\n"
    "        targets = \"flaky-sim, fast-sim\"\n"
    "        hedge_delay_ms = auto\n";

//  libFuzzer's entry points
int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static cfg_t *s_cfg;

//  Names the broker would report live (agents): anything under "agent/".
static bool s_live (void *arg, const char *name)
{
    (void) arg;
    return strncmp (name, "agent/", 6) == 0;
}

int LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    char err[256];
    s_cfg = cfg_parse (s_conf, "fuzz", err, sizeof err);
    if (!s_cfg) {
        fprintf (stderr, "fuzz_request: %s\n", err);
        abort ();
    }
    return 0;
}

//  An accepted job names only known models, and its protobuf round-trips.
static void s_accepted (edge_job_t *job)
{
    if (!job->payload || job->ntargets == 0 || job->ntargets > CFG_TARGETS_MAX
        || (job->include_usage && !job->stream) || job->policy > CFG_POLICY_FALLBACK)
        abort ();
    for (size_t i = 0; i < job->ntargets; i++)
        if (!cfg_model (s_cfg, job->targets[i]) && !s_live (NULL, job->targets[i]))
            abort ();
    Aigw__Job pb;
    edge_request_to_pb (job, 1, &pb);
    size_t size = aigw__job__get_packed_size (&pb);
    uint8_t *buf = malloc (size ? size : 1);
    if (!buf)
        return;
    if (aigw__job__pack (&pb, buf) != size)
        abort ();
    Aigw__Job *back = aigw__job__unpack (NULL, size, buf);
    if (!back || back->n_targets != job->ntargets)
        abort ();
    aigw__job__free_unpacked (back, NULL);
    free (buf);
}

//  A refusal has an HTTP error status, a code, and a message and body in valid UTF-8.
static void s_refused (const edge_err_t *err)
{
    if (err->status < 400 || err->status > 599 || !err->code)
        abort ();
    if (!utf8_valid (err->message, strlen (err->message)))
        abort ();
    edge_reply_t reply;
    if (edge_reply_simple (&reply, err->status, err->code, err->message))
        return;
    if (!utf8_valid (reply.body, reply.len))
        abort ();
    edge_reply_reset (&reply);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    edge_job_t job;
    edge_err_t err;
    if (edge_request_parse (s_cfg, (const char *) data, size, s_live, NULL, &job, &err) == 0)
        s_accepted (&job);
    else
        s_refused (&err);
    edge_request_reset (&job);
    return 0;
}
