// Socket monitor events (zmq_socket_monitor) read from a PAIR without blocking: the one
// home for watching connects, disconnects and refused handshakes in every process.
// A zmon belongs to the thread that owns the watched socket.
#ifndef AIGW_ZMON_H
#define AIGW_ZMON_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    void *sock;                         // the watched socket (not owned)
    void *pair;                         // PAIR receiving its events (owned); NULL = closed
} zmon_t;

typedef struct {
    uint16_t event;                     // one ZMQ_EVENT_* bit
    uint32_t value;                     // the event's value: the fd for CONNECTED,
                                        // ACCEPTED and DISCONNECTED, else errno/interval
    char addr[128];                     // the peer or listener endpoint (may be cut short)
} zmon_event_t;

//  Watch events (ZMQ_EVENT_* bits) of sock through a PAIR in ctx (sock's own context).
//  Call before the socket connects or binds so no event is missed. 0 / -1 (errno).
int zmon_open (zmon_t *self, void *ctx, void *sock, int events);

//  Stop watching and close the PAIR. Call before closing the watched socket. Safe
//  on a closed or zeroed zmon.
void zmon_close (zmon_t *self);

//  The PAIR to poll for ZMQ_POLLIN, or NULL.
void *zmon_socket (const zmon_t *self);

//  Take the next waiting event into ev: 0, or -1 when none is waiting.
int zmon_next (zmon_t *self, zmon_event_t *ev);

//  Name of an event bit for logs ("DISCONNECTED"), "?" if unknown.
const char *zmon_event_name (uint16_t event);

#endif
