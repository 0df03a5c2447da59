// The Python fake LLM upstream (tests/fakes/fake_upstream.py) for C tests: a child process
// on a free loopback port, scripted and read over HTTP (its control API, see README.md).
#ifndef AIGW_FAKE_UPSTREAM_H
#define AIGW_FAKE_UPSTREAM_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct _fake_upstream_t fake_upstream_t;

//  Start the fake and wait for the port it reports; then load script (a JSON script
//  table, NULL: none). NULL on failure, with the reason on stderr.
fake_upstream_t *fake_upstream_new (const char *script);

//  Stop it (SIGTERM) and reap it. Accepts NULL, nulls the caller's pointer.
void fake_upstream_destroy (fake_upstream_t **self_p);

int fake_upstream_port (fake_upstream_t *self);

//  Replace the script table (PUT /_control/script). 0 / -1.
int fake_upstream_script (fake_upstream_t *self, const char *json);

//  A counter of the request log: "connections" (that carried more than control
//  requests), "requests", or an outcome ("completed", "stalled_closed", "cut", ...).
//  -1 on error.
long fake_upstream_count (fake_upstream_t *self, const char *counter);

//  Wait until counter is at least want or timeout_ms passed; the fake answers when its
//  log changes. Returns the value then (below want on timeout), -1 on error.
long fake_upstream_wait (fake_upstream_t *self, const char *counter, long want, int timeout_ms);

//  The request records of the log (GET /_control/log "requests"), oldest first. Caller
//  owns the array (cJSON_Delete). NULL on error.
cJSON *fake_upstream_requests (fake_upstream_t *self);

//  The last LLM request's head (request line and header lines) and body, as received,
//  into the buffers (truncated). 0 / -1 (no request yet, or an error).
int fake_upstream_last (fake_upstream_t *self, char *head, size_t head_len, char *body,
                        size_t body_len);

#endif
