// The test's end of a fabric connection: receive with a timeout, expect and decode.
#include "fake_peer.h"
#include "aclock.h"
#include "aigw.pb-c.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char s_why[512];

void *fake_peer_fail (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (s_why, sizeof s_why, fmt, ap);
    va_end (ap);
    return NULL;
}

const char *fake_peer_why (void)
{
    return s_why;
}

int fake_peer_recv (void *sock, bool router, int timeout_ms, wire_msg_t *m)
{
    int64_t until = aclock_now_ms () + timeout_ms;
    for (;;) {
        int rc = wire_recv (sock, router, m);
        if (rc != -1)
            return rc;
        int64_t left = until - aclock_now_ms ();
        if (left <= 0)
            return -1;
        zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, (long) left);
    }
}

void *fake_peer_decode (wire_msg_t *m, wire_side_t side, uint8_t cmd,
                        const ProtobufCMessageDescriptor *desc)
{
    const char *want = wire_cmd_name (side, cmd);
    if (m->side != side || m->cmd != cmd) {
        const char *got = wire_cmd_name (m->side, m->cmd);
        bool error = m->cmd == (m->side == WIRE_SIDE_CLIENT ? WIRE_C_ERROR : WIRE_W_ERROR);
        Aigw__Error *e = error ? (Aigw__Error *) wire_unpack (&aigw__error__descriptor, &m->body)
                               : NULL;
        if (e)
            fake_peer_fail ("expected %s, got ERROR %d: %s", want, (int) e->code,
                            e->message ? e->message : "");
        else
            fake_peer_fail ("expected %s, got %s", want, got);
        if (e)
            protobuf_c_message_free_unpacked (&e->base, NULL);
        return NULL;
    }
    ProtobufCMessage *body = wire_unpack (desc, &m->body);
    if (!body)
        return fake_peer_fail ("%s: the body does not decode as %s", want, desc->name);
    return body;
}

void *fake_peer_expect (void *sock, bool router, wire_side_t side, uint8_t cmd,
                        const ProtobufCMessageDescriptor *desc, int timeout_ms, wire_msg_t *m)
{
    wire_msg_t own;
    wire_msg_t *msg = m ? m : &own;
    int rc = fake_peer_recv (sock, router, timeout_ms, msg);
    if (rc == -1)
        return fake_peer_fail ("no %s within %d ms", wire_cmd_name (side, cmd), timeout_ms);
    if (rc == -2)
        return fake_peer_fail ("a malformed message instead of %s: %s", wire_cmd_name (side, cmd),
                               msg->error ? msg->error : "?");
    void *body = fake_peer_decode (msg, side, cmd, desc);
    if (!m || !body)
        wire_msg_close (msg);
    return body;
}
