// Fan-out of the metrics stream to browser clients: one producer (the bridge thread)
// publishes reference-counted SSE frames into a bounded queue per client. A client
// whose queue overflows is dropped at once (its queue freed, counted); the producer
// never waits for a client.
#ifndef AIGW_EDGE_FANOUT_H
#define AIGW_EDGE_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snap.h"

typedef struct _fanout_t fanout_t;
typedef struct _fanout_client_t fanout_client_t;

//  One SSE frame ("event: <topic>\ndata: <json>\n\n"), shared by every client queue.
typedef struct {
    snap_t base;                        // reference count (common/snap.h)
    size_t len;                         // bytes in data (without the NUL)
    char data[];
} fmsg_t;

typedef struct {
    uint64_t clients;                   // connected now
    uint64_t joined;                    // clients accepted since start
    uint64_t refused;                   // join refused: at the client limit
    uint64_t dropped;                   // clients dropped on overflow
    uint64_t published;                 // messages published
} fanout_stats_t;

//  Build a frame for topic and json (json must not contain newlines). NULL on OOM.
//  Caller owns one reference.
fmsg_t *fanout_msg_new (const char *topic, const char *json, size_t json_len);
fmsg_t *fanout_msg_ref (fmsg_t *self);
void fanout_msg_release (fmsg_t **self_p);

//  At most max_clients clients, each holding at most max_msgs messages and max_bytes
//  bytes queued (one message is always accepted into an empty queue). NULL on failure.
fanout_t *fanout_new (size_t max_clients, size_t max_msgs, size_t max_bytes);
//  Frees everything; every client must have left. Nulls *self_p; accepts NULL.
void fanout_destroy (fanout_t **self_p);

//  Register a client; its queue starts with the latest message published with
//  latest = true, if any. NULL when at the limit (counted), closed, or out of memory.
fanout_client_t *fanout_join (fanout_t *self);
//  Same, and write 1 to the eventfd notify_fd (non-blocking) whenever the client has
//  something new: a message, a drop, or the close. The fd must outlive the client.
fanout_client_t *fanout_join_notify (fanout_t *self, int notify_fd);
//  Unregister and free a client. Nulls *client_p; accepts NULL.
void fanout_leave (fanout_t *self, fanout_client_t **client_p);

//  Queue msg for every client (each queue takes its own reference; the caller keeps
//  its own). latest: also keep it as the first message for clients joining later.
//  Never blocks on a client.
void fanout_publish (fanout_t *self, fmsg_t *msg, bool latest);

//  Take up to max queued messages into out (caller releases each), waiting up to
//  timeout_ms for the first. Returns how many (0 on timeout), or -1 when the client
//  was dropped or the fan-out closed.
int fanout_take (fanout_client_t *client, fmsg_t **out, size_t max, int timeout_ms);

//  End every client (their fanout_take returns -1) and refuse new ones.
void fanout_close (fanout_t *self);

void fanout_stats (fanout_t *self, fanout_stats_t *out);

//  Clients connected now (lock-free read).
size_t fanout_clients (fanout_t *self);

#endif
