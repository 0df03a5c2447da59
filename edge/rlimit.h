// Per-key limits shared by several edges through Redis (docs/limits.md): rpm and tpm
// as 60 one-second buckets in a hash, parallel slots as a sorted set of tickets scored
// by their expiry, spend per budget period as an integer of nano-USD. Every check and
// count is one atomic Lua script (EVALSHA, EVAL on NOSCRIPT). One hiredis connection
// per calling thread; a failed connection is retried at most every RLIMIT_RETRY_MS.
// Failures are counted and logged once per outage. Knows nothing about keys: keys.c
// passes each key's name and limits. Thread-safe. The process must ignore SIGPIPE (a
// write to a Redis that died raises it; aigw-edge ignores it).
#ifndef AIGW_EDGE_RLIMIT_H
#define AIGW_EDGE_RLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define RLIMIT_RETRY_MS 500             // a failed connection waits this long to reconnect
#define RLIMIT_GRACE_MS 10000           // a slot outlives its job's deadline by this much
#define RLIMIT_CONNS_MAX 256            // connections (calling threads) per object

typedef struct _rlimit_t rlimit_t;
struct redisReply;

typedef enum { RLIMIT_OK = 0, RLIMIT_QUOTA, RLIMIT_PARALLEL, RLIMIT_RATE_REQUESTS,
               RLIMIT_RATE_TOKENS } rlimit_verdict_t;

//  One key's limits, as keys.c knows them (0 = unlimited).
typedef struct {
    int64_t rpm, tpm, max_parallel;
    int64_t budget_nusd;                // per period, nano-USD; 0 = none
    int64_t period_start;               // Unix seconds: names this period's spend counter
    int64_t period_end;                 // Unix seconds: the counter expires a day after
    int64_t hold_ms;                    // a taken slot expires after this (deadline + grace)
} rlimit_spec_t;

//  What the shared counters say (after counting, on RLIMIT_OK).
typedef struct {
    rlimit_verdict_t verdict;
    uint32_t ticket;                    // on RLIMIT_OK: for rlimit_release
    int64_t requests, tokens;           // in the window
    int64_t oldest_request_s;           // Unix second of the oldest counted request; -1 none
    int64_t oldest_token_s;             // same for tokens
    int64_t in_flight;                  // live slots
    int64_t spend_nusd;                 // this period
} rlimit_result_t;

//  A limiter for cfg (which must name a Redis backend; copied). Reads the password from
//  $cfg->redis_password_env now (never logged) and tries a first connection, logging
//  whether Redis answers; an unreachable Redis is not an error here (it is an outage).
//  NULL with a message in err on bad input or no memory.
rlimit_t *rlimit_new (const cfg_limits_t *cfg, char *err, size_t errlen);
//  Close every connection, wipe the password. Nulls *self_p; accepts NULL.
void rlimit_destroy (rlimit_t **self_p);

//  Check budget, parallel, rpm and tpm of the key name; when all pass, count one request
//  and take a slot (ticket in out). 0 with out filled (any verdict), -1 when the backend
//  did not answer properly (counted; the caller applies on_failure).
int rlimit_admit (rlimit_t *self, const char *name, const rlimit_spec_t *spec, int64_t now_ms,
                  rlimit_result_t *out);
//  Give a slot back. 0, or -1 on a backend failure (the slot then expires by itself).
int rlimit_release (rlimit_t *self, const char *name, uint32_t ticket);
//  Tokens into the current second's bucket, nusd into the period's spend. 0 or -1.
int rlimit_charge (rlimit_t *self, const char *name, uint64_t tokens, int64_t nusd,
                   int64_t period_start, int64_t period_end, int64_t now_ms);
//  The shared counters of name (requests, tokens, in_flight, spend_nusd). 0 or -1.
int rlimit_view (rlimit_t *self, const char *name, int64_t period_start, int64_t now_ms,
                 rlimit_result_t *out);

cfg_limits_failure_t rlimit_on_failure (const rlimit_t *self);
//  Did the latest call reach Redis?
bool rlimit_up (const rlimit_t *self);
//  Redis errors and timeouts so far (connects, commands, error or malformed replies).
uint64_t rlimit_errors (const rlimit_t *self);
//  Shorten the reconnect delay (tests). ms >= 1.
void rlimit_set_retry_ms (rlimit_t *self, int64_t ms);

//  Strict readers of the scripts' replies (exposed for tests). 0, or -1 when reply is
//  not exactly what the script returns (type, element count, element types, ranges).
int rlimit_parse_admit (const struct redisReply *reply, rlimit_result_t *out);
int rlimit_parse_view (const struct redisReply *reply, rlimit_result_t *out);

#endif
