// One broker connection of the worker (see wk_link.h): the DEALER, its ZMTP pings and
// its socket monitor.
#include "wk_link.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

static void s_reset (wk_link_t *self)
{
    self->sock = NULL;
    memset (&self->mon, 0, sizeof self->mon);
    self->watched = false;
    self->sock_fd = self->mon_fd = -1;
    self->up = self->heard = self->malformed_logged = false;
    self->instance = 0;
    self->advertised = 0;
}

//  Watch CONNECTED and DISCONNECTED; without a monitor the link still works (as up
//  from the start, with heartbeat silence as its only loss detection).
static void s_watch (wk_link_t *self, void *ctx)
{
    if (zmon_open (&self->mon, ctx, self->sock, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED))
        return;
    size_t len = sizeof self->mon_fd;
    if (zmq_getsockopt (zmon_socket (&self->mon), ZMQ_FD, &self->mon_fd, &len)) {
        zmon_close (&self->mon);
        self->mon_fd = -1;
        return;
    }
    self->watched = true;
}

int wk_link_open (wk_link_t *self, void *ctx, const cfg_t *cfg, const curve_client_t *curve)
{
    wk_link_close (self, 0);
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    if (!sock)
        return -1;
    self->sock = sock;
    size_t len = sizeof self->sock_fd;
    if (wire_setup_socket (sock, false, cfg->broker.max_frame)
    ||  curve_client_apply (curve, sock)
    ||  (cfg->fabric.ping_ms
         && wire_heartbeat (sock, (int) cfg->fabric.ping_ms, (int) cfg->fabric.ping_timeout_ms))
    ||  zmq_getsockopt (sock, ZMQ_FD, &self->sock_fd, &len))
        goto fail;
    s_watch (self, ctx);
    if (zmq_connect (sock, self->endpoint))
        goto fail;
    return 0;
fail:;
    int err = errno;
    wk_link_close (self, 0);
    errno = err;
    return -1;
}

void wk_link_close (wk_link_t *self, int linger_ms)
{
    if (self->watched)
        zmon_close (&self->mon);
    if (self->sock) {
        zmq_setsockopt (self->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
        zmq_close (self->sock);
    }
    s_reset (self);
}

int wk_link_send (wk_link_t *self, uint8_t cmd, const ProtobufCMessage *body)
{
    if (!self->sock) {
        errno = ENOTCONN;
        return -1;
    }
    return wire_send (self->sock, NULL, 0, WIRE_SIDE_WORKER, cmd, body, NULL);
}

int wk_link_recv (wk_link_t *self, wire_msg_t *msg)
{
    if (!self->sock) {
        errno = EAGAIN;
        return -1;
    }
    return wire_recv (self->sock, false, msg);
}

int wk_link_event (wk_link_t *self, zmon_event_t *ev)
{
    return self->watched ? zmon_next (&self->mon, ev) : -1;
}

static bool s_readable (void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    return sock && zmq_getsockopt (sock, ZMQ_EVENTS, &events, &len) == 0
        && (events & ZMQ_POLLIN) != 0;
}

bool wk_link_pending (wk_link_t *self)
{
    bool events = self->watched && s_readable (zmon_socket (&self->mon));
    return s_readable (self->sock) || events;
}

size_t wk_link_fds (const wk_link_t *self, int *fds)
{
    size_t n = 0;
    if (self->sock && self->sock_fd >= 0)
        fds [n++] = self->sock_fd;
    if (self->watched && self->mon_fd >= 0)
        fds [n++] = self->mon_fd;
    return n;
}
