// One attempt as its provider sees it: the attempt and model records, the provider
// interface, and what a provider may do with an attempt (reply, arm its timer) through
// the loop running it, which supplies those services as wk_loop_ops_t (worker.c).
#ifndef AIGW_WK_ATTEMPT_H
#define AIGW_WK_ATTEMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

#include "aigw.pb-c.h"
#include "cfg.h"
#include "buf.h"
#include "hmap.h"
#include "theap.h"
#include "wk_compl.h"
#include "wk_retry.h"

#define WK_UPSTREAM_CODE_MAX 64     // provider error code kept, incl. NUL
#define WK_ATTEMPT_REASON_MAX 512   // ERROR reason, incl. NUL

typedef struct wk_attempt wk_attempt_t;
typedef struct wk_model wk_model_t;
typedef struct wk_loop wk_loop_t;
typedef struct wk_stream wk_stream_t;
typedef struct wk_dialect wk_dialect_t;
typedef struct _wk_http_t wk_http_t;

//  How an attempt's transport finished (passed to on_done).
typedef struct {
    bool timer;                 // a timer armed by the provider fired
    CURLcode curl_code;         // HTTP: transfer result (CURLE_OK when timer)
    long http_status;           // HTTP: response status, 0 if none
    const char *curl_error;     // HTTP: libcurl's detail text, "" if none
} wk_done_t;

//  A provider adapter. One attempt moves start -> (on_data)* -> on_done, or is
//  cancelled at any point; the loop calls cancel after on_done too, to release.
typedef struct {
    const char *name;
    //  Prepare per-model state at startup (optional). 0 / -1.
    int (*model_init) (wk_model_t *m);
    void (*model_fini) (wk_model_t *m);
    //  Start an attempt on the request JSON (borrowed for the call only).
    //  Returns 0 when running (it ends through on_done), or -1 after having
    //  replied ERROR with wk_attempt_reply_error.
    int (*start) (wk_attempt_t *a, const char *req, size_t req_len);
    //  Response bytes from the transport. 0 to go on, -1 to abort the transfer.
    int (*on_data) (wk_attempt_t *a, const char *data, size_t len);
    //  The transport finished: reply with wk_attempt_reply_result or
    //  wk_attempt_reply_error.
    void (*on_done) (wk_attempt_t *a, const wk_done_t *done);
    //  Abort any I/O at once and release what the attempt holds. No reply.
    //  Idempotent.
    void (*cancel) (wk_attempt_t *a);
} wk_provider_t;

//  A model this worker serves.
struct wk_model {
    const cfg_model_t *cfg;     // borrowed from the config
    const wk_provider_t *prov;
    uint64_t rng;               // sim: PRNG state (splitmix64)
    char url [CFG_STR_MAX + 32];// http: full endpoint URL
    const wk_dialect_t *dialect;// http: the upstream API's wire format
    struct curl_slist *headers; // http: request headers (may hold the key: never log)
    struct curl_slist *headers_sse; // http: the same, accepting text/event-stream
    bool key_missing;           // http: api_key_env set but the variable is empty
    uint64_t started;           // attempts started on this model
};

//  One running attempt; lives in a fixed slot of the attempt table.
struct wk_attempt {
    uint64_t job_id;
    uint64_t attempt_id;        // unique per broker only
    uint32_t broker;            // index of the broker that sent the TASK (its answers go there)
    wk_model_t *model;
    wk_loop_t *loop;            // the loop running it
    uint32_t deadline_ms;       // remaining budget given by the broker, 0 = none
    int64_t started_us;
    int64_t created;            // unix seconds at start ("created" in replies)
    bool stream;                // Task.stream: send CHUNKs, then RESULT
    uint32_t chunk_seq;         // seq of the next CHUNK
    bool live;                  // slot in use
    bool replied;               // RESULT or ERROR sent
    uint32_t slot;              // index in the table
    //  Usage (wk_usage.c fills every RESULT and ERROR from these)
    wk_usage_t used;            // what the upstream reported so far (sim: its exact counts)
    uint32_t prompt_est;        // estimated prompt tokens of the request
    bool reached;               // the request reached the model: its prompt counts
    //  Timer (sim completion): timer.when is the due time (ms), timer.idx THEAP_NONE
    //  when unarmed
    theap_node_t timer;
    hmap_node_t node;           // in the table's index by (broker, attempt_id)
    //  sim
    bool sim_fail;              // draw says: inject a failure
    bool sim_late;              // deadline comes before the drawn latency
    uint32_t prompt_tokens;
    uint32_t sim_pos;           // streaming: offset in text after the last word sent
    uint32_t sim_words;         // streaming: words sent
    int64_t sim_first_ms;       // streaming: when the first word was due
    //  HTTP
    CURL *easy;                 // NULL when no transfer
    char *req_body;             // rewritten request (owned)
    size_t req_len;
    buf_t resp;              // response body (non-streamed or error), capped
    uint64_t resp_total;        // body bytes received
    long status;                // HTTP status when the body started, 0 before
    wk_stream_t *st;            // streamed reply state (owned), NULL if not streaming
    bool too_big;               // response passed its cap
    bool deadline_bound;        // total timeout came from the deadline
    char curl_err [CURL_ERROR_SIZE];
    wk_retry_t retry;           // the response's Retry-After / retry-after-ms
    char upstream_code [WK_UPSTREAM_CODE_MAX]; // provider's error code for the ERROR, "" = none
};

//  What a loop does for the providers of its attempts (see the wk_attempt_*
//  functions below, which call these). The loop that runs attempts fills one table.
typedef struct {
    int (*reply_result) (wk_attempt_t *a, const char *json, size_t len,
                         const Aigw__Usage *usage);
    int (*reply_chunk) (wk_attempt_t *a, const char *json, size_t len);
    int (*reply_error) (wk_attempt_t *a, Aigw__ErrorCode code, uint32_t upstream_status,
                        const char *reason);
    int (*timer_arm) (wk_attempt_t *a, int64_t due_ms);
    void (*timer_disarm) (wk_attempt_t *a);
} wk_loop_ops_t;

//  The loop running attempts, as providers see it (worker.c embeds and fills one).
struct wk_loop {
    const wk_loop_ops_t *ops;
    wk_http_t *http;            // the loop's HTTP transport (wk_http.h)
};

//  ---- What a provider may do with its attempt (through a->loop)

//  Send RESULT for the attempt (response_json copied). usage: what the upstream
//  reported (NULL: nothing); missing counts are estimated (wk_usage_fill), so a
//  RESULT always carries usage. 0 / -1 (send failed).
int wk_attempt_reply_result (wk_attempt_t *self, const char *json, size_t len,
                             const Aigw__Usage *usage);

//  Send CHUNK(seq = next) with a chat.completion.chunk JSON (copied). Never
//  blocks: -1 when the socket refused it (queue full, no broker).
int wk_attempt_reply_chunk (wk_attempt_t *self, const char *json, size_t len);

//  Send ERROR for the attempt with a printf-style reason (cut at
//  WK_ATTEMPT_REASON_MAX) and the usage it consumed so far (wk_usage_fill).
//  upstream_status 0 = none. self->upstream_code (if set) goes in upstream_code;
//  self->retry goes in retry_after_ms when the status is 429 or 503.
int wk_attempt_reply_error (wk_attempt_t *self, Aigw__ErrorCode code, uint32_t upstream_status,
                            const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

//  Arm (or re-arm) the attempt's timer for the monotonic time due_ms; when it
//  fires the loop calls on_done with done->timer set. 0 / -1.
int wk_attempt_timer_arm (wk_attempt_t *self, int64_t due_ms);
void wk_attempt_timer_disarm (wk_attempt_t *self);

#endif
