// Socket monitor events read from a PAIR (see zmon.h).
#include "zmon.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

static _Atomic uint64_t s_seq;          // unique inproc names within the process

int zmon_open (zmon_t *self, void *ctx, void *sock, int events)
{
    memset (self, 0, sizeof *self);
    char ep[64];
    snprintf (ep, sizeof ep, "inproc://aigw-zmon-%llu",
              (unsigned long long) atomic_fetch_add (&s_seq, 1));
    if (zmq_socket_monitor (sock, ep, events))
        return -1;
    self->sock = sock;
    self->pair = zmq_socket (ctx, ZMQ_PAIR);
    int zero = 0;
    if (!self->pair || zmq_setsockopt (self->pair, ZMQ_LINGER, &zero, sizeof zero)
        || zmq_connect (self->pair, ep)) {
        int err = errno;
        zmon_close (self);
        errno = err;
        return -1;
    }
    return 0;
}

void zmon_close (zmon_t *self)
{
    if (self->sock)
        zmq_socket_monitor (self->sock, NULL, 0);
    if (self->pair)
        zmq_close (self->pair);
    memset (self, 0, sizeof *self);
}

void *zmon_socket (const zmon_t *self)
{
    return self->pair;
}

int zmon_next (zmon_t *self, zmon_event_t *ev)
{
    if (!self->pair)
        return -1;
    //  Two frames: 6 bytes (uint16 event, uint32 value, host order), then the address
    for (;;) {
        zmq_msg_t head, addr;
        zmq_msg_init (&head);
        if (zmq_msg_recv (&head, self->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&head);
            return -1;
        }
        bool ok = zmq_msg_size (&head) == 6;
        if (ok) {
            memcpy (&ev->event, zmq_msg_data (&head), 2);
            memcpy (&ev->value, (const uint8_t *) zmq_msg_data (&head) + 2, 4);
        }
        bool more = zmq_msg_more (&head);
        zmq_msg_close (&head);
        ev->addr[0] = 0;
        if (more) {
            zmq_msg_init (&addr);
            if (zmq_msg_recv (&addr, self->pair, ZMQ_DONTWAIT) >= 0) {
                size_t n = zmq_msg_size (&addr);
                if (n >= sizeof ev->addr)
                    n = sizeof ev->addr - 1;
                memcpy (ev->addr, zmq_msg_data (&addr), n);
                ev->addr[n] = 0;
            }
            zmq_msg_close (&addr);
        }
        if (ok)
            return 0;
    }
}

const char *zmon_event_name (uint16_t event)
{
    switch (event) {
        case ZMQ_EVENT_CONNECTED:       return "CONNECTED";
        case ZMQ_EVENT_CONNECT_DELAYED: return "CONNECT_DELAYED";
        case ZMQ_EVENT_CONNECT_RETRIED: return "CONNECT_RETRIED";
        case ZMQ_EVENT_LISTENING:       return "LISTENING";
        case ZMQ_EVENT_BIND_FAILED:     return "BIND_FAILED";
        case ZMQ_EVENT_ACCEPTED:        return "ACCEPTED";
        case ZMQ_EVENT_ACCEPT_FAILED:   return "ACCEPT_FAILED";
        case ZMQ_EVENT_CLOSED:          return "CLOSED";
        case ZMQ_EVENT_CLOSE_FAILED:    return "CLOSE_FAILED";
        case ZMQ_EVENT_DISCONNECTED:    return "DISCONNECTED";
        case ZMQ_EVENT_MONITOR_STOPPED: return "MONITOR_STOPPED";
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: return "HANDSHAKE_FAILED_NO_DETAIL";
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:        return "HANDSHAKE_SUCCEEDED";
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:  return "HANDSHAKE_FAILED_PROTOCOL";
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:      return "HANDSHAKE_FAILED_AUTH";
        default:                        return "?";
    }
}
