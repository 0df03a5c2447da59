// aigw wire framing on DEALER<->ROUTER: [routing id][header][command][body][payload?].
// Header "AIGWC1" (client side) or "AIGWW1" (worker side); command is one byte;
// body is a protobuf message from proto/aigw.proto; payload is an optional opaque
// frame (the request JSON) that is fanned out by reference count, never copied.
#ifndef AIGW_WIRE_H
#define AIGW_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include <protobuf-c/protobuf-c.h>

#define WIRE_CLIENT "AIGWC1"
#define WIRE_WORKER "AIGWW1"
#define WIRE_HEADER_LEN 6
#define WIRE_ID_MAX 255
#define WIRE_USER_ID_MAX 41       // a ZAP User-Id we keep: CURVE's Z85 public key + NUL

//  Client side (header AIGWC1)
enum {
    WIRE_C_SUBMIT = 0x01,     // Job + payload(request JSON)
    WIRE_C_CANCEL = 0x02,     // JobRef
    WIRE_C_PING   = 0x03,     // empty
    WIRE_C_CHUNK  = 0x11,     // Chunk
    WIRE_C_RESULT = 0x12,     // Result
    WIRE_C_ERROR  = 0x13,     // Error
    WIRE_C_PONG   = 0x14,     // BrokerStatus
    WIRE_C_SPEND  = 0x15,     // Spend (a loser's usage, after the job's answer)
};

//  Worker side (header AIGWW1)
enum {
    WIRE_W_READY      = 0x01, // WorkerHello
    WIRE_W_HEARTBEAT  = 0x02, // WorkerStats (worker->broker) or BrokerBeat (broker->worker)
    WIRE_W_CHUNK      = 0x03, // Chunk
    WIRE_W_RESULT     = 0x04, // Result
    WIRE_W_ERROR      = 0x05, // Error (code ERR_CANCELLED acknowledges a CANCEL)
    WIRE_W_DISCONNECT = 0x06, // empty
    WIRE_W_TASK       = 0x07, // Task + payload(request JSON)
    WIRE_W_CANCEL     = 0x08, // AttemptRef
};

typedef enum { WIRE_SIDE_CLIENT = 'C', WIRE_SIDE_WORKER = 'W' } wire_side_t;

//  One received message. Frames are zmq_msg_t so a payload can be kept and
//  re-sent by reference (zmq_msg_copy) without copying bytes.
typedef struct {
    uint8_t id[WIRE_ID_MAX];  // routing id (ROUTER sockets only)
    size_t id_len;
    wire_side_t side;
    uint8_t cmd;
    zmq_msg_t body;           // protobuf bytes (may be size 0)
    zmq_msg_t payload;        // optional; size 0 and has_payload false if absent
    bool has_payload;
    const char *error;        // why a message was rejected (static string)
    char user_id[WIRE_USER_ID_MAX]; // the peer's ZAP User-Id (CURVE: its Z85 public key);
                                    // "" without ZAP or if longer than 40 characters
} wire_msg_t;

//  Receive one message without blocking. router: the socket is a ROUTER (first
//  frame is the peer's routing id). Returns 0 and fills msg (caller must call
//  wire_msg_close); -1 with errno EAGAIN when nothing is waiting, or another
//  errno on socket failure; -2 when a malformed message was read and dropped
//  (msg->error says why, msg->id/id_len name the peer if known). msg->user_id is
//  the header frame's "User-Id" property (zmq_msg_gets), set by the ZAP handler.
int wire_recv (void *sock, bool router, wire_msg_t *msg);

//  Release the frames of a received message. Safe to call twice.
void wire_msg_close (wire_msg_t *msg);

//  Send one message. id/id_len: routing id for ROUTER sockets (NULL for DEALER).
//  body may be NULL (empty body). payload may be NULL; if given it is shared by
//  reference (zmq_msg_copy), the caller keeps its own reference.
//  Never blocks: returns 0, or -1 with errno (EHOSTUNREACH for a gone peer on a
//  ROUTER_MANDATORY socket, EAGAIN when the peer's pipe is full).
int wire_send (void *sock, const uint8_t *id, size_t id_len, wire_side_t side, uint8_t cmd,
               const ProtobufCMessage *body, zmq_msg_t *payload);

//  As wire_send, with the payload given as bytes (copied once into a frame).
int wire_send_bytes (void *sock, const uint8_t *id, size_t id_len, wire_side_t side,
                     uint8_t cmd, const ProtobufCMessage *body,
                     const void *payload, size_t payload_len);

//  As wire_send, with the body already packed: body and payload (may be NULL) are both
//  shared by reference (zmq_msg_copy), so a message can be sent again later (a
//  resubmission) without packing or copying. The caller keeps its references.
int wire_send_msgs (void *sock, const uint8_t *id, size_t id_len, wire_side_t side,
                    uint8_t cmd, zmq_msg_t *body, zmq_msg_t *payload);

//  Pack body into a new frame *out (the caller closes it). 0, or -1 out of memory.
int wire_pack (const ProtobufCMessage *body, zmq_msg_t *out);

//  Apply the socket options every aigw socket uses: linger 0, max message size,
//  send timeout 0; ROUTER sockets also get ROUTER_MANDATORY. Returns 0 / -1.
int wire_setup_socket (void *sock, bool router, int64_t max_frame);

//  ZMTP heartbeats on sock (ZMQ_HEARTBEAT_IVL/TIMEOUT/TTL): a PING every ivl_ms, and
//  the connection is dropped (a DISCONNECTED monitor event, then a reconnect) when
//  nothing arrives for timeout_ms, so a peer that vanished without closing its TCP
//  connection (a host cut off) is noticed in timeout_ms. Set before connect/bind. 0 / -1.
int wire_heartbeat (void *sock, int ivl_ms, int timeout_ms);

//  The endpoint sock was last bound to, with the port the kernel chose for a
//  wildcard ("tcp://127.0.0.1:*" -> "tcp://127.0.0.1:41234"), into dst. 0 / -1
//  (dst unchanged).
int wire_bound_endpoint (void *sock, char *dst, size_t len);

//  Command name for logs ("SUBMIT", "TASK", ...), "?" if unknown.
const char *wire_cmd_name (wire_side_t side, uint8_t cmd);

//  True if cmd is a command the given side may send on that socket direction.
//  to_broker: message travels towards the broker.
bool wire_cmd_valid (wire_side_t side, uint8_t cmd, bool to_broker);

//  Render a routing id as printable hex into buf (for logs and keys). Returns buf.
char *wire_id_hex (const uint8_t *id, size_t id_len, char *buf, size_t buflen);

//  Decode a protobuf body; returns NULL if the bytes are not a valid message
//  of that type (including missing required fields). Caller owns the result
//  and frees it with protobuf_c_message_free_unpacked (m, NULL).
ProtobufCMessage *wire_unpack (const ProtobufCMessageDescriptor *desc, zmq_msg_t *frame);

#endif
