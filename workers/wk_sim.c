// The sim provider: seeded draws (common/rng splitmix64, Box-Muller lognormal), OpenAI-shaped
// replies, and its adapter ops (start arms a timer; on_done replies or streams the next
// word and re-arms; cancel disarms).
#include "wk_sim.h"
#include "rng.h"
#include "wk_compl.h"
#include "wk_attempt.h"
#include "wk_json.h"
#include "wk_usage.h"
#include "aclock.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define WK_SIM_MAX_REPLY (64 * 1024)

void wk_sim_draw (uint64_t *state, const cfg_model_t *m, wk_sim_draw_t *out)
{
    //  Always three numbers per draw, so the sequence shape never depends on config
    double u_fail = rng_uniform (state);
    double u1 = rng_uniform (state);
    double u2 = rng_uniform (state);
    out->fail = u_fail < m->fail_rate;
    double latency = m->latency_ms;
    if (m->jitter > 0) {
        double z = sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
        latency *= exp (m->jitter * z);
    }
    if (!(latency < WK_SIM_MAX_LATENCY_MS))
        latency = WK_SIM_MAX_LATENCY_MS;
    out->latency_ms = (uint32_t) (latency + 0.5);
}

uint32_t wk_sim_count_words (const char *s, size_t len)
{
    uint32_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        bool space = s [i] == ' ' || s [i] == '\t' || s [i] == '\n' || s [i] == '\r';
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    return words;
}

static uint64_t s_words (const char *text, size_t len)
{
    return wk_sim_count_words (text, len);
}

int wk_sim_prompt_tokens (const char *req, size_t len, uint32_t *tokens)
{
    int64_t words = wk_usage_prompt_sum (req, len, s_words);
    if (words < 0)
        return -1;
    *tokens = words > UINT32_MAX ? UINT32_MAX : (uint32_t) words;
    return 0;
}

int wk_sim_build_response (buf_t *out, uint64_t attempt_id, const char *model,
                           const char *text, int64_t created,
                           uint32_t prompt_tokens, uint32_t completion_tokens)
{
    char head [128];
    snprintf (head, sizeof head,
              "{\"id\":\"chatcmpl-sim-%016" PRIx64 "\",\"object\":\"chat.completion\","
              "\"created\":%" PRId64 ",\"model\":", attempt_id, created);
    char tail [192];
    snprintf (tail, sizeof tail,
              "},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
              "\"usage\":{\"prompt_tokens\":%" PRIu32 ",\"completion_tokens\":%" PRIu32
              ",\"total_tokens\":%" PRIu64 "}}",
              prompt_tokens, completion_tokens, (uint64_t) prompt_tokens + completion_tokens);
    if (buf_puts (out, head)
    ||  buf_put_json_str (out, model)
    ||  buf_puts (out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":")
    ||  buf_put_json_str (out, text)
    ||  buf_puts (out, tail))
        return -1;
    return 0;
}

static bool s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t wk_sim_piece (const char *text, size_t len, size_t pos)
{
    size_t p = pos;
    while (p < len && s_space (text [p]))
        p++;
    if (p == len)
        return pos;
    while (p < len && !s_space (text [p]))
        p++;
    size_t q = p;
    while (q < len && s_space (text [q]))
        q++;
    return q == len ? len : p;
}

int wk_sim_build_chunk (buf_t *out, uint64_t attempt_id, const char *model, int64_t created,
                        bool role, const char *piece, size_t len, const char *finish)
{
    char id [48];
    snprintf (id, sizeof id, "chatcmpl-sim-%016" PRIx64, attempt_id);
    wk_delta_t d = { .role = role, .content = piece, .content_len = len, .finish = finish };
    return wk_compl_chunk_render (out, id, model, created, &d);
}

//  ---- adapter ops

static int s_start (wk_attempt_t *a, const char *req, size_t req_len)
{
    if (wk_sim_prompt_tokens (req, req_len, &a->prompt_tokens)) {
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_BAD_REQUEST, 0,
                                "request payload is not a JSON object");
        return -1;
    }
    //  The sim is its own upstream: its counts are exact, not estimates
    a->reached = true;
    a->used.has = true;
    a->used.prompt_tokens = a->prompt_tokens;
    a->prompt_est = a->prompt_tokens;
    wk_sim_draw_t draw;
    wk_sim_draw (&a->model->rng, a->model->cfg, &draw);
    a->sim_fail = draw.fail;
    uint32_t delay = draw.latency_ms;
    if (a->deadline_ms && a->deadline_ms < delay) {
        a->sim_late = true;
        delay = a->deadline_ms;
    }
    a->sim_first_ms = a->started_us / 1000 + delay;
    return wk_attempt_timer_arm (a, a->sim_first_ms);
}

static void s_result (wk_attempt_t *a)
{
    const cfg_model_t *m = a->model->cfg;
    buf_t buf;
    buf_init (&buf, WK_SIM_MAX_REPLY);
    uint32_t completion = wk_sim_count_words (m->text, strlen (m->text));
    if (wk_sim_build_response (&buf, a->attempt_id, m->name, m->text, a->created,
                               a->prompt_tokens, completion)) {
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_INTERNAL, 0, "sim: out of memory");
        buf_free (&buf);
        return;
    }
    Aigw__Usage usage = AIGW__USAGE__INIT;
    usage.has_prompt_tokens = true;
    usage.prompt_tokens = a->prompt_tokens;
    usage.has_completion_tokens = true;
    usage.completion_tokens = completion;
    wk_attempt_reply_result (a, buf.data, buf.len, &usage);
    buf_free (&buf);
}

//  Send one CHUNK: text[from..to) or, with finish, the closing chunk. 0, or -1
//  after replying ERROR.
static int s_chunk (wk_attempt_t *a, size_t from, size_t to, const char *finish)
{
    const cfg_model_t *m = a->model->cfg;
    buf_t buf;
    buf_init (&buf, WK_SIM_MAX_REPLY);
    int rc = wk_sim_build_chunk (&buf, a->attempt_id, m->name, a->created, a->chunk_seq == 0,
                                 finish ? NULL : m->text + from, to - from, finish);
    if (rc == 0)
        rc = wk_attempt_reply_chunk (a, buf.data, buf.len);
    buf_free (&buf);
    if (rc)
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_INTERNAL, 0,
                                "cannot send CHUNK %u to the broker (send queue full)",
                                a->chunk_seq);
    return rc;
}

//  Send every word that is due, then re-arm for the next one, or finish.
static void s_stream_step (wk_attempt_t *a)
{
    const cfg_model_t *m = a->model->cfg;
    size_t len = strlen (m->text);
    int64_t now = aclock_now_ms ();
    int64_t deadline = a->deadline_ms ? a->started_us / 1000 + a->deadline_ms : INT64_MAX;
    for (;;) {
        size_t end = wk_sim_piece (m->text, len, a->sim_pos);
        if (end != a->sim_pos) {
            if (s_chunk (a, a->sim_pos, end, NULL))
                return;
            a->sim_pos = (uint32_t) end;
            a->used.completion_tokens = ++a->sim_words;
        }
        if (wk_sim_piece (m->text, len, a->sim_pos) == a->sim_pos) {
            if (s_chunk (a, 0, 0, "stop") == 0)
                s_result (a);
            return;
        }
        if (!m->tokens_per_s)
            continue;
        int64_t due = a->sim_first_ms + (int64_t) a->sim_words * 1000 / m->tokens_per_s;
        if (due > deadline) {
            a->sim_late = true;
            wk_attempt_timer_arm (a, deadline);
            return;
        }
        if (due > now) {
            wk_attempt_timer_arm (a, due);
            return;
        }
    }
}

static void s_on_done (wk_attempt_t *a, const wk_done_t *done)
{
    if (a->sim_late) {
        if (a->chunk_seq)
            wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_TIMEOUT, 0,
                                    "sim: deadline of %" PRIu32 " ms passed after %" PRIu32
                                    " chunks", a->deadline_ms, a->chunk_seq);
        else
            wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_TIMEOUT, 0,
                                    "sim: deadline of %" PRIu32 " ms passed before the reply",
                                    a->deadline_ms);
        return;
    }
    if (a->sim_fail) {
        a->reached = false;     // like an upstream refusing: nothing consumed
        wk_attempt_reply_error (a, AIGW__ERROR_CODE__ERR_UPSTREAM, 0, "sim: injected failure");
        return;
    }
    if (a->stream)
        s_stream_step (a);
    else
        s_result (a);
}

static void s_cancel (wk_attempt_t *a)
{
    wk_attempt_timer_disarm (a);
}

static int s_model_init (wk_model_t *m)
{
    m->rng = m->cfg->seed;
    return 0;
}

const wk_provider_t wk_sim_provider = {
    .name = "sim",
    .model_init = s_model_init,
    .start = s_start,
    .on_done = s_on_done,
    .cancel = s_cancel,
};
