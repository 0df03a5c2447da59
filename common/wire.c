// aigw wire framing: validates header/command/frame count, never asserts on peer bytes.
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WIRE_STACK_BODY 1024

static void s_drain_rest (void *sock)
{
    int more = 0;
    size_t len = sizeof more;
    while (zmq_getsockopt (sock, ZMQ_RCVMORE, &more, &len) == 0 && more) {
        zmq_msg_t f;
        zmq_msg_init (&f);
        int rc = zmq_msg_recv (&f, sock, ZMQ_DONTWAIT);
        zmq_msg_close (&f);
        if (rc < 0)
            break;
        len = sizeof more;
    }
}

static bool s_more (void *sock)
{
    int more = 0;
    size_t len = sizeof more;
    return zmq_getsockopt (sock, ZMQ_RCVMORE, &more, &len) == 0 && more;
}

//  Receive the next frame into f; returns 0, or -2 if there is no next frame.
static int s_next_frame (void *sock, zmq_msg_t *f)
{
    if (!s_more (sock))
        return -2;
    if (zmq_msg_recv (f, sock, ZMQ_DONTWAIT) < 0)
        return -2;
    return 0;
}

//  The ZAP User-Id travels with every frame of a message (libzmq metadata).
static void s_user_id (zmq_msg_t *f, wire_msg_t *msg)
{
    const char *uid = zmq_msg_gets (f, "User-Id");
    size_t n = uid ? strlen (uid) : 0;
    if (n && n < sizeof msg->user_id)
        memcpy (msg->user_id, uid, n + 1);
}

static int s_reject (void *sock, wire_msg_t *msg, const char *why)
{
    msg->error = why;
    s_drain_rest (sock);
    wire_msg_close (msg);
    return -2;
}

int wire_recv (void *sock, bool router, wire_msg_t *msg)
{
    memset (msg, 0, sizeof *msg);
    zmq_msg_init (&msg->body);
    zmq_msg_init (&msg->payload);
    zmq_msg_t f;
    zmq_msg_init (&f);
    if (router) {
        if (zmq_msg_recv (&f, sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close (&f);
            wire_msg_close (msg);
            errno = e;
            return -1;
        }
        size_t n = zmq_msg_size (&f);
        msg->id_len = n > WIRE_ID_MAX ? WIRE_ID_MAX : n;
        memcpy (msg->id, zmq_msg_data (&f), msg->id_len);
        if (s_next_frame (sock, &f)) {
            zmq_msg_close (&f);
            return s_reject (sock, msg, "missing header frame");
        }
    }
    else
    if (zmq_msg_recv (&f, sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close (&f);
        wire_msg_close (msg);
        errno = e;
        return -1;
    }
    //  Header
    s_user_id (&f, msg);
    if (zmq_msg_size (&f) != WIRE_HEADER_LEN) {
        zmq_msg_close (&f);
        return s_reject (sock, msg, "bad header");
    }
    if (memcmp (zmq_msg_data (&f), WIRE_CLIENT, WIRE_HEADER_LEN) == 0)
        msg->side = WIRE_SIDE_CLIENT;
    else
    if (memcmp (zmq_msg_data (&f), WIRE_WORKER, WIRE_HEADER_LEN) == 0)
        msg->side = WIRE_SIDE_WORKER;
    else {
        zmq_msg_close (&f);
        return s_reject (sock, msg, "unknown header");
    }
    //  Command
    if (s_next_frame (sock, &f) || zmq_msg_size (&f) != 1) {
        zmq_msg_close (&f);
        return s_reject (sock, msg, "missing or bad command frame");
    }
    msg->cmd = *(uint8_t *) zmq_msg_data (&f);
    zmq_msg_close (&f);
    //  Body and payload are optional
    if (s_more (sock) && zmq_msg_recv (&msg->body, sock, ZMQ_DONTWAIT) < 0)
        return s_reject (sock, msg, "body frame lost");
    if (s_more (sock)) {
        if (zmq_msg_recv (&msg->payload, sock, ZMQ_DONTWAIT) < 0)
            return s_reject (sock, msg, "payload frame lost");
        msg->has_payload = true;
    }
    if (s_more (sock))
        return s_reject (sock, msg, "too many frames");
    return 0;
}

void wire_msg_close (wire_msg_t *msg)
{
    if (!msg)
        return;
    zmq_msg_close (&msg->body);
    zmq_msg_close (&msg->payload);
    zmq_msg_init (&msg->body);
    zmq_msg_init (&msg->payload);
    msg->has_payload = false;
}

static int s_send_frame (void *sock, const void *data, size_t len, int flags)
{
    return zmq_send (sock, data, len, flags | ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static int s_send_head (void *sock, const uint8_t *id, size_t id_len, wire_side_t side,
                        uint8_t cmd)
{
    if (id && s_send_frame (sock, id, id_len, ZMQ_SNDMORE))
        return -1;
    const char *hdr = side == WIRE_SIDE_CLIENT ? WIRE_CLIENT : WIRE_WORKER;
    //  After the first frame is accepted, later frames of the same message are
    //  accepted too (zmq queues whole messages atomically).
    if (s_send_frame (sock, hdr, WIRE_HEADER_LEN, ZMQ_SNDMORE))
        return -1;
    return s_send_frame (sock, &cmd, 1, ZMQ_SNDMORE);
}

static int s_send_body (void *sock, const ProtobufCMessage *body, bool more)
{
    int flags = more ? ZMQ_SNDMORE : 0;
    if (!body)
        return s_send_frame (sock, "", 0, flags);
    size_t len = protobuf_c_message_get_packed_size (body);
    uint8_t stackbuf[WIRE_STACK_BODY];
    uint8_t *buf = len <= sizeof stackbuf ? stackbuf : malloc (len);
    if (!buf) {
        errno = ENOMEM;
        //  We already sent the head frames: finish the message with an empty body
        s_send_frame (sock, "", 0, flags);
        return -1;
    }
    protobuf_c_message_pack (body, buf);
    int rc = s_send_frame (sock, buf, len, flags);
    if (buf != stackbuf)
        free (buf);
    return rc;
}

static int s_send_ref (void *sock, zmq_msg_t *msg, int flags)
{
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, msg);
    if (zmq_msg_send (&copy, sock, flags | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&copy);
        return -1;
    }
    return 0;
}

int wire_send (void *sock, const uint8_t *id, size_t id_len, wire_side_t side, uint8_t cmd,
               const ProtobufCMessage *body, zmq_msg_t *payload)
{
    if (s_send_head (sock, id, id_len, side, cmd))
        return -1;
    if (s_send_body (sock, body, payload != NULL))
        return -1;
    return payload ? s_send_ref (sock, payload, 0) : 0;
}

int wire_send_msgs (void *sock, const uint8_t *id, size_t id_len, wire_side_t side,
                    uint8_t cmd, zmq_msg_t *body, zmq_msg_t *payload)
{
    if (s_send_head (sock, id, id_len, side, cmd))
        return -1;
    if (s_send_ref (sock, body, payload ? ZMQ_SNDMORE : 0))
        return -1;
    return payload ? s_send_ref (sock, payload, 0) : 0;
}

int wire_pack (const ProtobufCMessage *body, zmq_msg_t *out)
{
    size_t len = protobuf_c_message_get_packed_size (body);
    if (zmq_msg_init_size (out, len))
        return -1;
    protobuf_c_message_pack (body, (uint8_t *) zmq_msg_data (out));
    return 0;
}

int wire_send_bytes (void *sock, const uint8_t *id, size_t id_len, wire_side_t side,
                     uint8_t cmd, const ProtobufCMessage *body,
                     const void *payload, size_t payload_len)
{
    if (s_send_head (sock, id, id_len, side, cmd))
        return -1;
    if (s_send_body (sock, body, payload != NULL))
        return -1;
    if (!payload)
        return 0;
    return s_send_frame (sock, payload, payload_len, 0);
}

int wire_setup_socket (void *sock, bool router, int64_t max_frame)
{
    int zero = 0;
    if (zmq_setsockopt (sock, ZMQ_LINGER, &zero, sizeof zero))
        return -1;
    if (max_frame > 0 && zmq_setsockopt (sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame))
        return -1;
    if (zmq_setsockopt (sock, ZMQ_SNDTIMEO, &zero, sizeof zero))
        return -1;
    int hwm = 100000;
    zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (router) {
        int one = 1;
        if (zmq_setsockopt (sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one))
            return -1;
    }
    return 0;
}

int wire_bound_endpoint (void *sock, char *dst, size_t len)
{
    char ep[256];
    size_t n = sizeof ep;
    if (zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, ep, &n) || n == 0 || n > len)
        return -1;
    memcpy (dst, ep, n);
    dst[n - 1] = '\0';
    return 0;
}

const char *wire_cmd_name (wire_side_t side, uint8_t cmd)
{
    if (side == WIRE_SIDE_CLIENT) {
        switch (cmd) {
            case WIRE_C_SUBMIT: return "SUBMIT";
            case WIRE_C_CANCEL: return "CANCEL";
            case WIRE_C_PING:   return "PING";
            case WIRE_C_CHUNK:  return "CHUNK";
            case WIRE_C_RESULT: return "RESULT";
            case WIRE_C_ERROR:  return "ERROR";
            case WIRE_C_PONG:   return "PONG";
            case WIRE_C_SPEND:  return "SPEND";
        }
        return "?";
    }
    switch (cmd) {
        case WIRE_W_READY:      return "READY";
        case WIRE_W_HEARTBEAT:  return "HEARTBEAT";
        case WIRE_W_CHUNK:      return "CHUNK";
        case WIRE_W_RESULT:     return "RESULT";
        case WIRE_W_ERROR:      return "ERROR";
        case WIRE_W_DISCONNECT: return "DISCONNECT";
        case WIRE_W_TASK:       return "TASK";
        case WIRE_W_CANCEL:     return "CANCEL";
    }
    return "?";
}

bool wire_cmd_valid (wire_side_t side, uint8_t cmd, bool to_broker)
{
    if (side == WIRE_SIDE_CLIENT)
        return to_broker ? (cmd == WIRE_C_SUBMIT || cmd == WIRE_C_CANCEL || cmd == WIRE_C_PING)
                         : (cmd == WIRE_C_CHUNK || cmd == WIRE_C_RESULT
                            || cmd == WIRE_C_ERROR || cmd == WIRE_C_PONG
                            || cmd == WIRE_C_SPEND);
    if (to_broker)
        return cmd == WIRE_W_READY || cmd == WIRE_W_HEARTBEAT || cmd == WIRE_W_CHUNK
               || cmd == WIRE_W_RESULT || cmd == WIRE_W_ERROR || cmd == WIRE_W_DISCONNECT;
    return cmd == WIRE_W_TASK || cmd == WIRE_W_CANCEL || cmd == WIRE_W_HEARTBEAT
           || cmd == WIRE_W_DISCONNECT;
}

char *wire_id_hex (const uint8_t *id, size_t id_len, char *buf, size_t buflen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < id_len && o + 2 < buflen; i++) {
        buf[o++] = hex[id[i] >> 4];
        buf[o++] = hex[id[i] & 15];
    }
    if (buflen)
        buf[o < buflen ? o : buflen - 1] = 0;
    return buf;
}

ProtobufCMessage *wire_unpack (const ProtobufCMessageDescriptor *desc, zmq_msg_t *frame)
{
    return protobuf_c_message_unpack (desc, NULL, zmq_msg_size (frame),
                                      (const uint8_t *) zmq_msg_data (frame));
}

int wire_heartbeat (void *sock, int ivl_ms, int timeout_ms)
{
    //  TTL (in deciseconds on the wire) tells the peer to drop us too after timeout_ms
    int ttl = timeout_ms;
    if (zmq_setsockopt (sock, ZMQ_HEARTBEAT_IVL, &ivl_ms, sizeof ivl_ms)
        || zmq_setsockopt (sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout_ms, sizeof timeout_ms)
        || zmq_setsockopt (sock, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl))
        return -1;
    return 0;
}
