// Metrics publisher: an XPUB socket that never blocks and knows which topics anyone
// subscribed to, so the broker encodes a message only when someone will receive it.
#ifndef AIGW_BPUB_H
#define AIGW_BPUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "curve.h"

#define BPUB_PREFIXES_MAX 32     // distinct subscription prefixes tracked
#define BPUB_PREFIX_MAX 16       // longer prefixes never match our topics
#define BPUB_SNDHWM 10000        // messages queued per subscriber, then dropped

typedef struct {
    void *sock;                                  // XPUB (owned)
    char prefix[BPUB_PREFIXES_MAX][BPUB_PREFIX_MAX];
    uint8_t prefix_len[BPUB_PREFIXES_MAX];
    size_t nprefix;
    bool overflow;               // too many prefixes: assume every topic is wanted
    uint64_t sent, dropped;      // messages handed to zmq / refused by it
} bpub_t;

//  Create the XPUB on ctx and bind ep; curve (may be NULL) makes it a CURVE server
//  first. Returns 0, or -1 (errno set; nothing left open).
int bpub_open (bpub_t *self, void *ctx, const char *ep, const curve_server_t *curve);
void bpub_close (bpub_t *self);
//  Read pending (un)subscription messages; call when the socket is readable.
void bpub_read (bpub_t *self);
//  True if some subscriber's prefix matches topic.
bool bpub_wants (const bpub_t *self, const char *topic);
//  Send [topic][data] without blocking; a slow or absent subscriber loses it.
void bpub_send (bpub_t *self, const char *topic, const void *data, size_t len);

#endif
