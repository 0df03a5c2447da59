// A fake aigw-broker for tests, on a ROUTER bound on tcp loopback, in two modes.
//
// Scripted (fake_broker_new): the client side (what aigw-edge talks to), answered from
// a thread of its own. PING gets a PONG; the first target's name picks a SUBMIT's answer:
//   never*  -> held until fake_broker_release     slow*    -> RESULT after slow_ms
//   fail*   -> ERROR(ERR_UPSTREAM), attempts fail busy*    -> ERROR(ERR_OVERLOADED)
//   timeout*-> ERROR(ERR_TIMEOUT)                  nojson*  -> RESULT with a non-JSON body
//   anything else -> RESULT at once, the first target wins, the others are cancelled.
// Streaming jobs (Job.stream) with any other name get CHUNKs "Hello", " from", " <name>",
// a finish chunk, then the RESULT. Besides: cut* -> 2 chunks then ERROR (winner failed);
// gap* -> chunks seq 0 and 2 (one lost); badchunk* -> a chunk that is not JSON, no end;
// drip* -> a chunk at once and one every 50 ms until cancelled; flood* -> the same with
// 2 KiB of text in each chunk, one every 1 ms; tools* -> a tool_calls chunk, a finish
// chunk, the RESULT. never*, fail*, busy*, timeout* as above.
//
// Driven (fake_broker_new_driven): either side (the worker side is what aigw-worker
// talks to), read and answered by the test from its own thread: the broker has no
// thread; fake_broker_recv/expect read, fake_broker_send/task/cancel answer the peer that
// spoke last.
#ifndef AIGW_FAKE_BROKER_H
#define AIGW_FAKE_BROKER_H

#include "fake_peer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

typedef struct _fake_broker_t fake_broker_t;

typedef struct {
    uint64_t pings;
    uint64_t submits;
    uint64_t cancels;
    uint64_t held;                      // answers waiting (never* and slow*)
} fake_broker_stats_t;

//  What the last SUBMIT asked for.
typedef struct {
    uint64_t job_id;
    char targets[512];                  // comma-joined
    int policy;                         // Aigw__Policy
    bool has_hedge;
    uint32_t hedge_delay_ms;
    uint32_t deadline_ms;               // 0 = not set
    uint32_t ttft_timeout_ms;           // 0 = not set
    bool stream;                        // Job.stream
    char payload[4096];                 // request JSON (truncated)
} fake_broker_job_t;

//  Scripted: bind a ROUTER on endpoint (e.g. "tcp://127.0.0.1:*") and serve the client
//  side from a thread. models: comma list announced in PONG, each with `workers` workers.
fake_broker_t *fake_broker_new (const char *endpoint, const char *models, uint32_t workers);

//  Driven: bind a ROUTER on endpoint that speaks `side` (WIRE_SIDE_WORKER: the backend,
//  WIRE_SIDE_CLIENT: the frontend); the test reads and answers.
fake_broker_t *fake_broker_new_driven (const char *endpoint, wire_side_t side);

void fake_broker_destroy (fake_broker_t **self_p);

//  The endpoint actually bound (with the real port).
const char *fake_broker_endpoint (fake_broker_t *self);

//  ---- scripted mode

//  Stop answering anything (simulates a hung or dead broker) or resume.
void fake_broker_set_silent (fake_broker_t *self, bool silent);

//  Delay for slow* targets (default 200 ms).
void fake_broker_set_slow_ms (fake_broker_t *self, uint32_t ms);

//  Answer every held never* job with a RESULT on the next tick.
void fake_broker_release (fake_broker_t *self);

void fake_broker_stats (fake_broker_t *self, fake_broker_stats_t *out);
void fake_broker_last_job (fake_broker_t *self, fake_broker_job_t *out);

//  ---- driven mode (from one thread)

//  The ROUTER, to poll it with other sockets.
void *fake_broker_socket (fake_broker_t *self);

//  The next message of any command within timeout_ms (0: only what is queued). Returns
//  0 (caller closes m), -1 on timeout, -2 when a malformed message was read and dropped.
//  The sender becomes the peer that send, task and cancel answer.
int fake_broker_recv (fake_broker_t *self, int timeout_ms, wire_msg_t *m);

//  As fake_broker_recv, skipping the worker side's HEARTBEATs (timeout_ms in all).
int fake_broker_next (fake_broker_t *self, int timeout_ms, wire_msg_t *m);

//  The next message but HEARTBEATs must be cmd: returns its body decoded with desc (caller
//  frees it with protobuf_c_message_free_unpacked), or NULL and fake_peer_why() says what
//  came instead (nothing, another command: an ERROR's code and message).
void *fake_broker_expect (fake_broker_t *self, uint8_t cmd, const ProtobufCMessageDescriptor *desc,
                          int timeout_ms);

//  The routing id of the peer that spoke last (*len 0: none yet).
const uint8_t *fake_broker_peer (fake_broker_t *self, size_t *len);

//  Send cmd with body (NULL: empty) and payload (NULL: none) to the peer. 0 / -1.
int fake_broker_send (fake_broker_t *self, uint8_t cmd, const ProtobufCMessage *body,
                      const void *payload, size_t payload_len);

//  Send n raw frames to the peer, after its routing id (malformed input on purpose).
//  A NULL data[i] is an empty frame. 0 / -1.
int fake_broker_send_frames (fake_broker_t *self, int n, const void *const *data,
                             const size_t *len);

//  Worker side: a TASK for attempt_id of job_id with payload (NULL: none), deadline_ms
//  (0: none) and Task.stream; a CANCEL of attempt_id. 0 / -1.
int fake_broker_task (fake_broker_t *self, uint64_t job_id, uint64_t attempt_id, const char *target,
                      const char *payload, uint32_t deadline_ms, bool stream);
int fake_broker_cancel (fake_broker_t *self, uint64_t attempt_id);

//  Worker side: a HEARTBEAT whose body is BrokerBeat{instance} (0: an empty body, as an
//  older broker sends). 0 / -1.
int fake_broker_beat (fake_broker_t *self, uint64_t instance);

//  A broker restart: close the ROUTER (its peers' connections drop), wait until its
//  listener is gone, bind a new ROUTER on the same endpoint. 0 / -1.
int fake_broker_restart (fake_broker_t *self);

#endif
