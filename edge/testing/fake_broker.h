// A scripted stand-in for aigw-broker's client side (frontend ROUTER), for edge tests
// and manual checks. The first target's name picks the answer:
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
#ifndef AIGW_EDGE_FAKE_BROKER_H
#define AIGW_EDGE_FAKE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

//  Bind a ROUTER on endpoint (e.g. "tcp://127.0.0.1:*") and serve it from a thread.
//  models: comma list announced in PONG, each with `workers` workers.
fake_broker_t *fake_broker_new (const char *endpoint, const char *models, uint32_t workers);
void fake_broker_destroy (fake_broker_t **self_p);

//  The endpoint actually bound (with the real port).
const char *fake_broker_endpoint (fake_broker_t *self);

//  Stop answering anything (simulates a hung or dead broker) or resume.
void fake_broker_set_silent (fake_broker_t *self, bool silent);

//  Delay for slow* targets (default 200 ms).
void fake_broker_set_slow_ms (fake_broker_t *self, uint32_t ms);

//  Answer every held never* job with a RESULT on the next tick.
void fake_broker_release (fake_broker_t *self);

void fake_broker_stats (fake_broker_t *self, fake_broker_stats_t *out);
void fake_broker_last_job (fake_broker_t *self, fake_broker_job_t *out);

#endif
