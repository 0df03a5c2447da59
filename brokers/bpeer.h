// Misbehaving peers: a malformed message or a refused certificate is logged the
// first time per peer, then only counted, so a noisy peer cannot flood the log.
#ifndef AIGW_BPEER_H
#define AIGW_BPEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_counters.h"

#define BPEER_LOGGED 64             // peers remembered per ring

typedef struct {
    broker_counters_t *c;           // counts `malformed` (borrowed)
    uint64_t logged[BPEER_LOGGED];  // peers whose malformed messages were logged
    size_t logged_next;
    uint64_t denied[BPEER_LOGGED];  // refused certificates already logged
    size_t denied_next;
} bpeer_t;

//  Start with empty rings; c is the counters to add to (must outlive self).
void bpeer_init (bpeer_t *self, broker_counters_t *c);

//  A message from peer id (routing id, len bytes) on side ("client" or "worker")
//  is dropped because of why: counted, and logged once per peer.
void bpeer_malformed (bpeer_t *self, const uint8_t *id, size_t len, const char *side,
                      const char *why);
//  True the first time a certificate (by public key) is refused on a side ('C' or
//  'W'): its refusals are logged once, then only counted.
bool bpeer_denied_first (bpeer_t *self, const char *user_id, char side);

#endif
