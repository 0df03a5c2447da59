// Worker internals shared by the event loop, the HTTP transport and the provider
// adapters: attempts, served models, the provider interface and the loop's services.
#ifndef AIGW_WK_CORE_H
#define AIGW_WK_CORE_H

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

typedef struct _worker_t worker_t;
typedef struct wk_attempt wk_attempt_t;
typedef struct wk_model wk_model_t;
typedef struct wk_stream wk_stream_t;
typedef struct wk_dialect wk_dialect_t;

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
    //  replied ERROR with wk_reply_error.
    int (*start) (worker_t *w, wk_attempt_t *a, const char *req, size_t req_len);
    //  Response bytes from the transport (a->worker is the loop). 0 to go on,
    //  -1 to abort the transfer.
    int (*on_data) (wk_attempt_t *a, const char *data, size_t len);
    //  The transport finished: reply with wk_reply_result or wk_reply_error.
    void (*on_done) (worker_t *w, wk_attempt_t *a, const wk_done_t *done);
    //  Abort any I/O at once and release what the attempt holds. No reply.
    //  Idempotent.
    void (*cancel) (worker_t *w, wk_attempt_t *a);
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
    uint64_t attempt_id;
    wk_model_t *model;
    worker_t *worker;           // the loop running it
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
    hmap_node_t node;           // in the table's index by attempt_id
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

//  An HTTP request for wk_http_start. All pointers must stay valid until the
//  transfer ends or is aborted (the attempt or model owns them).
typedef struct {
    const char *url;
    struct curl_slist *headers;
    const char *body;
    size_t body_len;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;        // whole transfer
    uint64_t max_bytes;         // refuse a declared Content-Length above this
} wk_http_req_t;

//  ---- Loop services for providers (worker.c, wk_http.c)

//  Send RESULT for the attempt (response_json copied). usage: what the upstream
//  reported (NULL: nothing); missing counts are estimated (wk_usage_fill), so a
//  RESULT always carries usage. 0 / -1 (send failed).
int wk_reply_result (worker_t *w, wk_attempt_t *a, const char *json, size_t len,
                     const Aigw__Usage *usage);

//  Send CHUNK(seq = next) with a chat.completion.chunk JSON (copied). Never
//  blocks: -1 when the socket refused it (queue full, no broker).
int wk_reply_chunk (worker_t *w, wk_attempt_t *a, const char *json, size_t len);

//  Send ERROR for the attempt with a printf-style reason and the usage it consumed
//  so far (wk_usage_fill). upstream_status 0 = none. a->upstream_code (if set) goes
//  in upstream_code; a->retry goes in retry_after_ms when the status is 429 or 503.
int wk_reply_error (worker_t *w, wk_attempt_t *a, Aigw__ErrorCode code, uint32_t upstream_status,
                    const char *fmt, ...) __attribute__ ((format (printf, 5, 6)));

//  Arm (or re-arm) the attempt's timer for the monotonic time due_ms; when it
//  fires the loop calls on_done with done->timer set. 0 / -1.
int wk_timer_arm (worker_t *w, wk_attempt_t *a, int64_t due_ms);
void wk_timer_disarm (worker_t *w, wk_attempt_t *a);

//  Start an HTTP POST for the attempt on the loop's curl multi handle. Bytes
//  go to prov->on_data; completion to prov->on_done. 0 / -1 (a->curl_err says why).
int wk_http_start (worker_t *w, wk_attempt_t *a, const wk_http_req_t *req);

//  Abort the attempt's transfer at once: the connection is closed, not reused.
void wk_http_abort (worker_t *w, wk_attempt_t *a);

//  The loop's curl multi handle (for the HTTP transport).
CURLM *wk_multi (worker_t *w);

//  End an attempt: make sure a reply went out (ERR_INTERNAL if the provider
//  gave none), release provider resources and free the slot.
void wk_attempt_end (worker_t *w, wk_attempt_t *a);

//  Read finished transfers off the multi handle; for each, call on_done and
//  end the attempt. (wk_http.c, called by the loop.)
void wk_http_collect (worker_t *w);

//  The provider for a configured provider type; NULL for a type with no adapter.
const wk_provider_t *wk_provider_for (cfg_provider_t type);

extern const wk_provider_t wk_sim_provider;
extern const wk_provider_t wk_openai_provider;
extern const wk_provider_t wk_anthropic_provider;
extern const wk_provider_t wk_ollama_provider;

#endif
