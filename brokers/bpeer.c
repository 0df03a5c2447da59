// Log-once rings for misbehaving peers (see bpeer.h).
#include "bpeer.h"

#include <string.h>

#include "hmap.h"
#include "log.h"
#include "wire.h"

void bpeer_init (bpeer_t *self, broker_counters_t *c)
{
    memset (self, 0, sizeof *self);
    self->c = c;
}

void bpeer_malformed (bpeer_t *self, const uint8_t *id, size_t len, const char *side,
                      const char *why)
{
    self->c->malformed++;
    uint64_t h = hmap_bytes (id, len);
    for (size_t i = 0; i < BPEER_LOGGED; i++)
        if (self->logged[i] == h)
            return;
    self->logged[self->logged_next] = h;
    self->logged_next = (self->logged_next + 1) % BPEER_LOGGED;
    char hex[2 * 32 + 1];
    wire_id_hex (id, len < 32 ? len : 32, hex, sizeof hex);
    log_warn ("malformed message from %s %s: %s (further ones from this peer are only counted)",
              side, hex, why ? why : "?");
}

bool bpeer_denied_first (bpeer_t *self, const char *user_id, char side)
{
    uint64_t h = hmap_bytes ((const uint8_t *) user_id, strlen (user_id)) ^ (uint64_t) side;
    for (size_t i = 0; i < BPEER_LOGGED; i++)
        if (self->denied[i] == h)
            return false;
    self->denied[self->denied_next] = h;
    self->denied_next = (self->denied_next + 1) % BPEER_LOGGED;
    return true;
}
