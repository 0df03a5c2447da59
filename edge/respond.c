// How the edge answers a request on libmicrohttpd (see respond.h).
#include "respond.h"
#include "shared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_RAW_MAX 1024                  // the raw answer: status line, headers and body

static bool s_origin_allowed (const cfg_t *cfg, const char *origin, bool *any)
{
    *any = false;
    const char *list = cfg->edge.cors_origins;
    size_t olen = strlen (origin);
    for (const char *p = list; *p;) {
        p += strspn (p, " \t,");
        size_t len = strcspn (p, ",");
        size_t trimmed = len;
        while (trimmed && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == 1 && *p == '*')
            *any = true;
        if (*any || (trimmed == olen && trimmed && strncasecmp (p, origin, olen) == 0))
            return true;
        p += len;
    }
    return false;
}

//  Add the CORS headers a request's Origin earns (none when not allowed).
static void s_cors (edge_req_t *r, struct MHD_Response *resp)
{
    const cfg_t *cfg = r->loop->sh->cfg;
    if (!cfg->edge.cors_origins[0])
        return;
    const char *origin = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Origin");
    bool any;
    if (!origin || !s_origin_allowed (cfg, origin, &any))
        return;
    MHD_add_response_header (resp, "Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any)
        MHD_add_response_header (resp, "Vary", "Origin");
    MHD_add_response_header (resp, "Access-Control-Expose-Headers",
                             "x-aigw-winner, retry-after, x-request-id");
}

//  Add "Name: value\n" lines to a response.
static void s_add_extra (struct MHD_Response *resp, const char *extra)
{
    for (const char *p = extra; p && *p;) {
        const char *eol = strchr (p, '\n');
        size_t len = eol ? (size_t) (eol - p) : strlen (p);
        const char *colon = memchr (p, ':', len);
        if (colon) {
            char name[64], value[256];
            snprintf (name, sizeof name, "%.*s", (int) (colon - p), p);
            const char *v = colon + 1 + strspn (colon + 1, " ");
            snprintf (value, sizeof value, "%.*s", (int) (len - (size_t) (v - p)), v);
            MHD_add_response_header (resp, name, value);
        }
        p += len + (eol ? 1 : 0);
    }
}

enum MHD_Result edge_respond_queue (edge_req_t *r, int status, struct MHD_Response *resp,
                                    const char *type, const char *cache, const char *extra)
{
    if (!resp)
        return MHD_NO;
    if (type)
        MHD_add_response_header (resp, "Content-Type", type);
    MHD_add_response_header (resp, "Cache-Control", cache);
    s_add_extra (resp, extra);
    s_add_extra (resp, r->rl_headers);
    s_cors (r, resp);
    enum MHD_Result rc = MHD_queue_response (r->mc, (unsigned) status, resp);
    MHD_destroy_response (resp);
    r->status = status;
    return rc;
}

enum MHD_Result edge_respond_send (edge_req_t *r, int status, const char *type, char *body,
                                   size_t len, const char *extra)
{
    struct MHD_Response *resp = body
        ? MHD_create_response_from_buffer (len, body, MHD_RESPMEM_MUST_FREE)
        : MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free (body);
        return MHD_NO;
    }
    enum MHD_Result rc = edge_respond_queue (r, status, resp, type, "no-store", extra);
    r->state = EDGE_REQ_DONE;
    return rc;
}

enum MHD_Result edge_respond_sse (edge_req_t *r, MHD_ContentReaderCallback reader)
{
    struct MHD_Response *resp = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN,
                                                                   EDGE_SSE_BLOCK, reader, r,
                                                                   NULL);
    return edge_respond_queue (r, 200, resp, "text/event-stream; charset=utf-8", "no-cache",
                               "X-Accel-Buffering: no\n");
}

enum MHD_Result edge_respond_reply (edge_req_t *r, edge_reply_t *reply, int rc,
                                    const char *extra)
{
    if (rc) {
        edge_reply_reset (reply);
        return edge_respond_error (r, 500, "internal_error", "out of memory", NULL);
    }
    char more[CFG_NAME_MAX + 64 + 640] = "";
    int n = 0;
    if (reply->winner[0])
        n = snprintf (more, sizeof more, "x-aigw-winner: %s\n", reply->winner);
    if (reply->retry_after_s && n >= 0 && (size_t) n < sizeof more)
        n += snprintf (more + n, sizeof more - (size_t) n, "Retry-After: %u\n",
                       reply->retry_after_s);
    if (extra && n >= 0 && (size_t) n < sizeof more)
        snprintf (more + n, sizeof more - (size_t) n, "%s", extra);
    char *body = reply->body;
    reply->body = NULL;
    return edge_respond_send (r, reply->status, "application/json", body, reply->len,
                              more[0] ? more : NULL);
}

enum MHD_Result edge_respond_error (edge_req_t *r, int status, const char *code,
                                    const char *message, const char *extra)
{
    edge_reply_t reply;
    int rc = edge_reply_simple (&reply, status, code, message);
    return edge_respond_reply (r, &reply, rc, extra);
}

enum MHD_Result edge_respond_error_typed (edge_req_t *r, int status, const char *type,
                                          const char *code, const char *message,
                                          const char *extra)
{
    edge_reply_t reply;
    int rc = edge_reply_typed (&reply, status, type, code, message);
    return edge_respond_reply (r, &reply, rc, extra);
}

enum MHD_Result edge_respond_options (edge_req_t *r)
{
    const cfg_t *cfg = r->loop->sh->cfg;
    const char *origin = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND, "Origin");
    const char *want = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND,
                                                    "Access-Control-Request-Method");
    if (!origin || !want)
        return edge_respond_send (r, 204, NULL, NULL, 0, "Allow: GET, POST, OPTIONS\n");
    bool any;
    if (!cfg->edge.cors_origins[0] || !s_origin_allowed (cfg, origin, &any))
        return edge_respond_error (r, 403, "cors_origin_not_allowed",
                                   "this origin is not in edge/cors_origins", NULL);
    const char *hdrs = MHD_lookup_connection_value (r->mc, MHD_HEADER_KIND,
                                                    "Access-Control-Request-Headers");
    //  Echo the requested header names when they are plain tokens, else a fixed list
    const char *allowed = "authorization, content-type, x-api-key, anthropic-version";
    static const char token[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789-_, ";
    if (hdrs && strlen (hdrs) < 200 && strspn (hdrs, token) == strlen (hdrs))
        allowed = hdrs;
    char extra[400];
    snprintf (extra, sizeof extra, "Access-Control-Allow-Methods: GET, POST, OPTIONS\n"
              "Access-Control-Allow-Headers: %s\nAccess-Control-Max-Age: 600\n", allowed);
    return edge_respond_send (r, 204, NULL, NULL, 0, extra);
}

bool edge_respond_raw (int fd, int status, const char *code, const char *message)
{
    edge_reply_t reply;
    if (edge_reply_simple (&reply, status, code, message))
        return false;
    char msg[S_RAW_MAX];
    int n = snprintf (msg, sizeof msg, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                      status, MHD_get_reason_phrase_for ((unsigned) status), reply.len,
                      reply.body);
    edge_reply_reset (&reply);
    return n > 0 && (size_t) n < sizeof msg
           && send (fd, msg, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL) > 0;
}
