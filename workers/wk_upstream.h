// The HTTP provider adapter shared by openai, anthropic and ollama: one POST per attempt,
// a dialect translates the request, the non-streamed reply and the stream events.
#ifndef AIGW_WK_UPSTREAM_H
#define AIGW_WK_UPSTREAM_H

#include "wk_attempt.h"
#include "wk_compl.h"
#include "wk_stream.h"

#include <cjson/cJSON.h>

#define WK_UPSTREAM_GRACE_MS 20     // after the end marker, wait this long for the body to close
#define WK_UPSTREAM_REQ_SLACK (64 * 1024)

//  One upstream API's wire format.
struct wk_dialect {
    const char *name;
    const char *path;                   // appended to base_url ("/chat/completions")
    const char *auth_fmt;               // key header, e.g. "Authorization: Bearer %s"
    const char *const *extra_headers;   // NULL-terminated, or NULL
    wk_framing_t framing;               // of streamed replies
    bool finish_ends;                   // a finish_reason on every choice ends a stream
    //  Build the upstream request body from the client's chat request into out
    //  (a->stream says whether to stream). 0, or -1 with a reason in err (400).
    int (*build) (const wk_attempt_t *a, const char *req, size_t len, buf_t *out,
                  char *err, size_t errlen);
    //  Turn a 2xx non-streamed body into a chat.completion: 0 with *json/*json_len
    //  (the body itself, or out) and usage; -1 with a reason in err.
    int (*full) (const wk_attempt_t *a, const char *body, size_t len, buf_t *out,
                 const char **json, size_t *json_len, wk_usage_t *usage, char *err, size_t errlen);
    wk_stream_event_fn event;           // one event of a streamed reply
};

//  Per-model setup for an HTTP provider: URL, headers, the key. 0 / -1.
int wk_upstream_model_init (wk_model_t *m, const wk_dialect_t *d);

//  Provider ops for the table in each dialect's file.
void wk_upstream_model_fini (wk_model_t *m);
int wk_upstream_start (wk_attempt_t *a, const char *req, size_t req_len);
int wk_upstream_on_data (wk_attempt_t *a, const char *data, size_t len);
void wk_upstream_on_done (wk_attempt_t *a, const wk_done_t *done);
void wk_upstream_cancel (wk_attempt_t *a);

//  Translate a 2xx non-streamed reply with a dialect's reader: parse body as a JSON
//  object, refuse an "error" member, let read() fill a wk_compl_t from the root,
//  render the chat.completion into out (id/created set on it). 0 with usage, or -1
//  with a reason in err.
typedef int (*wk_upstream_reader_fn) (wk_compl_t *c, const cJSON *root, char *err, size_t errlen);
int wk_upstream_translate (const char *body, size_t len, const char *id, int64_t created,
                           wk_upstream_reader_fn read, buf_t *out, wk_usage_t *usage,
                           char *err, size_t errlen);

//  Define the provider table `var` for an HTTP dialect (every op is the shared adapter's).
#define WK_UPSTREAM_PROVIDER(var, pname, dialect)                       \
    static int s_##var##_model_init (wk_model_t *m)                     \
    {                                                                   \
        return wk_upstream_model_init (m, &(dialect));                  \
    }                                                                   \
    const wk_provider_t var = {                                         \
        .name = pname,                                                  \
        .model_init = s_##var##_model_init,                             \
        .model_fini = wk_upstream_model_fini,                           \
        .start = wk_upstream_start,                                     \
        .on_data = wk_upstream_on_data,                                 \
        .on_done = wk_upstream_on_done,                                 \
        .cancel = wk_upstream_cancel,                                   \
    }

#endif
