// Worker event-loop tests: the real loop in a thread against the fake broker (driven, the
// worker side; two of them for a worker with two brokers) on tcp loopback, with the
// Python fake upstream (tests/fakes) standing in for OpenAI, Anthropic and Ollama
// upstreams (whole and streamed replies, cut and stalled streams, error statuses).
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aclock.h"
#include "aigw.pb-c.h"
#include "fake_broker.h"
#include "fake_upstream.h"
#include "log.h"
#include "wire.h"
#include "worker.h"

//  ---------------------------------------------------------------- fake upstream
//  The fake answers by the upstream model named in the request body (its script table,
//  built by s_script): up-ok, up-500, up-garbage, up-big (Content-Length too large),
//  up-bigstream (close-delimited), up-stall (never answers), up-partial (headers and
//  part of the body, then nothing), up-nousage (a reply without usage); streams: up-sse
//  (OpenAI SSE in pieces split mid-line), up-sse-cut, up-sse-stall, up-sse-nofin,
//  up-sse-err, up-429; up-anth (Anthropic), up-olla (Ollama); error statuses: up-e400,
//  up-e401, up-e429 (retry-after: 3), up-e503 (a date in the past), up-anth-429
//  (Anthropic rate_limit_error). It logs every connection and request.

static fake_upstream_t *s_up;

static const char *H_OK =
    "{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"up-ok\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hello\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,"
    "\"total_tokens\":7}}";

static const char *H_NOUSAGE =
    "{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"up-ok\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"hello\"},"
    "\"finish_reason\":\"stop\"}]}";

#define H_PRE "{\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-sse\"," \
              "\"choices\":[{\"index\":0,\"delta\":"
#define H_C_HELLO H_PRE "{\"content\":\"Hello\"},\"finish_reason\":null}]}"
#define H_C_WORLD H_PRE "{\"content\":\" world\"},\"finish_reason\":null}]}"
#define H_C_TOOL H_PRE "{\"tool_calls\":[{\"index\":0,\"id\":\"call_7\",\"type\":\"function\"," \
                 "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}"
#define H_C_FINISH H_PRE "{},\"finish_reason\":\"tool_calls\"}]}"

//  OpenAI stream in pieces; a piece boundary falls inside the first content line.
static const char *const H_SSE[] = {
    "data: " H_PRE "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}"
    "\n\ndata: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"crea",
    "ted\":1,\"model\":\"up-sse\",\"choices\":[{\"index\":0,\"delta\":"
    "{\"content\":\"Hello\"},\"finish_reason\":null}]}\r\n\r\n: ping\r\n\r\n",
    "data: " H_C_WORLD "\n\n",
    "data: " H_C_TOOL "\n\ndata: " H_C_FINISH "\n\n",
    "data: {\"id\":\"chatcmpl-s\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
    "\"completion_tokens\":2,\"total_tokens\":6}}\n\ndata: [DONE]\n\n",
    NULL
};

static const char *H_ANTH_FULL =
    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"up-anth\","
    "\"content\":[{\"type\":\"text\",\"text\":\"Hi from claude\"}],\"stop_reason\":\"max_tokens\","
    "\"usage\":{\"input_tokens\":9,\"output_tokens\":3}}";

static const char *const H_ANTH_SSE[] = {
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\","
    "\"model\":\"up-anth\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
    "\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
    "\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    NULL
};

static const char *H_OLLA_FULL =
    "{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi llama\"},"
    "\"done_reason\":\"stop\",\"done\":true,\"prompt_eval_count\":7,\"eval_count\":2}";

//  NDJSON lines split across pieces.
static const char *const H_OLLA_STREAM[] = {
    "{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"do",
    "ne\":false}\n{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":"
    "\" llama\"},\"done\":false}\n",
    "{\"model\":\"up-olla\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"done_reason\":\"stop\",\"done\":true,\"prompt_eval_count\":7,\"eval_count\":2}\n",
    NULL
};

static const char *const H_SSE_HELLO[] = { "data: " H_C_HELLO "\n\n", NULL };
static const char *const H_SSE_CUT[] = {
    "data: " H_C_HELLO "\n\n", "data: " H_C_WORLD "\n\n", NULL
};
static const char *const H_SSE_NOFIN[] = {
    "data: " H_C_HELLO "\n\n", "data: " H_C_FINISH "\n\ndata: [DONE]\n\n", NULL
};
static const char *const H_SSE_ERR[] = {
    "data: {\"error\":{\"message\":\"model overloaded\"}}\n\n", NULL
};

//  An entry of the script table: status (0: 200) and body (NULL: none).
static cJSON *s_entry (cJSON *table, const char *model, int status, const char *body)
{
    cJSON *e = cJSON_AddObjectToObject (table, model);
    if (status)
        cJSON_AddNumberToObject (e, "status", status);
    if (body)
        cJSON_AddStringToObject (e, "body", body);
    return e;
}

//  A streamed reply sent as these pieces, each read on its own (3 ms apart).
static void s_pieces (cJSON *e, const char *const *pieces)
{
    cJSON *list = cJSON_AddArrayToObject (e, "stream_body");
    for (; *pieces; pieces++)
        cJSON_AddItemToArray (list, cJSON_CreateString (*pieces));
    cJSON_AddNumberToObject (e, "token_interval_ms", 3);
}

//  Response headers: name, value pairs, NULL-terminated.
static void s_headers (cJSON *e, const char *const *kv)
{
    cJSON *h = cJSON_AddObjectToObject (e, "headers");
    for (; kv[0]; kv += 2)
        cJSON_AddStringToObject (h, kv[0], kv[1]);
}

//  The fake upstream's script table (caller frees the text).
static char *s_script (void)
{
    cJSON *t = cJSON_CreateObject ();
    s_entry (t, "up-ok", 0, H_OK);
    s_entry (t, "up-nousage", 0, H_NOUSAGE);
    s_entry (t, "up-500", 500, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}");
    s_entry (t, "up-garbage", 0, "<html>not json</html>");
    cJSON_AddNumberToObject (s_entry (t, "up-big", 0, NULL), "body_bytes", 100000);
    cJSON *e = s_entry (t, "up-bigstream", 0, NULL);
    cJSON_AddNumberToObject (e, "body_bytes", 100000);
    cJSON_AddBoolToObject (e, "close_delimited", true);
    cJSON_AddBoolToObject (s_entry (t, "up-stall", 0, NULL), "stall", true);
    cJSON_AddNumberToObject (s_entry (t, "up-partial", 0, H_OK), "stall_after_bytes", 10);
    s_pieces (s_entry (t, "up-sse", 0, NULL), H_SSE);
    e = s_entry (t, "up-sse-cut", 0, NULL);
    s_pieces (e, H_SSE_CUT);
    cJSON_AddNumberToObject (e, "cut_after_chunks", 2);
    e = s_entry (t, "up-sse-stall", 0, NULL);
    s_pieces (e, H_SSE_HELLO);
    cJSON_AddNumberToObject (e, "stall_after_chunks", 1);
    e = s_entry (t, "up-sse-nofin", 0, NULL);
    s_pieces (e, H_SSE_NOFIN);              // [DONE], but the chunked body never ends
    cJSON_AddNumberToObject (e, "stall_after_chunks", 2);
    s_pieces (s_entry (t, "up-sse-err", 0, NULL), H_SSE_ERR);
    s_entry (t, "up-429", 429, "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}");
    s_pieces (s_entry (t, "up-anth", 0, H_ANTH_FULL), H_ANTH_SSE);
    s_pieces (s_entry (t, "up-olla", 0, H_OLLA_FULL), H_OLLA_STREAM);
    s_entry (t, "up-e400", 400,
             "{\"error\":{\"message\":\"too long\",\"type\":\"invalid_request_error\","
             "\"code\":\"context_length_exceeded\"}}");
    s_headers (s_entry (t, "up-e401", 401,
                        "{\"error\":{\"message\":\"Incorrect API key\","
                        "\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}"),
               (const char *[]) { "Retry-After", "5", NULL });
    s_headers (s_entry (t, "up-e429", 429,
                        "{\"error\":{\"message\":\"Rate limit reached\","
                        "\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}"),
               (const char *[]) { "retry-after", "3", NULL });
    s_headers (s_entry (t, "up-e503", 503,
                        "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\","
                        "\"code\":null}}"),
               (const char *[]) { "Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT", NULL });
    s_headers (s_entry (t, "up-anth-429", 429,
                        "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                        "\"message\":\"Number of request tokens has exceeded your rate limit\"}}"),
               (const char *[]) { "Retry-After", "1.5", "retry-after-ms", "250", NULL });
    s_entry (t, "*", 404, "{\"error\":{\"message\":\"no such model\"}}");
    char *text = cJSON_PrintUnformatted (t);
    cJSON_Delete (t);
    return text;
}

//  A counter of the fake's log: "connections", "requests", "stalled_closed" (a stalled
//  answer whose client closed the connection).
static int s_count (const char *counter)
{
    long v = fake_upstream_count (s_up, counter);
    assert_true (v >= 0);
    return (int) v;
}

//  Wait until counter reaches at least want; returns the value seen.
static int s_wait (const char *counter, int want, int timeout_ms)
{
    long v = fake_upstream_wait (s_up, counter, want, timeout_ms);
    assert_true (v >= 0);
    return (int) v;
}

//  The last request's head and body as the fake received them.
typedef struct {
    char head [4096];
    char body [8192];
} s_req_t;

static s_req_t s_last (void)
{
    s_req_t r;
    assert_int_equal (fake_upstream_last (s_up, r.head, sizeof r.head, r.body, sizeof r.body), 0);
    return r;
}

//  When the fake saw the client close the last stalled answer (CLOCK_MONOTONIC µs).
static int64_t s_stall_closed_us (void)
{
    cJSON *reqs = fake_upstream_requests (s_up);
    assert_non_null (reqs);
    int64_t us = -1;
    for (int i = cJSON_GetArraySize (reqs) - 1; i >= 0 && us < 0; i--) {
        cJSON *r = cJSON_GetArrayItem (reqs, i);
        const char *outcome = cJSON_GetStringValue (cJSON_GetObjectItem (r, "outcome"));
        if (outcome && strcmp (outcome, "stalled_closed") == 0)
            us = (int64_t) (cJSON_GetNumberValue (cJSON_GetObjectItem (r, "finished_ns")) / 1000);
    }
    cJSON_Delete (reqs);
    return us;
}

//  ---------------------------------------------------------------- fake broker
//  The fake broker, driven: job ids are attempt ids + 1000.

//  Next message of any command within timeout_ms. 0, or -1 on timeout.
static int b_recv_any (fake_broker_t *b, int timeout_ms, wire_msg_t *m)
{
    int rc = fake_broker_recv (b, timeout_ms, m);
    assert_int_not_equal (rc, -2);
    return rc;
}

//  Next message that is not a HEARTBEAT.
static int b_recv (fake_broker_t *b, int timeout_ms, wire_msg_t *m)
{
    int rc = fake_broker_next (b, timeout_ms, m);
    assert_int_not_equal (rc, -2);
    return rc;
}

//  The next message but HEARTBEATs must be cmd; returns its body (caller frees).
static void *b_expect (fake_broker_t *b, uint8_t cmd, const ProtobufCMessageDescriptor *desc,
                       int timeout_ms)
{
    void *body = fake_broker_expect (b, cmd, desc, timeout_ms);
    if (!body)
        fail_msg ("%s", fake_peer_why ());
    return body;
}

static void b_send_task_ex (fake_broker_t *b, uint64_t attempt, const char *target,
                            const char *payload, uint32_t deadline_ms, bool stream)
{
    assert_int_equal (fake_broker_task (b, attempt + 1000, attempt, target, payload, deadline_ms,
                                        stream), 0);
}

static void b_send_task (fake_broker_t *b, uint64_t attempt, const char *target, const char *payload,
                         uint32_t deadline_ms)
{
    b_send_task_ex (b, attempt, target, payload, deadline_ms, false);
}

static void b_send_cancel (fake_broker_t *b, uint64_t attempt)
{
    assert_int_equal (fake_broker_cancel (b, attempt), 0);
}

static void b_send_cmd (fake_broker_t *b, uint8_t cmd)
{
    assert_int_equal (fake_broker_send (b, cmd, NULL, NULL, 0), 0);
}

//  Wait for a HEARTBEAT that counts at least n attempts in flight: the worker has
//  taken the TASKs sent before. Other messages are dropped.
static void b_wait_in_flight (fake_broker_t *b, uint32_t n)
{
    for (;;) {
        wire_msg_t m;
        assert_int_equal (b_recv_any (b, 2000, &m), 0);
        if (m.cmd == WIRE_W_HEARTBEAT) {
            Aigw__WorkerStats *s = (Aigw__WorkerStats *)
                wire_unpack (&aigw__worker_stats__descriptor, &m.body);
            assert_non_null (s);
            bool done = s->in_flight >= n;
            protobuf_c_message_free_unpacked (&s->base, NULL);
            if (done) {
                wire_msg_close (&m);
                return;
            }
        }
        wire_msg_close (&m);
    }
}

//  Expect READY (HEARTBEATs skipped); returns the capacity it offers.
static uint32_t b_expect_ready (fake_broker_t *b)
{
    Aigw__WorkerHello *h = b_expect (b, WIRE_W_READY, &aigw__worker_hello__descriptor, 3000);
    assert_string_equal (h->worker_id, "test-worker");
    uint32_t capacity = h->capacity;
    protobuf_c_message_free_unpacked (&h->base, NULL);
    return capacity;
}

//  Wait for a HEARTBEAT offering capacity, with in_flight attempts of this broker
//  running; HEARTBEATs before it are skipped, any other message fails the test.
static void b_wait_share (fake_broker_t *b, uint32_t capacity, uint32_t in_flight)
{
    int64_t until = aclock_now_ms () + 3000;
    for (;;) {
        wire_msg_t m;
        int64_t left = until - aclock_now_ms ();
        if (left <= 0 || b_recv_any (b, (int) left, &m))
            fail_msg ("no HEARTBEAT with capacity %u and in_flight %u", capacity, in_flight);
        assert_int_equal (m.cmd, WIRE_W_HEARTBEAT);
        Aigw__WorkerStats *s = (Aigw__WorkerStats *)
            wire_unpack (&aigw__worker_stats__descriptor, &m.body);
        assert_non_null (s);
        bool done = s->has_capacity && s->capacity == capacity && s->in_flight == in_flight;
        protobuf_c_message_free_unpacked (&s->base, NULL);
        wire_msg_close (&m);
        if (done)
            return;
    }
}

//  Expect an ERROR for attempt; returns its code, copies the message.
static int b_expect_error (fake_broker_t *b, uint64_t attempt, int timeout_ms, char *msg, size_t msglen,
                           uint32_t *status)
{
    Aigw__Error *e = b_expect (b, WIRE_W_ERROR, &aigw__error__descriptor, timeout_ms);
    assert_int_equal (e->attempt_id, attempt);
    assert_int_equal (e->job_id, attempt + 1000);
    int code = e->code;
    if (msg)
        snprintf (msg, msglen, "%s", e->message ? e->message : "");
    if (status)
        *status = e->has_upstream_status ? e->upstream_status : 0;
    protobuf_c_message_free_unpacked (&e->base, NULL);
    return code;
}

//  Expect an ERROR for attempt; returns it unpacked (caller frees).
static Aigw__Error *b_expect_error_msg (fake_broker_t *b, uint64_t attempt, int timeout_ms)
{
    Aigw__Error *e = b_expect (b, WIRE_W_ERROR, &aigw__error__descriptor, timeout_ms);
    assert_int_equal (e->attempt_id, attempt);
    assert_int_equal (e->job_id, attempt + 1000);
    return e;
}

//  Expect an ERROR for attempt with usage; returns its code, copies the usage.
static int b_expect_error_usage (fake_broker_t *b, uint64_t attempt, int timeout_ms, Aigw__Usage *usage)
{
    Aigw__Error *e = b_expect (b, WIRE_W_ERROR, &aigw__error__descriptor, timeout_ms);
    assert_int_equal (e->attempt_id, attempt);
    assert_non_null (e->usage);
    assert_true (e->usage->has_prompt_tokens && e->usage->has_completion_tokens);
    *usage = *e->usage;
    int code = e->code;
    protobuf_c_message_free_unpacked (&e->base, NULL);
    return code;
}

//  Expect a CHUNK for attempt with the given seq; returns it (caller frees).
static Aigw__Chunk *b_expect_chunk (fake_broker_t *b, uint64_t attempt, uint32_t seq, int timeout_ms)
{
    Aigw__Chunk *c = b_expect (b, WIRE_W_CHUNK, &aigw__chunk__descriptor, timeout_ms);
    assert_int_equal (c->attempt_id, attempt);
    assert_int_equal (c->job_id, attempt + 1000);
    assert_true (c->has_seq);
    assert_int_equal (c->seq, seq);
    assert_true (c->has_delta_json);
    return c;
}

//  The content of a chunk's choices[0].delta ("" if none); checks the JSON shape
//  and that it carries a token (content, tool_calls or finish_reason).
static void b_chunk_content (const Aigw__Chunk *c, char *out, size_t outlen)
{
    cJSON *root = cJSON_ParseWithLength ((const char *) c->delta_json.data, c->delta_json.len);
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "object")),
                         "chat.completion.chunk");
    cJSON *ch = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "choices"), 0);
    cJSON *delta = cJSON_GetObjectItem (ch, "delta");
    const char *content = cJSON_GetStringValue (cJSON_GetObjectItem (delta, "content"));
    bool token = (content && *content) || cJSON_GetArraySize (cJSON_GetObjectItem (delta, "tool_calls"))
              || cJSON_IsString (cJSON_GetObjectItem (ch, "finish_reason"));
    assert_true (token);
    snprintf (out, outlen, "%s", content ? content : "");
    cJSON_Delete (root);
}

//  What a streamed attempt sent: CHUNKs (contents joined into text), then a
//  RESULT or an ERROR.
typedef struct {
    uint32_t chunks;
    char text [4096];
    Aigw__Result *result;       // owned, NULL if it ended in ERROR
    int code;                   // ERROR code, 0 for RESULT
    char msg [512];
    uint32_t status;
    int64_t first_us;           // when the first and the last CHUNK arrived
    int64_t last_us;
    bool has_usage;             // the ERROR's usage
    Aigw__Usage usage;
} b_stream_t;

static void b_collect_chunk (wire_msg_t *m, uint64_t attempt, b_stream_t *out, size_t *len)
{
    Aigw__Chunk *c = (Aigw__Chunk *) wire_unpack (&aigw__chunk__descriptor, &m->body);
    assert_non_null (c);
    assert_int_equal (c->attempt_id, attempt);
    assert_int_equal (c->job_id, attempt + 1000);
    assert_true (c->has_seq && c->has_delta_json);
    assert_int_equal (c->seq, out->chunks);
    char piece [1024];
    b_chunk_content (c, piece, sizeof piece);
    *len += (size_t) snprintf (out->text + *len, sizeof out->text - *len, "%s", piece);
    out->last_us = aclock_now_us ();
    if (out->chunks++ == 0)
        out->first_us = out->last_us;
    protobuf_c_message_free_unpacked (&c->base, NULL);
}

static void b_collect (fake_broker_t *b, uint64_t attempt, int timeout_ms, b_stream_t *out)
{
    memset (out, 0, sizeof *out);
    size_t len = 0;
    for (;;) {
        wire_msg_t m;
        assert_int_equal (b_recv (b, timeout_ms, &m), 0);
        if (m.cmd == WIRE_W_CHUNK) {
            b_collect_chunk (&m, attempt, out, &len);
            wire_msg_close (&m);
            continue;
        }
        if (m.cmd == WIRE_W_RESULT) {
            out->result = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m.body);
            assert_non_null (out->result);
            assert_int_equal (out->result->attempt_id, attempt);
            wire_msg_close (&m);
            return;
        }
        assert_int_equal (m.cmd, WIRE_W_ERROR);
        Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
        assert_non_null (e);
        assert_int_equal (e->attempt_id, attempt);
        out->code = e->code;
        out->status = e->has_upstream_status ? e->upstream_status : 0;
        out->has_usage = e->usage != NULL;
        if (e->usage)
            out->usage = *e->usage;
        snprintf (out->msg, sizeof out->msg, "%s", e->message ? e->message : "");
        protobuf_c_message_free_unpacked (&e->base, NULL);
        wire_msg_close (&m);
        return;
    }
}

//  The RESULT's choices[0].message.content, and its finish_reason.
static void b_result_message (const Aigw__Result *r, char *content, size_t len, char *finish,
                              size_t flen)
{
    cJSON *root = cJSON_ParseWithLength ((const char *) r->response_json.data, r->response_json.len);
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "object")), "chat.completion");
    cJSON *ch = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "choices"), 0);
    const char *c = cJSON_GetStringValue (cJSON_GetObjectItem (cJSON_GetObjectItem (ch, "message"),
                                                               "content"));
    snprintf (content, len, "%s", c ? c : "(null)");
    const char *fr = cJSON_GetStringValue (cJSON_GetObjectItem (ch, "finish_reason"));
    snprintf (finish, flen, "%s", fr ? fr : "(null)");
    cJSON_Delete (root);
}

//  Expect a RESULT for attempt; returns the unpacked Result (caller frees).
static Aigw__Result *b_expect_result (fake_broker_t *b, uint64_t attempt, int timeout_ms)
{
    Aigw__Result *r = b_expect (b, WIRE_W_RESULT, &aigw__result__descriptor, timeout_ms);
    assert_int_equal (r->attempt_id, attempt);
    assert_int_equal (r->job_id, attempt + 1000);
    return r;
}

//  ---------------------------------------------------------------- fixture

typedef struct {
    fake_broker_t *b;
    fake_broker_t *b2;          // the second broker (s_setup2), else NULL
    uint32_t liveness;          // broker/liveness for the worker, 0 = 3
    cfg_t *cfg;
    worker_t *w;
    pthread_t thread;
    int rc;
    worker_stats_t stats;       // filled by s_stop_worker
} fix_t;

static const char *REQ = "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"say hi please\"}],"
                         "\"stream\":true,\"tools\":[{\"type\":\"function\"}]}";

static void *s_worker_thread (void *arg)
{
    fix_t *f = arg;
    f->rc = worker_run (f->w);
    return NULL;
}

static void s_start_worker (fix_t *f, uint32_t capacity)
{
    char text [8192];
    int p = fake_upstream_port (s_up);
    snprintf (text, sizeof text,
        "broker\n    heartbeat_ms = 100\n    liveness = %u\n"
        "worker\n    capacity = 2\n"
        "models\n"
        "    sim-fast\n        provider = sim\n        latency_ms = 5\n        jitter = 0.3\n"
        "    sim-slow\n        provider = sim\n        latency_ms = 60000\n"
        "    sim-fail\n        provider = sim\n        latency_ms = 1\n        fail_rate = 1\n"
        "    later\n        provider = anthropic\n        base_url = http://127.0.0.1:1\n"
        "    sim-words\n        provider = sim\n        latency_ms = 5\n        tokens_per_s = 20\n"
        "        text = one two three\n"
        "    sim-midwords\n        provider = sim\n        latency_ms = 1\n        tokens_per_s = 20\n"
        "        text = a b c d e f\n"
        "    sim-slowwords\n        provider = sim\n        latency_ms = 1\n        tokens_per_s = 5\n"
        "        text = a b c d e f\n"
        "    oa-ok\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1/\n"
        "        upstream_model = up-ok\n        api_key_env = AIGW_TEST_WORKER_KEY\n"
        "    oa-500\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-500\n"
        "    oa-garbage\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-garbage\n"
        "    oa-big\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-big\n        max_response_bytes = 1024\n"
        "    oa-bigstream\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-bigstream\n        max_response_bytes = 1024\n"
        "    oa-stall\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-stall\n"
        "    oa-partial\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-partial\n"
        "    oa-nousage\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-nousage\n"
        "    oa-nokey\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        api_key_env = AIGW_TEST_WORKER_UNSET\n"
        "    oa-refused\n        provider = openai\n        base_url = http://127.0.0.1:1/v1\n"
        "    oa-sse\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse\n"
        "    oa-sse-cut\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-cut\n"
        "    oa-sse-stall\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-stall\n"
        "    oa-sse-nofin\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-nofin\n"
        "    oa-sse-err\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-sse-err\n"
        "    oa-429\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-429\n"
        "    an-ok\n        provider = anthropic\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-anth\n        api_key_env = AIGW_TEST_WORKER_KEY\n"
        "        max_tokens = 77\n"
        "    ol-ok\n        provider = ollama\n        base_url = http://127.0.0.1:%d\n"
        "        upstream_model = up-olla\n"
        "    oa-e400\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e400\n"
        "    oa-e401\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e401\n"
        "    oa-e429\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e429\n"
        "    oa-e503\n        provider = openai\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-e503\n"
        "    an-429\n        provider = anthropic\n        base_url = http://127.0.0.1:%d/v1\n"
        "        upstream_model = up-anth-429\n",
        f->liveness ? f->liveness : 3,
        p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p);
    char err [512];
    f->cfg = cfg_parse (text, "test", err, sizeof err);
    if (!f->cfg)
        fail_msg ("%s", err);
    char brokers [600];
    snprintf (brokers, sizeof brokers, "%s%s%s", fake_broker_endpoint (f->b), f->b2 ? "," : "",
              f->b2 ? fake_broker_endpoint (f->b2) : "");
    worker_opts_t opts = { .id = "test-worker", .broker = brokers, .capacity = capacity };
    f->w = worker_new (f->cfg, &opts, err, sizeof err);
    if (!f->w)
        fail_msg ("%s", err);
    assert_int_equal (pthread_create (&f->thread, NULL, s_worker_thread, f), 0);
}

static void s_stop_worker (fix_t *f)
{
    if (!f->w)
        return;
    worker_stop (f->w);
    pthread_join (f->thread, NULL);
    worker_stats (f->w, &f->stats);
    worker_destroy (&f->w);
    cfg_destroy (&f->cfg);
}

static int s_setup (void **state)
{
    fix_t *f = calloc (1, sizeof *f);
    f->b = fake_broker_new_driven ("tcp://127.0.0.1:*", WIRE_SIDE_WORKER);
    if (!f->b)
        return -1;
    *state = f;
    return 0;
}

//  Two brokers; a liveness of 5 s, so that only the socket events (not silence) can
//  tell the worker a broker is gone.
static int s_setup2 (void **state)
{
    if (s_setup (state))
        return -1;
    fix_t *f = *state;
    f->liveness = 50;
    f->b2 = fake_broker_new_driven ("tcp://127.0.0.1:*", WIRE_SIDE_WORKER);
    return f->b2 ? 0 : -1;
}

//  One broker, liveness 5 s (see s_setup2).
static int s_setup_long (void **state)
{
    if (s_setup (state))
        return -1;
    ((fix_t *) *state)->liveness = 50;
    return 0;
}

static int s_teardown (void **state)
{
    fix_t *f = *state;
    s_stop_worker (f);
    fake_broker_destroy (&f->b);
    fake_broker_destroy (&f->b2);
    free (f);
    return 0;
}

//  Start a worker and consume its READY.
static void s_ready (fix_t *f, uint32_t capacity)
{
    s_start_worker (f, capacity);
    wire_msg_t m;
    assert_int_equal (b_recv (f->b, 2000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    wire_msg_close (&m);
}

//  ---------------------------------------------------------------- tests

static void test_ready_then_result (void **state)
{
    fix_t *f = *state;
    s_start_worker (f, 0);
    wire_msg_t m;
    assert_int_equal (b_recv (f->b, 2000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    Aigw__WorkerHello *h = (Aigw__WorkerHello *) wire_unpack (&aigw__worker_hello__descriptor, &m.body);
    assert_non_null (h);
    assert_string_equal (h->worker_id, "test-worker");
    assert_int_equal (h->capacity, 2);      // from worker/capacity
    assert_int_equal (h->n_models, 30);
    assert_string_equal (h->models [0], "sim-fast");
    assert_true (h->has_pid && h->pid == (uint32_t) getpid ());
    assert_non_null (strstr (h->version, "aigw-worker"));
    protobuf_c_message_free_unpacked (&h->base, NULL);
    wire_msg_close (&m);

    b_send_task (f->b, 1, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 1, 2000);
    assert_string_equal (r->model, "sim-fast");
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 3);
    cJSON *root = cJSON_ParseWithLength ((const char *) r->response_json.data, r->response_json.len);
    assert_non_null (root);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "model")), "sim-fast");
    assert_int_equal (cJSON_GetArraySize (cJSON_GetObjectItem (root, "choices")), 1);
    cJSON_Delete (root);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  A clean stop says DISCONNECT
    s_stop_worker (f);
    assert_int_equal (f->rc, 0);
    assert_int_equal (b_recv (f->b, 1000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_DISCONNECT);
    wire_msg_close (&m);
}

static void test_refusals_and_failures (void **state)
{
    fix_t *f = *state;
    s_ready (f, 0);
    char msg [512];
    b_send_task (f->b, 2, "no-such-model", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 2, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL);
    b_send_task (f->b, 3, "later", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 3, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_string_equal (msg, "only function tools with a name are supported by anthropic");
    b_send_task (f->b, 4, "sim-fail", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 4, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "sim: injected failure");
    b_send_task (f->b, 5, "sim-fast", NULL, 0);
    assert_int_equal (b_expect_error (f->b, 5, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    b_send_task (f->b, 6, "sim-fast", "not json", 0);
    assert_int_equal (b_expect_error (f->b, 6, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    //  Malformed messages and an unknown CANCEL are dropped; the worker goes on
    assert_int_equal (fake_broker_send_frames (f->b, 1, (const void *[]) { "BOGUS!" },
                                               (size_t[]) { 6 }), 0);
    assert_int_equal (fake_broker_send (f->b, WIRE_W_TASK, NULL, "\xff\xff", 2), 0);
    assert_int_equal (fake_broker_send (f->b, WIRE_W_RESULT, NULL, NULL, 0), 0);
    b_send_cancel (f->b, 999);
    b_send_task (f->b, 7, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 7, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.malformed, 3);
    assert_int_equal (f->stats.unknown_cancels, 1);
    assert_int_equal (f->stats.rejected, 2);
    assert_int_equal (f->stats.completed, 1);
    assert_int_equal (f->rc, 0);
}

static void test_cancel_frees_slot (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char msg [512];
    b_send_task (f->b, 10, "sim-slow", REQ, 0);
    b_send_task (f->b, 11, "sim-slow", REQ, 0);
    b_send_task (f->b, 12, "sim-fast", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 12, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_OVERLOADED);
    assert_string_equal (msg, "worker full");
    b_send_cancel (f->b, 10);
    assert_int_equal (b_expect_error (f->b, 10, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    //  The slot is free: a new attempt runs
    b_send_task (f->b, 13, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 13, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  A second CANCEL for the same attempt is unknown now
    b_send_cancel (f->b, 10);
    b_send_cancel (f->b, 11);
    assert_int_equal (b_expect_error (f->b, 11, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    s_stop_worker (f);
    assert_int_equal (f->stats.cancelled, 2);
    assert_int_equal (f->stats.unknown_cancels, 1);
    assert_int_equal (f->stats.full, 1);
    assert_int_equal (f->stats.capacity_updates, 0);   // one broker: nothing extra sent
}

static void test_heartbeats_flow (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_send_task (f->b, 20, "sim-slow", REQ, 0);
    //  A HEARTBEAT with the worker's stats every heartbeat_ms (100). Six of them span five
    //  periods less the first one's delivery time: a worker that sent more often would
    //  get them out sooner.
    enum { BEATS = 6 };
    uint32_t in_flight = 99;
    int64_t first_us = 0, last_us = 0;
    for (int beats = 0; beats < BEATS;) {
        wire_msg_t m;
        assert_int_equal (b_recv_any (f->b, 2000, &m), 0);
        if (m.cmd == WIRE_W_HEARTBEAT) {
            Aigw__WorkerStats *s = (Aigw__WorkerStats *)
                wire_unpack (&aigw__worker_stats__descriptor, &m.body);
            assert_non_null (s);
            assert_int_equal (s->capacity, 2);
            in_flight = s->in_flight;
            protobuf_c_message_free_unpacked (&s->base, NULL);
            last_us = aclock_now_us ();
            if (beats++ == 0)
                first_us = last_us;
            b_send_cmd (f->b, WIRE_W_HEARTBEAT);     // keep the worker's liveness up
        }
        wire_msg_close (&m);
    }
    assert_true (last_us - first_us >= 250000);
    assert_int_equal (in_flight, 1);
    s_stop_worker (f);
    assert_int_equal (f->stats.connects, 1);        // no reconnect while the broker talks
}

static void test_deadline_ends_sim_attempt (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char msg [512];
    int64_t t0 = aclock_now_ms ();
    b_send_task (f->b, 30, "sim-slow", REQ, 50);
    assert_int_equal (b_expect_error (f->b, 30, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_TIMEOUT);
    int64_t took = aclock_now_ms () - t0;
    assert_true (took >= 45);           // not before the 50 ms deadline
}

static void test_disconnect_reconnects (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    uint8_t old_id [WIRE_ID_MAX];
    size_t old_len;
    memcpy (old_id, fake_broker_peer (f->b, &old_len), sizeof old_id);
    b_send_cmd (f->b, WIRE_W_HEARTBEAT);
    b_send_task (f->b, 40, "sim-slow", REQ, 0);
    b_wait_in_flight (f->b, 1);
    b_send_cmd (f->b, WIRE_W_DISCONNECT);
    wire_msg_t m;
    assert_int_equal (b_recv (f->b, 1000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_READY);
    wire_msg_close (&m);
    //  The broker was talking: READY came within b_recv's 1 s (the first back-off
    //  step), so there was no back-off
    size_t new_len;
    const uint8_t *new_id = fake_broker_peer (f->b, &new_len);
    assert_false (new_len == old_len && memcmp (new_id, old_id, old_len) == 0);
    s_stop_worker (f);
    assert_int_equal (f->stats.orphaned, 1);
    assert_int_equal (f->stats.connects, 2);
    assert_int_equal (f->stats.lost_disconnect, 1);
    assert_int_equal (f->stats.readies, 2);
}

//  (s_setup_long: silence would take 5 s.) The dropped connection orphans the attempt
//  at once and the new one gets READY at once: one READY, no back-off.
static void test_broker_restart_heals (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_send_task (f->b, 50, "sim-slow", REQ, 0);
    b_wait_in_flight (f->b, 1);
    assert_int_equal (fake_broker_restart (f->b), 0);
    assert_int_equal (b_expect_ready (f->b), 2);
    b_send_task (f->b, 51, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 51, 2000);    // and no second READY before it
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.orphaned, 1);
    assert_int_equal (f->stats.lost_disconnected, 1);
    assert_int_equal (f->stats.lost_silent, 0);
    assert_int_equal (f->stats.readies, 2);
    assert_int_equal (f->stats.connects, 2);
}

//  A HEARTBEAT with another BrokerBeat.instance on the same connection: the broker
//  restarted, so its attempts are orphaned and READY goes out at once on that socket.
static void test_instance_change_reregisters (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    uint8_t old_id [WIRE_ID_MAX];
    size_t old_len;
    memcpy (old_id, fake_broker_peer (f->b, &old_len), sizeof old_id);
    assert_int_equal (fake_broker_beat (f->b, 0), 0);          // an older broker's empty body
    assert_int_equal (fake_broker_beat (f->b, 111), 0);
    b_send_task (f->b, 60, "sim-slow", REQ, 0);
    b_wait_in_flight (f->b, 1);
    assert_int_equal (fake_broker_beat (f->b, 111), 0);        // the same instance: nothing
    assert_int_equal (fake_broker_send_frames (f->b, 3,
                                               (const void *[]) { "AIGWW1", "\x02", "\xff" },
                                               (size_t[]) { 6, 1, 1 }), 0);
    assert_int_equal (fake_broker_beat (f->b, 222), 0);
    assert_int_equal (b_expect_ready (f->b), 2);
    size_t new_len;
    const uint8_t *new_id = fake_broker_peer (f->b, &new_len);
    assert_true (new_len == old_len && memcmp (new_id, old_id, old_len) == 0);  // same socket
    //  Attempt 60 is gone: its CANCEL is unknown (messages are handled in order)
    b_send_cancel (f->b, 60);
    b_send_task (f->b, 61, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 61, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.lost_restarted, 1);
    assert_int_equal (f->stats.orphaned, 1);
    assert_int_equal (f->stats.unknown_cancels, 1);
    assert_int_equal (f->stats.malformed, 1);              // the BrokerBeat that did not decode
    assert_int_equal (f->stats.readies, 2);
    assert_int_equal (f->stats.connects, 1);
}

//  ---- two brokers (s_setup2)

//  Registers with both; the same attempt id from each is two attempts, each answered to
//  the broker that sent it. Idle, each is offered the whole capacity.
static void test_two_brokers_register_and_answer (void **state)
{
    fix_t *f = *state;
    s_start_worker (f, 2);
    assert_int_equal (b_expect_ready (f->b), 2);
    assert_int_equal (b_expect_ready (f->b2), 2);
    assert_int_equal (fake_broker_task (f->b, 1007, 7, "sim-fast", REQ, 0, false), 0);
    assert_int_equal (fake_broker_task (f->b2, 2007, 7, "sim-fast", REQ, 0, false), 0);
    Aigw__Result *r = b_expect (f->b, WIRE_W_RESULT, &aigw__result__descriptor, 2000);
    assert_int_equal (r->job_id, 1007);
    assert_int_equal (r->attempt_id, 7);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    r = b_expect (f->b2, WIRE_W_RESULT, &aigw__result__descriptor, 2000);
    assert_int_equal (r->job_id, 2007);
    assert_int_equal (r->attempt_id, 7);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.completed, 2);
    assert_int_equal (f->stats.readies, 2);
    assert_int_equal (f->stats.connects, 2);
    //  A clean stop says DISCONNECT to both
    wire_msg_t m;
    assert_int_equal (b_recv (f->b, 1000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_DISCONNECT);
    wire_msg_close (&m);
    assert_int_equal (b_recv (f->b2, 1000, &m), 0);
    assert_int_equal (m.cmd, WIRE_W_DISCONNECT);
    wire_msg_close (&m);
}

//  Capacity 2 shared: each broker is offered its attempts plus the free slots, told in
//  a HEARTBEAT whenever that changes; a TASK beyond the capacity gets "worker full";
//  a CANCEL applies to the attempt of the broker that sent it.
static void test_two_brokers_share_capacity (void **state)
{
    fix_t *f = *state;
    char msg [512];
    s_start_worker (f, 2);
    assert_int_equal (b_expect_ready (f->b), 2);
    assert_int_equal (b_expect_ready (f->b2), 2);
    b_send_task (f->b, 1, "sim-slow", REQ, 0);                 // A: job 1001, attempt 1
    b_wait_share (f->b2, 1, 0);                                // B may use the one free slot
    assert_int_equal (fake_broker_task (f->b2, 2001, 1, "sim-slow", REQ, 0, false), 0);
    b_wait_share (f->b, 1, 1);                                 // full: A keeps its own
    b_wait_share (f->b2, 1, 1);
    b_send_task (f->b, 3, "sim-fast", REQ, 0);                 // both took the last slot
    assert_int_equal (b_expect_error (f->b, 3, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_OVERLOADED);
    assert_string_equal (msg, "worker full");
    //  B's CANCEL of attempt 1 ends B's attempt 1, not A's
    b_send_cancel (f->b2, 1);
    Aigw__Error *e = b_expect (f->b2, WIRE_W_ERROR, &aigw__error__descriptor, 1000);
    assert_int_equal (e->job_id, 2001);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_CANCELLED);
    protobuf_c_message_free_unpacked (&e->base, NULL);
    b_wait_share (f->b, 2, 1);                                 // the freed slot is offered
    b_send_cancel (f->b, 1);
    assert_int_equal (b_expect_error (f->b, 1, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    b_wait_share (f->b2, 2, 0);
    s_stop_worker (f);
    assert_int_equal (f->stats.full, 1);
    assert_int_equal (f->stats.cancelled, 2);
    assert_int_equal (f->stats.capacity_updates, 4);         // B 1, A 1, A 2, B 2
}

//  One of two brokers restarts: its attempt is orphaned at once, the other's runs on,
//  and the restarted one gets READY with the capacity left.
static void test_two_brokers_one_restarts (void **state)
{
    fix_t *f = *state;
    s_start_worker (f, 2);
    assert_int_equal (b_expect_ready (f->b), 2);
    assert_int_equal (b_expect_ready (f->b2), 2);
    b_send_task (f->b, 1, "sim-slow", REQ, 0);
    b_wait_share (f->b2, 1, 0);
    assert_int_equal (fake_broker_task (f->b2, 2001, 1, "sim-slow", REQ, 0, false), 0);
    b_wait_share (f->b, 1, 1);
    assert_int_equal (fake_broker_restart (f->b), 0);
    assert_int_equal (b_expect_ready (f->b), 1);              // B's attempt holds one slot
    b_wait_share (f->b2, 2, 1);                                // A's slot came free
    b_send_cancel (f->b2, 1);                                  // B's attempt still runs
    Aigw__Error *e = b_expect (f->b2, WIRE_W_ERROR, &aigw__error__descriptor, 1000);
    assert_int_equal (e->job_id, 2001);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_CANCELLED);
    protobuf_c_message_free_unpacked (&e->base, NULL);
    b_send_task (f->b, 5, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 5, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.orphaned, 1);
    assert_int_equal (f->stats.lost_disconnected, 1);
    assert_int_equal (f->stats.lost_silent, 0);
    assert_int_equal (f->stats.readies, 3);
    assert_int_equal (f->stats.connects, 3);
}

static void test_burst_no_missed_messages (void **state)
{
    enum { N = 600 };
    fix_t *f = *state;
    s_ready (f, 1000);
    static bool seen [N];
    memset (seen, 0, sizeof seen);
    int got = 0;
    for (int burst = 0; burst < 12; burst++) {
        for (int i = 0; i < N / 12; i++)
            b_send_task (f->b, 100 + burst * (N / 12) + i, "sim-fast", REQ, 0);
        usleep (burst % 3 ? 1000 : 7000);
    }
    int64_t until = aclock_now_ms () + 5000;
    while (got < N && aclock_now_ms () < until) {
        wire_msg_t m;
        if (b_recv (f->b, 100, &m))
            continue;
        assert_int_equal (m.cmd, WIRE_W_RESULT);
        Aigw__Result *r = (Aigw__Result *) wire_unpack (&aigw__result__descriptor, &m.body);
        assert_non_null (r);
        assert_in_range (r->attempt_id, 100, 100 + N - 1);
        assert_false (seen [r->attempt_id - 100]);
        seen [r->attempt_id - 100] = true;
        got++;
        protobuf_c_message_free_unpacked (&r->base, NULL);
        wire_msg_close (&m);
    }
    assert_int_equal (got, N);
}

static void test_idle_does_not_spin (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    //  Idle for ten heartbeat periods (about 1 s), each HEARTBEAT answered with one
    enum { BEATS = 10 };
    for (int beats = 0; beats < BEATS;) {
        wire_msg_t m;
        assert_int_equal (b_recv_any (f->b, 2000, &m), 0);
        if (m.cmd == WIRE_W_HEARTBEAT) {
            beats++;
            b_send_cmd (f->b, WIRE_W_HEARTBEAT);
        }
        wire_msg_close (&m);
    }
    s_stop_worker (f);
    print_message ("idle for %d heartbeats: %" PRIu64 " loop wake-ups, %" PRIu64
                   " heartbeats sent\n", BEATS, f->stats.loops, f->stats.heartbeats);
    //  About one wake-up per heartbeat sent or received (~20/s); a spinning loop does 1e5+
    assert_true (f->stats.loops < 200);
    assert_true (f->stats.heartbeats >= 8);
}

//  ---- openai through the tiny server

static void test_openai_result_and_reuse (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    int accepted0 = s_count ("connections");
    b_send_task (f->b, 60, "oa-ok", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 60, 2000);
    assert_string_equal (r->model, "oa-ok");
    assert_int_equal (r->response_json.len, strlen (H_OK));
    assert_memory_equal (r->response_json.data, H_OK, strlen (H_OK));
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 5);
    assert_int_equal (r->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_req_t last = s_last ();
    assert_non_null (strstr (last.head, "POST /v1/chat/completions HTTP/1.1"));
    assert_non_null (strcasestr (last.head, "Authorization: Bearer sekrit-test-key"));
    assert_non_null (strcasestr (last.head, "Content-Type: application/json"));
    assert_null (strcasestr (last.head, "Expect:"));
    assert_non_null (strstr (last.body, "\"model\":\"up-ok\""));
    assert_non_null (strstr (last.body, "\"stream\":false"));
    assert_non_null (strstr (last.body, "\"tools\":[{\"type\":\"function\"}]"));
    //  A second call reuses the kept-alive connection
    b_send_task (f->b, 61, "oa-ok", REQ, 0);
    r = b_expect_result (f->b, 61, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    assert_int_equal (s_count ("connections") - accepted0, 1);
}

static void test_openai_errors (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char msg [512];
    uint32_t status = 0;
    b_send_task (f->b, 70, "oa-500", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 70, 2000, msg, sizeof msg, &status),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "upstream HTTP 500: boom");
    assert_int_equal (status, 500);
    b_send_task (f->b, 71, "oa-garbage", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 71, 2000, msg, sizeof msg, &status),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_non_null (strstr (msg, "upstream returned malformed JSON"));
    b_send_task (f->b, 72, "oa-big", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 72, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "upstream response larger than 1024 bytes");
    b_send_task (f->b, 73, "oa-bigstream", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 73, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "upstream response larger than 1024 bytes");
    int requests0 = s_count ("requests");
    b_send_task (f->b, 74, "oa-nokey", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 74, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_string_equal (msg, "API key env var AIGW_TEST_WORKER_UNSET is not set");
    assert_int_equal (s_count ("requests"), requests0);
    b_send_task (f->b, 75, "oa-refused", REQ, 0);
    assert_int_equal (b_expect_error (f->b, 75, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_non_null (strstr (msg, "Couldn't connect to server"));
    b_send_task (f->b, 76, "oa-stall", REQ, 150);
    assert_int_equal (b_expect_error (f->b, 76, 2000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_non_null (strstr (msg, "Timeout was reached"));
}

//  CANCEL of a transfer waiting for its response, and of one with a partial
//  response, closes the upstream connection at once.
static void s_cancel_and_watch (fix_t *f, uint64_t attempt, const char *model)
{
    char msg [512];
    int requests0 = s_count ("requests");
    int closed0 = s_count ("stalled_closed");
    b_send_task (f->b, attempt, model, REQ, 0);
    assert_int_equal (s_wait ("requests", requests0 + 1, 2000), requests0 + 1);
    assert_int_equal (s_count ("stalled_closed"), closed0);
    int64_t t0 = aclock_now_us ();
    b_send_cancel (f->b, attempt);
    assert_int_equal (b_expect_error (f->b, attempt, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (s_wait ("stalled_closed", closed0 + 1, 1000), closed0 + 1);
    assert_true (s_stall_closed_us () >= t0);       // closed by the CANCEL, not before
}

static const char *REQ_PLAIN = "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                               "{\"role\":\"user\",\"content\":\"say hi please\"}],\"max_tokens\":50,"
                               "\"stream\":true}";

//  Upstream error statuses: the code mapping, the provider's code and message,
//  and Retry-After (sent for 429 and 503 only).
static void test_upstream_error_mapping (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_send_task (f->b, 80, "oa-e400", REQ, 0);
    Aigw__Error *e = b_expect_error_msg (f->b, 80, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_BAD_REQUEST);
    assert_true (e->has_upstream_status);
    assert_int_equal (e->upstream_status, 400);
    assert_string_equal (e->upstream_code, "context_length_exceeded");
    assert_non_null (strstr (e->message, "too long"));
    assert_false (e->has_retry_after_ms);
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (f->b, 81, "oa-e401", REQ, 0);
    e = b_expect_error_msg (f->b, 81, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM_AUTH);
    assert_int_equal (e->upstream_status, 401);
    assert_string_equal (e->upstream_code, "invalid_api_key");
    assert_string_equal (e->message, "upstream HTTP 401: Incorrect API key");
    assert_false (e->has_retry_after_ms);       // not a 429/503
    protobuf_c_message_free_unpacked (&e->base, NULL);

    //  Streamed: the error status is read as a whole body all the same
    b_send_task_ex (f->b, 82, "oa-e429", REQ, 0, true);
    e = b_expect_error_msg (f->b, 82, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (e->upstream_status, 429);
    assert_string_equal (e->upstream_code, "rate_limit_exceeded");
    assert_true (e->has_retry_after_ms);
    assert_int_equal (e->retry_after_ms, 3000);
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (f->b, 83, "oa-e503", REQ, 0);
    e = b_expect_error_msg (f->b, 83, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (e->upstream_status, 503);
    assert_string_equal (e->upstream_code, "server_error");      // code null: the type
    assert_true (e->has_retry_after_ms);
    assert_int_equal (e->retry_after_ms, 0);    // a date in the past
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (f->b, 84, "an-429", REQ_PLAIN, 0);
    e = b_expect_error_msg (f->b, 84, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (e->upstream_status, 429);
    assert_string_equal (e->upstream_code, "rate_limit_error");
    assert_non_null (strstr (e->message, "exceeded your rate limit"));
    assert_true (e->has_retry_after_ms);
    assert_int_equal (e->retry_after_ms, 250);  // retry-after-ms wins
    protobuf_c_message_free_unpacked (&e->base, NULL);

    b_send_task (f->b, 85, "oa-500", REQ, 0);
    e = b_expect_error_msg (f->b, 85, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (e->upstream_status, 500);
    assert_string_equal (e->upstream_code, "server_error");
    assert_string_equal (e->message, "upstream HTTP 500: boom");
    protobuf_c_message_free_unpacked (&e->base, NULL);

    //  A connection error: no status, no code
    b_send_task (f->b, 86, "oa-refused", REQ, 0);
    e = b_expect_error_msg (f->b, 86, 2000);
    assert_int_equal (e->code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_false (e->has_upstream_status);
    assert_null (e->upstream_code);
    assert_false (e->has_retry_after_ms);
    protobuf_c_message_free_unpacked (&e->base, NULL);
}

static void test_openai_cancel_closes_connection (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    s_cancel_and_watch (f, 80, "oa-stall");
    s_cancel_and_watch (f, 81, "oa-partial");
    //  The worker goes on serving on a fresh connection
    b_send_task (f->b, 82, "oa-ok", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 82, 2000);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_stop_worker (f);
    assert_int_equal (f->stats.cancelled, 2);
}

//  ---- streaming


static void test_stream_sim (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    //  20 words/s: one CHUNK per word about 50 ms apart, a finish CHUNK, then RESULT
    b_stream_t st;
    b_send_task_ex (f->b, 200, "sim-words", REQ, 0, true);
    b_collect (f->b, 200, 2000, &st);
    assert_non_null (st.result);
    assert_int_equal (st.chunks, 4);
    assert_string_equal (st.text, "one two three");
    assert_true (st.last_us - st.first_us >= 90000);
    char content [256], finish [32];
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "one two three");
    assert_string_equal (finish, "stop");
    assert_int_equal (st.result->usage->completion_tokens, 3);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    //  tokens_per_s = 0: every word at once after the latency
    b_send_task_ex (f->b, 201, "sim-fast", REQ, 0, true);
    b_collect (f->b, 201, 2000, &st);
    assert_non_null (st.result);
    assert_true (st.chunks >= 2);
    //  One burst: well under the 90 ms that the paced stream of the same text took above
    //  (a generous bound stated as such: the burst is sent in one loop turn)
    assert_true (st.last_us - st.first_us < 90000);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    //  A deadline in the middle of the stream: ERR_TIMEOUT after the words so far
    b_send_task_ex (f->b, 202, "sim-midwords", REQ, 125, true);
    b_collect (f->b, 202, 2000, &st);
    assert_null (st.result);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_int_equal (st.chunks, 3);
    assert_string_equal (st.msg, "sim: deadline of 125 ms passed after 3 chunks");
    //  CANCEL mid-stream stops the timer chain: nothing follows the acknowledgement
    b_send_task_ex (f->b, 203, "sim-slowwords", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (f->b, 203, 0, 1000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    b_send_cancel (f->b, 203);
    char msg [512];
    assert_int_equal (b_expect_error (f->b, 203, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    wire_msg_t m;
    assert_int_equal (b_recv (f->b, 250, &m), -1);     // the next word was due at 200 ms
    s_stop_worker (f);
    assert_int_equal (f->stats.streams, 4);
    assert_int_equal (f->stats.cancelled, 1);
}

static void test_stream_openai (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    int accepted0 = s_count ("connections");
    b_stream_t st;
    b_send_task_ex (f->b, 210, "oa-sse", REQ, 0, true);
    b_collect (f->b, 210, 2000, &st);
    if (!st.result)
        fail_msg ("stream ended in ERROR %d: %s", st.code, st.msg);
    //  Hello, world, the tool call, the finish: not the role-only nor the usage chunk
    assert_int_equal (st.chunks, 4);
    assert_string_equal (st.text, "Hello world");
    char content [256], finish [32];
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hello world");
    assert_string_equal (finish, "tool_calls");
    assert_non_null (strstr ((const char *) st.result->response_json.data,
                             "\"tool_calls\":[{\"id\":\"call_7\",\"type\":\"function\","
                             "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]"));
    assert_non_null (st.result->usage);
    assert_int_equal (st.result->usage->prompt_tokens, 4);
    assert_int_equal (st.result->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    s_req_t last = s_last ();
    assert_non_null (strstr (last.body, "\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
    assert_non_null (strcasestr (last.head, "Accept: text/event-stream"));
    //  The chunked body closed properly: the next stream reuses the connection
    b_send_task_ex (f->b, 211, "oa-sse", REQ, 0, true);
    b_collect (f->b, 211, 2000, &st);
    assert_non_null (st.result);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    assert_int_equal (s_count ("connections") - accepted0, 1);
    s_stop_worker (f);
    assert_int_equal (f->stats.chunks, 8);
    assert_int_equal (f->stats.completed, 2);
}

static void test_stream_failures (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    b_stream_t st;
    b_send_task_ex (f->b, 220, "oa-sse-cut", REQ, 0, true);
    b_collect (f->b, 220, 2000, &st);
    assert_null (st.result);
    assert_int_equal (st.chunks, 2);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_non_null (strstr (st.msg, "upstream stream cut after 2 chunks"));
    b_send_task_ex (f->b, 221, "oa-sse-err", REQ, 0, true);
    b_collect (f->b, 221, 2000, &st);
    assert_int_equal (st.chunks, 0);
    assert_string_equal (st.msg, "upstream stream error: model overloaded (after 0 chunks)");
    assert_int_equal (st.status, 200);
    b_send_task_ex (f->b, 222, "oa-429", REQ, 0, true);
    b_collect (f->b, 222, 2000, &st);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_RATE_LIMITED);
    assert_int_equal (st.status, 429);
    assert_string_equal (st.msg, "upstream HTTP 429: slow down");
    //  A stall after the first chunk runs into the deadline (well inside the
    //  fixture's 300 ms broker liveness)
    int stalled0 = s_count ("stalled_closed");
    b_send_task_ex (f->b, 223, "oa-sse-stall", REQ, 150, true);
    b_collect (f->b, 223, 2000, &st);
    assert_int_equal (st.chunks, 1);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_non_null (strstr (st.msg, "upstream stream cut after 1 chunks: Timeout was reached"));
    //  Its connection closes too; wait for that, so it is not counted below
    assert_int_equal (s_wait ("stalled_closed", stalled0 + 1, 5000), stalled0 + 1);
    //  [DONE] came but the body never closes: RESULT after a short grace (no RESULT
    //  at all would time b_collect out), and the connection is closed rather than kept
    int closed0 = s_count ("stalled_closed");
    b_send_task_ex (f->b, 224, "oa-sse-nofin", REQ, 0, true);
    b_collect (f->b, 224, 2000, &st);
    if (!st.result)
        fail_msg ("ERROR %d: %s", st.code, st.msg);
    assert_int_equal (st.chunks, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    assert_int_equal (s_wait ("stalled_closed", closed0 + 1, 1000), closed0 + 1);
}

static void test_stream_cancel_closes_connection (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    int closed0 = s_count ("stalled_closed");
    b_send_task_ex (f->b, 230, "oa-sse-stall", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (f->b, 230, 0, 2000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    assert_int_equal (s_count ("stalled_closed"), closed0);
    int64_t t0 = aclock_now_us ();
    b_send_cancel (f->b, 230);
    char msg [512];
    assert_int_equal (b_expect_error (f->b, 230, 1000, msg, sizeof msg, NULL),
                      AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (s_wait ("stalled_closed", closed0 + 1, 1000), closed0 + 1);
    assert_true (s_stall_closed_us () >= t0);       // closed by the CANCEL, not before
}

static void test_anthropic_and_ollama (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    char content [256], finish [32];
    b_send_task (f->b, 240, "an-ok", REQ_PLAIN, 0);
    Aigw__Result *r = b_expect_result (f->b, 240, 2000);
    b_result_message (r, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi from claude");
    assert_string_equal (finish, "length");
    assert_int_equal (r->usage->prompt_tokens, 9);
    assert_int_equal (r->usage->completion_tokens, 3);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    s_req_t last = s_last ();
    assert_non_null (strstr (last.head, "POST /v1/messages HTTP/1.1"));
    assert_non_null (strcasestr (last.head, "x-api-key: sekrit-test-key"));
    assert_non_null (strcasestr (last.head, "anthropic-version: 2023-06-01"));
    assert_null (strcasestr (last.head, "Authorization:"));
    assert_non_null (strstr (last.body, "\"system\":\"S\""));
    assert_non_null (strstr (last.body, "\"max_tokens\":50"));
    assert_null (strstr (last.body, "\"stream\""));
    b_stream_t st;
    b_send_task_ex (f->b, 241, "an-ok", REQ_PLAIN, 0, true);
    b_collect (f->b, 241, 2000, &st);
    if (!st.result)
        fail_msg ("anthropic stream ended in ERROR %d: %s", st.code, st.msg);
    assert_int_equal (st.chunks, 3);
    assert_string_equal (st.text, "Hi there");
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi there");
    assert_string_equal (finish, "stop");
    assert_int_equal (st.result->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
    //  Ollama, whole and streamed (NDJSON lines split across reads)
    b_send_task (f->b, 242, "ol-ok", REQ_PLAIN, 0);
    r = b_expect_result (f->b, 242, 2000);
    b_result_message (r, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi llama");
    assert_int_equal (r->usage->prompt_tokens, 7);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    last = s_last ();
    assert_non_null (strstr (last.head, "POST /api/chat HTTP/1.1"));
    assert_non_null (strstr (last.body, "\"stream\":false"));
    assert_non_null (strstr (last.body, "\"num_predict\":50"));
    b_send_task_ex (f->b, 243, "ol-ok", REQ_PLAIN, 0, true);
    b_collect (f->b, 243, 2000, &st);
    if (!st.result)
        fail_msg ("ollama stream ended in ERROR %d: %s", st.code, st.msg);
    assert_int_equal (st.chunks, 3);
    assert_string_equal (st.text, "Hi llama");
    b_result_message (st.result, content, sizeof content, finish, sizeof finish);
    assert_string_equal (content, "Hi llama");
    assert_int_equal (st.result->usage->completion_tokens, 2);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
}

//  ---- usage on every answer

//  Read CHUNKs of attempt until its ERROR; returns the CHUNKs seen, copies the usage.
static uint32_t s_chunks_until_error (fix_t *f, uint64_t attempt, int *code, Aigw__Usage *usage)
{
    uint32_t chunks = 0;
    for (;;) {
        wire_msg_t m;
        assert_int_equal (b_recv (f->b, 2000, &m), 0);
        if (m.cmd == WIRE_W_CHUNK) {
            chunks++;
            wire_msg_close (&m);
            continue;
        }
        assert_int_equal (m.cmd, WIRE_W_ERROR);
        Aigw__Error *e = (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m.body);
        assert_non_null (e);
        assert_int_equal (e->attempt_id, attempt);
        assert_non_null (e->usage);
        *usage = *e->usage;
        *code = e->code;
        protobuf_c_message_free_unpacked (&e->base, NULL);
        wire_msg_close (&m);
        return chunks;
    }
}

//  The sim's counts are exact: its prompt words, the words it had streamed by the
//  cancel; a refused TASK and an injected failure consumed nothing.
static void test_usage_sim (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    Aigw__Usage u;
    int code = 0;
    //  Streaming at 5 words/s, cancelled after its first word: the acknowledgement
    //  counts every word sent before it (the first, and any that fell due meanwhile)
    b_send_task_ex (f->b, 300, "sim-slowwords", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (f->b, 300, 0, 2000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    b_send_cancel (f->b, 300);
    uint32_t chunks = 1 + s_chunks_until_error (f, 300, &code, &u);
    assert_int_equal (code, AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 3);
    assert_true (u.completion_tokens > 0);
    assert_int_equal (u.completion_tokens, chunks);
    assert_false (u.has_estimated && u.estimated);
    //  Not streaming: nothing is emitted before the reply
    b_send_task (f->b, 301, "sim-slow", REQ, 0);
    b_send_cancel (f->b, 301);
    assert_int_equal (b_expect_error_usage (f->b, 301, 2000, &u), AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 3);
    assert_int_equal (u.completion_tokens, 0);
    assert_false (u.has_estimated && u.estimated);
    //  A deadline mid-stream: the words sent so far
    b_stream_t st;
    b_send_task_ex (f->b, 302, "sim-midwords", REQ, 125, true);
    b_collect (f->b, 302, 2000, &st);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_TIMEOUT);
    assert_true (st.has_usage);
    assert_int_equal (st.usage.prompt_tokens, 3);
    assert_int_equal (st.usage.completion_tokens, st.chunks);
    //  Refused and failed attempts: zero, and not an estimate
    b_send_task (f->b, 303, "no-such-model", REQ, 0);
    assert_int_equal (b_expect_error_usage (f->b, 303, 2000, &u), AIGW__ERROR_CODE__ERR_UNKNOWN_MODEL);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    assert_false (u.has_estimated && u.estimated);
    b_send_task (f->b, 304, "sim-fail", REQ, 0);
    assert_int_equal (b_expect_error_usage (f->b, 304, 2000, &u), AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    //  The RESULT: exact counts
    b_send_task (f->b, 305, "sim-fast", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 305, 2000);
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 3);
    assert_true (r->usage->completion_tokens > 0);
    assert_false (r->usage->has_estimated && r->usage->estimated);
    protobuf_c_message_free_unpacked (&r->base, NULL);
}

//  HTTP upstreams: the upstream's counts when it gave them, else estimates (prompt:
//  "say hi please" is 13 bytes, 4 tokens; completion: the CHUNKs sent, or the reply
//  text / 4), marked estimated; an upstream that refused consumed nothing.
static void test_usage_upstream (void **state)
{
    fix_t *f = *state;
    s_ready (f, 2);
    Aigw__Usage u;
    int code = 0;
    //  Cancelled while waiting for the reply: the prompt, no completion
    int requests0 = s_count ("requests");
    b_send_task (f->b, 310, "oa-stall", REQ, 0);
    assert_int_equal (s_wait ("requests", requests0 + 1, 2000), requests0 + 1);
    b_send_cancel (f->b, 310);
    assert_int_equal (b_expect_error_usage (f->b, 310, 2000, &u), AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 4);
    assert_int_equal (u.completion_tokens, 0);
    assert_true (u.has_estimated && u.estimated);
    //  Cancelled mid-stream after one chunk (the upstream stalls after it)
    b_send_task_ex (f->b, 311, "oa-sse-stall", REQ, 0, true);
    Aigw__Chunk *c = b_expect_chunk (f->b, 311, 0, 2000);
    protobuf_c_message_free_unpacked (&c->base, NULL);
    b_send_cancel (f->b, 311);
    assert_int_equal (s_chunks_until_error (f, 311, &code, &u), 0);
    assert_int_equal (code, AIGW__ERROR_CODE__ERR_CANCELLED);
    assert_int_equal (u.prompt_tokens, 4);
    assert_int_equal (u.completion_tokens, 1);
    assert_true (u.has_estimated && u.estimated);
    //  A stream cut after two chunks
    b_stream_t st;
    b_send_task_ex (f->b, 312, "oa-sse-cut", REQ, 0, true);
    b_collect (f->b, 312, 2000, &st);
    assert_int_equal (st.code, AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_true (st.has_usage);
    assert_int_equal (st.usage.completion_tokens, 2);
    assert_int_equal (st.usage.prompt_tokens, 4);
    //  Refused by the upstream (HTTP 500) or never sent (connection refused)
    b_send_task (f->b, 313, "oa-500", REQ, 0);
    assert_int_equal (b_expect_error_usage (f->b, 313, 2000, &u), AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    assert_false (u.has_estimated && u.estimated);
    b_send_task (f->b, 314, "oa-refused", REQ, 0);
    assert_int_equal (b_expect_error_usage (f->b, 314, 2000, &u), AIGW__ERROR_CODE__ERR_UPSTREAM);
    assert_int_equal (u.prompt_tokens + u.completion_tokens, 0);
    //  RESULTs: the upstream's usage as it is; none given: estimated
    b_send_task (f->b, 315, "oa-ok", REQ, 0);
    Aigw__Result *r = b_expect_result (f->b, 315, 2000);
    assert_int_equal (r->usage->prompt_tokens, 5);
    assert_int_equal (r->usage->completion_tokens, 2);
    assert_false (r->usage->has_estimated && r->usage->estimated);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    b_send_task (f->b, 316, "oa-nousage", REQ, 0);
    r = b_expect_result (f->b, 316, 2000);
    assert_non_null (r->usage);
    assert_int_equal (r->usage->prompt_tokens, 4);
    assert_int_equal (r->usage->completion_tokens, 2);      // "hello": 5 bytes
    assert_true (r->usage->has_estimated && r->usage->estimated);
    protobuf_c_message_free_unpacked (&r->base, NULL);
    //  A stream with no usage event: one token per CHUNK
    b_send_task_ex (f->b, 317, "oa-sse-nofin", REQ, 0, true);
    b_collect (f->b, 317, 2000, &st);
    assert_non_null (st.result);
    assert_non_null (st.result->usage);
    assert_int_equal (st.result->usage->completion_tokens, st.chunks);
    assert_int_equal (st.result->usage->prompt_tokens, 4);
    assert_true (st.result->usage->has_estimated && st.result->usage->estimated);
    protobuf_c_message_free_unpacked (&st.result->base, NULL);
}

static void test_bad_options (void **state)
{
    char err [512];
    cfg_t *cfg = cfg_parse ("models\n    a\n        provider = sim\n", "t", err, sizeof err);
    assert_non_null (cfg);
    worker_opts_t opts = { .models = "a, nope" };
    assert_null (worker_new (cfg, &opts, err, sizeof err));
    assert_non_null (strstr (err, "nope"));
    opts.models = NULL;
    opts.broker = "tcp://127.0.0.1:5000, tcp://127.0.0.1:5000";
    assert_null (worker_new (cfg, &opts, err, sizeof err));
    assert_non_null (strstr (err, "listed twice"));
    opts.broker = "tcp://127.0.0.1:1,tcp://127.0.0.1:2,tcp://127.0.0.1:3,tcp://127.0.0.1:4,"
                  "tcp://127.0.0.1:5,tcp://127.0.0.1:6,tcp://127.0.0.1:7,tcp://127.0.0.1:8,"
                  "tcp://127.0.0.1:9";
    assert_null (worker_new (cfg, &opts, err, sizeof err));
    assert_non_null (strstr (err, "more than 8"));
    opts.broker = NULL;
    opts.models = "a,a";
    worker_t *w = worker_new (cfg, &opts, err, sizeof err);
    assert_non_null (w);
    worker_destroy (&w);
    worker_destroy (&w);
    cfg_destroy (&cfg);
    cfg_t *empty = cfg_defaults ();
    assert_null (worker_new (empty, NULL, err, sizeof err));
    cfg_destroy (&empty);
}

static int s_group_setup (void **state)
{
    setenv ("AIGW_TEST_WORKER_KEY", "sekrit-test-key", 1);
    unsetenv ("AIGW_TEST_WORKER_UNSET");
    log_init ("worker-test", getenv ("AIGW_TEST_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    char *script = s_script ();
    s_up = fake_upstream_new (script);
    free (script);
    return s_up ? 0 : -1;
}

static int s_group_teardown (void **state)
{
    fake_upstream_destroy (&s_up);
    return 0;
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_ready_then_result, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_refusals_and_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_cancel_frees_slot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_heartbeats_flow, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_ends_sim_attempt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_disconnect_reconnects, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_broker_restart_heals, s_setup_long, s_teardown),
        cmocka_unit_test_setup_teardown (test_instance_change_reregisters, s_setup_long,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_two_brokers_register_and_answer, s_setup2,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_two_brokers_share_capacity, s_setup2, s_teardown),
        cmocka_unit_test_setup_teardown (test_two_brokers_one_restarts, s_setup2, s_teardown),
        cmocka_unit_test_setup_teardown (test_burst_no_missed_messages, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_idle_does_not_spin, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_openai_result_and_reuse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_openai_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_upstream_error_mapping, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_openai_cancel_closes_connection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_sim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_openai, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stream_cancel_closes_connection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_anthropic_and_ollama, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_usage_sim, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_usage_upstream, s_setup, s_teardown),
        cmocka_unit_test (test_bad_options),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
