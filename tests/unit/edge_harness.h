// Test harness for the edge's HTTP tests: a fake broker and an in-process edge server
// (fresh per test, port 0), a libcurl handle that keeps its connection, raw sockets for
// what curl cannot express, and polling waits with a generous bound.
#ifndef AIGW_EDGE_HARNESS_H
#define AIGW_EDGE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

#include "server.h"
#include "fake_broker.h"
#include "aclock.h"

#define EH_WAIT_MS 15000                // bound for any awaited event (a failure, not a goal)

//  Models the fake broker announces (with 1 worker each).
#define EH_MODELS "fast-sim,slow-sim,agent/deliberate,fail,busy,timeout,nojson,never,cut," \
                  "gap,badchunk,drip,flood,tools"

typedef struct {
    fake_broker_t *fb;
    cfg_t *cfg;
    edge_server_t *srv;
    int port;
    char base[64];                      // http://127.0.0.1:port
    CURL *curl;                         // one handle: its connection is reused
    char tmp[256];                      // temp directory ("" = none)
    char root[300];                     // tmp/www: the document root for @ROOT@
} eh_t;

typedef struct {
    CURLcode rc;
    long status;
    char body[65536];
    size_t len;
    char headers[8192];                 // every response header line
    long connects;                      // CURLINFO_NUM_CONNECTS: new connections made
    const char *abort_at;               // in: stop reading (hang up) once the body has it
    bool http10;                        // in: speak HTTP/1.0
    long timeout_ms;                    // in: give up after this (0 = EH_WAIT_MS)
} eh_resp_t;

//  Start the fake broker and an edge. edge_extra: more lines for the edge section
//  ("    key = value\n"); "@ROOT@" in it becomes eh->root, an empty directory inside a
//  fresh temp directory eh->tmp (removed by eh_stop).
//  Waits until every loop's broker link is up. NULL on failure.
eh_t *eh_start (const char *edge_extra);
void eh_stop (eh_t **self_p);

//  GET /readyz on a connection of its own answers 200: every loop's broker link is up
//  and a worker is registered.
bool eh_ready (eh_t *self);

//  cmocka setup/teardown: the prestate is the edge_extra text (may be NULL).
int eh_setup (void **state);
int eh_teardown (void **state);

//  One request on the shared curl handle. body NULL: none. headers: NULL-terminated
//  list of extra header lines, or NULL. r's abort_at, http10 and timeout_ms are inputs
//  (kept), the rest is filled in. Returns r->rc.
CURLcode eh_request (eh_t *self, const char *method, const char *path, const char *body,
                     const char *const *headers, eh_resp_t *r);
CURLcode eh_chat (eh_t *self, const char *body, eh_resp_t *r);

//  Value of a response header (case-insensitive name) copied into out; NULL if absent.
const char *eh_header (const eh_resp_t *r, const char *name, char *out, size_t cap);

//  cmocka checks on a response's header (value equal to want, or absent).
void eh_assert_header (const eh_resp_t *r, const char *name, const char *want);
void eh_assert_no_header (const eh_resp_t *r, const char *name);

//  Occurrences of needle in hay.
int eh_count (const char *hay, const char *needle);

fake_broker_stats_t eh_fb_stats (eh_t *self);
edge_server_stats_t eh_stats (eh_t *self);

//  Raw TCP to the edge: src_ip (NULL = any) to bind the client side, rcvbuf (0 = default)
//  set before connecting. Reads time out after EH_WAIT_MS. -1 on failure.
int eh_connect (eh_t *self, const char *src_ip, int rcvbuf);
int eh_send (int fd, const char *text);
//  Read until the buffer holds needle (true) or EOF / timeout (false). *len grows.
bool eh_read_until (int fd, char *buf, size_t cap, size_t *len, const char *needle);
//  Read until EOF (or timeout; *eof says which). Returns the bytes read.
size_t eh_read_all (int fd, char *buf, size_t cap, bool *eof);
//  Read one response (headers and a Content-Length body). Returns its status or -1.
int eh_read_reply (int fd, char *buf, size_t cap);

//  The pause between two checks of EH_WAIT (a poll interval, not a synchronisation).
void eh_sleep_ms (int ms);

//  Poll cond (an expression) every 2 ms until it holds or EH_WAIT_MS passed; the
//  macro's value is cond's last value.
#define EH_WAIT(cond) ({                                                \
        int64_t eh_end_ = aclock_now_ms () + EH_WAIT_MS;                \
        bool eh_ok_;                                                    \
        while (!(eh_ok_ = (cond)) && aclock_now_ms () < eh_end_)        \
            eh_sleep_ms (2);                                            \
        eh_ok_;                                                         \
    })

#endif
