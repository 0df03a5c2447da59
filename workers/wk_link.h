// One broker connection of the worker: a DEALER with ZMTP pings, watched by a socket
// monitor (common/zmon) for CONNECTED and DISCONNECTED, and the per-broker state.
#ifndef AIGW_WK_LINK_H
#define AIGW_WK_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "curve.h"
#include "wire.h"
#include "zmon.h"

#define WK_LINK_FDS 2                   // fds a link asks the loop to sleep on

//  One entry of worker/broker. The worker reads and writes the state fields; the
//  functions below own sock and mon.
typedef struct {
    char endpoint [CFG_STR_MAX];
    uint32_t index;                     // position in worker/broker (wk_attempt_t.broker)
    void *sock;                         // DEALER; NULL while backing off
    zmon_t mon;                         // its CONNECTED / DISCONNECTED events
    bool watched;                       // mon is open (without it the link is up at once)
    int sock_fd;                        // ZMQ_FD of sock and of mon's PAIR, -1 = none
    int mon_fd;                         //   (both edge-triggered)
    bool up;                            // connected, READY sent on this socket
    bool heard;                         // a message other than DISCONNECT on this socket
    bool malformed_logged;              // once per socket
    uint64_t instance;                  // BrokerBeat.instance seen on this socket, 0 = none
    uint32_t in_flight;                 // its attempts running here
    uint32_t advertised;                // capacity last told it (READY or HEARTBEAT)
    int64_t next_hb_ms;                 // while up
    int64_t expiry_ms;                  // while up: presumed lost after this
    int64_t reconnect_at_ms;            // while sock is NULL
    uint32_t backoff_ms;                // next reconnect delay after a silent broker
} wk_link_t;

//  Open a DEALER in ctx and connect it to self->endpoint: wire_setup_socket, the CURVE
//  keys, ZMTP pings (cfg->fabric.ping_ms, 0 = off) and a monitor for CONNECTED and
//  DISCONNECTED (self->watched false if the monitor cannot be had). Resets the
//  per-socket state (up, heard, instance...). 0 / -1 (errno kept, nothing left open).
int wk_link_open (wk_link_t *self, void *ctx, const cfg_t *cfg, const curve_client_t *curve);

//  Close the monitor and the DEALER, which keeps linger_ms to flush what is queued.
//  Clears up. Safe on a closed link.
void wk_link_close (wk_link_t *self, int linger_ms);

//  Send cmd with body (NULL: empty) on the link without blocking. 0 / -1 (errno;
//  ENOTCONN when closed).
int wk_link_send (wk_link_t *self, uint8_t cmd, const ProtobufCMessage *body);

//  Receive one message without waiting: as wire_recv (0, -1 with errno EAGAIN when
//  none is waiting or the link is closed, -2 malformed). Caller closes msg on 0 and -2.
int wk_link_recv (wk_link_t *self, wire_msg_t *msg);

//  The next monitor event of the socket into ev: 0, or -1 when none is waiting.
int wk_link_event (wk_link_t *self, zmon_event_t *ev);

//  True when a message or an event is already queued (reads ZMQ_EVENTS of both
//  sockets: the last zmq call on them before the loop sleeps).
bool wk_link_pending (wk_link_t *self);

//  The fds to sleep on (up to WK_LINK_FDS) into fds; returns how many.
size_t wk_link_fds (const wk_link_t *self, int *fds);

#endif
