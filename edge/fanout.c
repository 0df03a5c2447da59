// Bounded per-client queues for the metrics stream. Lock order: fan-out, then client;
// a client's lock is held only to move pointers, never across I/O.
#include "fanout.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct _fanout_client_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    fmsg_t **ring;                      // cap slots
    size_t cap, head, count, bytes;
    bool dropped;                       // overflowed: queue freed, handler must close
    bool closed;                        // fan-out closed
    int notify_fd;                      // eventfd written when there is news, or -1
};

struct _fanout_t {
    pthread_mutex_t lock;               // clients, latest, closed
    size_t max_clients, max_msgs, max_bytes;
    fanout_client_t **clients;          // max_clients slots, NULL = free
    size_t nclients;
    fmsg_t *latest;
    bool closed;
    _Atomic uint64_t joined, refused, dropped, published;
    _Atomic size_t connected;           // nclients, readable without the lock
};

//  --------------------------------------------------------------- messages

static void s_fmsg_free (snap_t *base)
{
    free (base);                        // base is the first member
}

fmsg_t *fanout_msg_new (const char *topic, const char *json, size_t json_len)
{
    size_t tlen = strlen (topic);
    size_t len = 7 + tlen + 7 + json_len + 2;      // "event: " t "\ndata: " json "\n\n"
    fmsg_t *self = malloc (sizeof *self + len + 1);
    if (!self)
        return NULL;
    snap_init (&self->base, s_fmsg_free);
    char *p = self->data;
    memcpy (p, "event: ", 7);
    memcpy (p += 7, topic, tlen);
    memcpy (p += tlen, "\ndata: ", 7);
    memcpy (p += 7, json, json_len);
    memcpy (p += json_len, "\n\n", 3);
    self->len = len;
    return self;
}

fmsg_t *fanout_msg_ref (fmsg_t *self)
{
    snap_ref (self ? &self->base : NULL);
    return self;
}

void fanout_msg_release (fmsg_t **self_p)
{
    snap_t *base = self_p && *self_p ? &(*self_p)->base : NULL;
    snap_release (&base);
    if (self_p)
        *self_p = NULL;
}

//  --------------------------------------------------------------- clients

static fanout_client_t *s_client_new (size_t max_msgs, int notify_fd)
{
    fanout_client_t *c = calloc (1, sizeof *c);
    if (!c)
        return NULL;
    c->notify_fd = notify_fd;
    c->ring = calloc (max_msgs, sizeof *c->ring);
    c->cap = max_msgs;
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init (&c->cond, &attr);
    pthread_condattr_destroy (&attr);
    if (!c->ring || rc) {
        free (c->ring);
        free (c);
        return NULL;
    }
    pthread_mutex_init (&c->lock, NULL);
    return c;
}

//  Release every queued message (client lock held, or client private).
static void s_client_flush (fanout_client_t *c)
{
    while (c->count) {
        fanout_msg_release (&c->ring[c->head]);
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
    c->head = 0;
    c->bytes = 0;
}

//  Queue msg on a client; false if it overflowed (the client is then dropped).
static bool s_client_push (fanout_t *self, fanout_client_t *c, fmsg_t *msg)
{
    if (c->dropped || c->closed)
        return true;
    if (c->count == c->cap || (c->count && c->bytes + msg->len > self->max_bytes)) {
        s_client_flush (c);
        c->dropped = true;
        return false;
    }
    c->ring[(c->head + c->count) % c->cap] = fanout_msg_ref (msg);
    c->count++;
    c->bytes += msg->len;
    return true;
}

//  --------------------------------------------------------------- fan-out

fanout_t *fanout_new (size_t max_clients, size_t max_msgs, size_t max_bytes)
{
    if (!max_clients || !max_msgs || !max_bytes)
        return NULL;
    fanout_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->clients = calloc (max_clients, sizeof *self->clients);
    if (!self->clients) {
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->max_clients = max_clients;
    self->max_msgs = max_msgs;
    self->max_bytes = max_bytes;
    return self;
}

void fanout_destroy (fanout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fanout_t *self = *self_p;
    *self_p = NULL;
    fanout_msg_release (&self->latest);
    free (self->clients);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

//  Wake the client's reader (an eventfd: never blocks, the count saturates harmlessly).
static void s_notify (fanout_client_t *c)
{
    uint64_t one = 1;
    if (c->notify_fd >= 0 && write (c->notify_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        c->notify_fd = -1;
}

fanout_client_t *fanout_join (fanout_t *self)
{
    return fanout_join_notify (self, -1);
}

fanout_client_t *fanout_join_notify (fanout_t *self, int notify_fd)
{
    pthread_mutex_lock (&self->lock);
    fanout_client_t *c = NULL;
    if (self->closed || self->nclients == self->max_clients) {
        if (!self->closed)
            atomic_fetch_add (&self->refused, 1);
        goto done;
    }
    c = s_client_new (self->max_msgs, notify_fd);
    if (!c)
        goto done;
    if (self->latest)
        s_client_push (self, c, self->latest);
    for (size_t i = 0; i < self->max_clients; i++)
        if (!self->clients[i]) {
            self->clients[i] = c;
            break;
        }
    self->nclients++;
    atomic_store (&self->connected, self->nclients);
    atomic_fetch_add (&self->joined, 1);
done:
    pthread_mutex_unlock (&self->lock);
    return c;
}

void fanout_leave (fanout_t *self, fanout_client_t **client_p)
{
    if (!client_p || !*client_p)
        return;
    fanout_client_t *c = *client_p;
    *client_p = NULL;
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < self->max_clients; i++)
        if (self->clients[i] == c) {
            self->clients[i] = NULL;
            self->nclients--;
            atomic_store (&self->connected, self->nclients);
            break;
        }
    pthread_mutex_unlock (&self->lock);
    s_client_flush (c);
    pthread_cond_destroy (&c->cond);
    pthread_mutex_destroy (&c->lock);
    free (c->ring);
    free (c);
}

void fanout_publish (fanout_t *self, fmsg_t *msg, bool latest)
{
    pthread_mutex_lock (&self->lock);
    if (latest) {
        fanout_msg_release (&self->latest);
        self->latest = fanout_msg_ref (msg);
    }
    for (size_t i = 0; i < self->max_clients; i++) {
        fanout_client_t *c = self->clients[i];
        if (!c)
            continue;
        pthread_mutex_lock (&c->lock);
        bool was_empty = c->count == 0;
        if (!s_client_push (self, c, msg))
            atomic_fetch_add (&self->dropped, 1);
        pthread_cond_signal (&c->cond);
        //  A reader only waits on an empty queue: one wake-up per refill is enough
        if (was_empty || c->dropped)
            s_notify (c);
        pthread_mutex_unlock (&c->lock);
    }
    atomic_fetch_add (&self->published, 1);
    pthread_mutex_unlock (&self->lock);
}

static void s_deadline (struct timespec *ts, int timeout_ms)
{
    clock_gettime (CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int fanout_take (fanout_client_t *c, fmsg_t **out, size_t max, int timeout_ms)
{
    struct timespec until;
    s_deadline (&until, timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock (&c->lock);
    while (!c->count && !c->dropped && !c->closed)
        if (pthread_cond_timedwait (&c->cond, &c->lock, &until) == ETIMEDOUT)
            break;
    int n = -1;
    if (!c->dropped && !c->closed) {
        n = 0;
        while (c->count && (size_t) n < max) {
            out[n++] = c->ring[c->head];
            c->ring[c->head] = NULL;
            c->bytes -= out[n - 1]->len;
            c->head = (c->head + 1) % c->cap;
            c->count--;
        }
    }
    pthread_mutex_unlock (&c->lock);
    return n;
}

void fanout_close (fanout_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->closed = true;
    for (size_t i = 0; i < self->max_clients; i++) {
        fanout_client_t *c = self->clients[i];
        if (!c)
            continue;
        pthread_mutex_lock (&c->lock);
        c->closed = true;
        pthread_cond_signal (&c->cond);
        s_notify (c);
        pthread_mutex_unlock (&c->lock);
    }
    pthread_mutex_unlock (&self->lock);
}

size_t fanout_clients (fanout_t *self)
{
    return atomic_load (&self->connected);
}

void fanout_stats (fanout_t *self, fanout_stats_t *out)
{
    pthread_mutex_lock (&self->lock);
    out->clients = self->nclients;
    pthread_mutex_unlock (&self->lock);
    out->joined = atomic_load (&self->joined);
    out->refused = atomic_load (&self->refused);
    out->dropped = atomic_load (&self->dropped);
    out->published = atomic_load (&self->published);
}
