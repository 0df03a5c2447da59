// The test's end of a fabric connection, driven from the test's own thread: receive with
// a timeout, expect a command and decode its body. Used by the fake broker and by tests
// whose own DEALERs play clients and workers (test_broker_loop).
#ifndef AIGW_FAKE_PEER_H
#define AIGW_FAKE_PEER_H

#include "wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

//  The next message on sock within timeout_ms (0: only what is queued already). router:
//  sock is a ROUTER (m->id names the sender). Returns 0 (caller closes m), -1 on
//  timeout, -2 when a malformed message was read and dropped.
int fake_peer_recv (void *sock, bool router, int timeout_ms, wire_msg_t *m);

//  Check that m is command cmd of side and decode its body with desc. Returns the body
//  (caller frees it with protobuf_c_message_free_unpacked), or NULL and fake_peer_why()
//  says what m was instead. m stays open.
void *fake_peer_decode (wire_msg_t *m, wire_side_t side, uint8_t cmd,
                        const ProtobufCMessageDescriptor *desc);

//  fake_peer_recv, then fake_peer_decode. m: NULL, or it receives the message (with its
//  payload and sender) and the caller closes it; else it is closed here. NULL on timeout
//  or another message, with fake_peer_why() set (m is closed then).
void *fake_peer_expect (void *sock, bool router, wire_side_t side, uint8_t cmd,
                        const ProtobufCMessageDescriptor *desc, int timeout_ms, wire_msg_t *m);

//  Why the last fake_peer_decode or fake_peer_expect of this thread returned NULL.
const char *fake_peer_why (void);

//  Set fake_peer_why() (for fakes built on this module). Returns NULL.
void *fake_peer_fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

#endif
