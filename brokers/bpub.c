// Metrics publisher over XPUB with subscription tracking (see bpub.h).
#include "bpub.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

int bpub_open (bpub_t *self, void *ctx, const char *ep, const curve_server_t *curve)
{
    memset (self, 0, sizeof *self);
    self->sock = zmq_socket (ctx, ZMQ_XPUB);
    if (!self->sock)
        return -1;
    int zero = 0, hwm = BPUB_SNDHWM;
    zmq_setsockopt (self->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (self->sock, ZMQ_SNDTIMEO, &zero, sizeof zero);
    if ((curve && curve_server_apply (curve, self->sock)) || zmq_bind (self->sock, ep)) {
        int err = errno;
        zmq_close (self->sock);
        self->sock = NULL;
        errno = err;
        return -1;
    }
    return 0;
}

void bpub_close (bpub_t *self)
{
    if (self->sock)
        zmq_close (self->sock);
    self->sock = NULL;
}

static int s_find (const bpub_t *self, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < self->nprefix; i++)
        if (self->prefix_len[i] == len && memcmp (self->prefix[i], p, len) == 0)
            return (int) i;
    return -1;
}

//  XPUB passes the first subscribe and the last unsubscribe of each prefix, so a set
//  of prefixes is exact.
static void s_update (bpub_t *self, const uint8_t *msg, size_t size)
{
    if (size < 1 || (msg[0] != 0 && msg[0] != 1))
        return;
    const uint8_t *p = msg + 1;
    size_t len = size - 1;
    if (len >= BPUB_PREFIX_MAX)
        return;
    int at = s_find (self, p, len);
    if (msg[0] == 1 && at < 0) {
        if (self->nprefix == BPUB_PREFIXES_MAX) {
            self->overflow = true;
            return;
        }
        memcpy (self->prefix[self->nprefix], p, len);
        self->prefix_len[self->nprefix++] = (uint8_t) len;
    }
    else
    if (msg[0] == 0 && at >= 0) {
        self->nprefix--;
        memcpy (self->prefix[at], self->prefix[self->nprefix], BPUB_PREFIX_MAX);
        self->prefix_len[at] = self->prefix_len[self->nprefix];
    }
}

void bpub_read (bpub_t *self)
{
    uint8_t buf[256];
    for (int i = 0; i < 1024; i++) {
        int n = zmq_recv (self->sock, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        if ((size_t) n <= sizeof buf)
            s_update (self, buf, (size_t) n);
    }
}

bool bpub_wants (const bpub_t *self, const char *topic)
{
    if (self->overflow)
        return true;
    size_t tlen = strlen (topic);
    for (size_t i = 0; i < self->nprefix; i++)
        if (self->prefix_len[i] <= tlen && memcmp (self->prefix[i], topic, self->prefix_len[i]) == 0)
            return true;
    return false;
}

void bpub_send (bpub_t *self, const char *topic, const void *data, size_t len)
{
    size_t tlen = strlen (topic);
    if (zmq_send (self->sock, topic, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) != (int) tlen
        || zmq_send (self->sock, data, len, ZMQ_DONTWAIT) != (int) len) {
        self->dropped++;
        return;
    }
    self->sent++;
}
