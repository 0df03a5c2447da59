// libFuzzer target: what the edge reads from Redis for the shared limits
// (edge/rlimit.c). The bytes are a Redis server's reply stream (RESP), parsed by
// hiredis's reader as the edge's connection would, then checked by the strict reply
// readers of the admit and view scripts. Oracle: a reply they accept has every count
// in range and a known verdict; nothing they reject leaves a partial result behind.
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "rlimit.h"

static void s_check (const redisReply *r)
{
    rlimit_result_t out;
    if (rlimit_parse_admit (r, &out) == 0) {
        if (out.verdict > RLIMIT_RATE_TOKENS || out.requests < 0 || out.tokens < 0
            || out.in_flight < 0 || out.spend_nusd < 0 || out.oldest_request_s < -1
            || out.oldest_token_s < -1)
            abort ();
    }
    if (rlimit_parse_view (r, &out) == 0) {
        if (out.requests < 0 || out.tokens < 0 || out.in_flight < 0 || out.spend_nusd < 0)
            abort ();
    }
}

//  hiredis 0.14 allocates an array's element table from its header before reading
//  the elements, with no bound of its own: inputs that announce more than 4096
//  elements are skipped (an out-of-memory report would say nothing about our code).
//  docs/limits.md notes that the edge trusts its Redis this far.
static bool s_huge_array (const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*' || (i > 0 && data[i - 1] != '\n'))
            continue;
        uint64_t n = 0;
        for (size_t j = i + 1; j < size && data[j] >= '0' && data[j] <= '9' && n <= 4096; j++)
            n = n * 10 + (uint64_t) (data[j] - '0');
        if (n > 4096)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (s_huge_array (data, size))
        return 0;
    redisReader *reader = redisReaderCreate ();
    if (!reader)
        return 0;
    if (redisReaderFeed (reader, (const char *) data, size) == REDIS_OK) {
        //  Every complete reply in the input, until an error or the end
        for (int i = 0; i < 64; i++) {
            void *reply = NULL;
            if (redisReaderGetReply (reader, &reply) != REDIS_OK || !reply)
                break;
            s_check (reply);
            freeReplyObject (reply);
        }
    }
    redisReaderFree (reader);
    return 0;
}
