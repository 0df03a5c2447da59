// Unit tests of the worker's sim provider: seeded determinism, failure rate, latency
// distribution, prompt word counting and the chat.completion JSON it builds.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wk_sim.h"
#include "rng.h"

static cfg_model_t s_model (uint32_t latency, double jitter, double fail, uint64_t seed)
{
    cfg_model_t m;
    memset (&m, 0, sizeof m);
    snprintf (m.name, sizeof m.name, "sim-a");
    m.provider = CFG_PROVIDER_SIM;
    m.latency_ms = latency;
    m.jitter = jitter;
    m.fail_rate = fail;
    m.seed = seed;
    snprintf (m.text, sizeof m.text, "Hello there \"friend\"\nbye");
    return m;
}

static void test_same_seed_same_sequence (void **state)
{
    cfg_model_t m = s_model (40, 0.5, 0.3, 42);
    uint64_t a = m.seed, b = m.seed, c = 43;
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        wk_sim_draw_t da, db, dc;
        wk_sim_draw (&a, &m, &da);
        wk_sim_draw (&b, &m, &db);
        wk_sim_draw (&c, &m, &dc);
        assert_int_equal (da.latency_ms, db.latency_ms);
        assert_int_equal (da.fail, db.fail);
        differ += da.latency_ms != dc.latency_ms;
    }
    assert_true (differ > 500);         // another seed gives another sequence
}

static void test_fixed_latency_without_jitter (void **state)
{
    cfg_model_t m = s_model (123, 0.0, 0.0, 7);
    uint64_t rng = m.seed;
    for (int i = 0; i < 1000; i++) {
        wk_sim_draw_t d;
        wk_sim_draw (&rng, &m, &d);
        assert_int_equal (d.latency_ms, 123);
        assert_false (d.fail);
    }
}

static int s_cmp_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static void test_lognormal_median (void **state)
{
    enum { N = 20001 };
    cfg_model_t m = s_model (100, 0.5, 0.0, 1);
    uint64_t rng = m.seed;
    uint32_t *lat = malloc (N * sizeof *lat);
    for (int i = 0; i < N; i++) {
        wk_sim_draw_t d;
        wk_sim_draw (&rng, &m, &d);
        lat [i] = d.latency_ms;
    }
    qsort (lat, N, sizeof *lat, s_cmp_u32);
    uint32_t median = lat [N / 2];
    assert_in_range (median, 95, 105);
    //  sigma 0.5: p84 ~ median * e^0.5 = 165
    uint32_t p84 = lat [(int) (N * 0.8413)];
    assert_in_range (p84, 150, 180);
    free (lat);
}

static void test_fail_rate_honoured (void **state)
{
    double rates [] = { 0.0, 0.05, 0.2, 0.5, 1.0 };
    for (size_t r = 0; r < sizeof rates / sizeof rates [0]; r++) {
        cfg_model_t m = s_model (10, 0.2, rates [r], 99);
        uint64_t rng = m.seed;
        int fails = 0;
        for (int i = 0; i < 20000; i++) {
            wk_sim_draw_t d;
            wk_sim_draw (&rng, &m, &d);
            fails += d.fail;
        }
        double got = fails / 20000.0;
        assert_true (got >= rates [r] - 0.015 && got <= rates [r] + 0.015);
    }
}

static void test_uniform_open_interval (void **state)
{
    uint64_t rng = 0;
    for (int i = 0; i < 100000; i++) {
        double u = rng_uniform (&rng);
        assert_true (u > 0.0 && u < 1.0);
    }
}

static void test_count_words (void **state)
{
    assert_int_equal (wk_sim_count_words ("", 0), 0);
    assert_int_equal (wk_sim_count_words ("   ", 3), 0);
    assert_int_equal (wk_sim_count_words ("one", 3), 1);
    const char *s = "  two words\n\tand three  ";
    assert_int_equal (wk_sim_count_words (s, strlen (s)), 4);
}

static void test_prompt_tokens (void **state)
{
    const char *req =
        "{\"model\":\"x\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what is two plus two\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x\"}}]},"
        "{\"role\":\"assistant\",\"content\":null}]}";
    uint32_t tokens = 0;
    assert_int_equal (wk_sim_prompt_tokens (req, strlen (req), &tokens), 0);
    assert_int_equal (tokens, 2 + 5);
    assert_int_equal (wk_sim_prompt_tokens ("{}", 2, &tokens), 0);
    assert_int_equal (tokens, 0);
    assert_int_equal (wk_sim_prompt_tokens ("[1]", 3, &tokens), -1);
    assert_int_equal (wk_sim_prompt_tokens ("{\"a\":", 5, &tokens), -1);
    assert_int_equal (wk_sim_prompt_tokens ("", 0, &tokens), -1);
}

static void test_response_shape (void **state)
{
    cfg_model_t m = s_model (10, 0, 0, 1);
    buf_t buf;
    buf_init (&buf, 65536);
    assert_int_equal (wk_sim_build_response (&buf, 0xabcdef, "sim-\"q\"", m.text, 1700000000,
                                             7, 4), 0);
    cJSON *root = cJSON_ParseWithLength (buf.data, buf.len);
    assert_non_null (root);
    const char *id = cJSON_GetStringValue (cJSON_GetObjectItem (root, "id"));
    assert_non_null (id);
    assert_int_equal (strncmp (id, "chatcmpl-sim-", 13), 0);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "object")),
                         "chat.completion");
    assert_int_equal ((int64_t) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "created")),
                      1700000000);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (root, "model")), "sim-\"q\"");
    cJSON *choices = cJSON_GetObjectItem (root, "choices");
    assert_int_equal (cJSON_GetArraySize (choices), 1);
    cJSON *c0 = cJSON_GetArrayItem (choices, 0);
    assert_int_equal ((int) cJSON_GetNumberValue (cJSON_GetObjectItem (c0, "index")), 0);
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (c0, "finish_reason")), "stop");
    cJSON *msg = cJSON_GetObjectItem (c0, "message");
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (msg, "role")), "assistant");
    assert_string_equal (cJSON_GetStringValue (cJSON_GetObjectItem (msg, "content")), m.text);
    cJSON *usage = cJSON_GetObjectItem (root, "usage");
    assert_int_equal ((int) cJSON_GetNumberValue (cJSON_GetObjectItem (usage, "prompt_tokens")), 7);
    assert_int_equal ((int) cJSON_GetNumberValue (cJSON_GetObjectItem (usage, "completion_tokens")), 4);
    assert_int_equal ((int) cJSON_GetNumberValue (cJSON_GetObjectItem (usage, "total_tokens")), 11);
    cJSON_Delete (root);
    buf_free (&buf);
}

static void test_response_respects_buffer_limit (void **state)
{
    buf_t buf;
    buf_init (&buf, 64);
    assert_int_equal (wk_sim_build_response (&buf, 1, "m", "some text", 1, 1, 2), -1);
    assert_true (buf.len <= 64);
    buf_free (&buf);
}

//  Streaming pieces: word by word, spaces kept, concatenating back to the text.
static void test_stream_pieces (void **state)
{
    const char *texts [] = { "Hello from sim", "  lead and  trail  ", "one", "", "   ", "a\nb\tc" };
    const int words [] = { 3, 3, 1, 0, 0, 3 };
    for (size_t k = 0; k < sizeof texts / sizeof texts [0]; k++) {
        const char *t = texts [k];
        size_t len = strlen (t);
        char joined [64] = "";
        size_t jlen = 0;
        size_t pos = 0;
        int n = 0;
        size_t end;
        while ((end = wk_sim_piece (t, len, pos)) != pos) {
            jlen += (size_t) snprintf (joined + jlen, sizeof joined - jlen, "%.*s",
                                       (int) (end - pos), t + pos);
            pos = end;
            n++;
        }
        assert_int_equal (n, words [k]);
        if (n)
            assert_string_equal (joined, t);
    }
    assert_int_equal (wk_sim_piece ("Hello from sim", 14, 0), 5);
    assert_int_equal (wk_sim_piece ("Hello from sim", 14, 5), 10);
    assert_int_equal (wk_sim_piece ("Hello from sim", 14, 10), 14);
}

static void test_stream_chunk_json (void **state)
{
    buf_t b;
    buf_init (&b, 4096);
    assert_int_equal (wk_sim_build_chunk (&b, 0xab, "sim-a", 9, true, " x\"y", 4, NULL), 0);
    assert_string_equal (b.data, "{\"id\":\"chatcmpl-sim-00000000000000ab\",\"object\":"
                         "\"chat.completion.chunk\",\"created\":9,\"model\":\"sim-a\",\"choices\":"
                         "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\" x\\\"y\"},"
                         "\"logprobs\":null,\"finish_reason\":null}]}");
    buf_reset (&b);
    assert_int_equal (wk_sim_build_chunk (&b, 1, "sim-a", 9, false, NULL, 0, "stop"), 0);
    assert_non_null (strstr (b.data, "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}"));
    cJSON *root = cJSON_Parse (b.data);
    assert_non_null (root);
    cJSON_Delete (root);
    buf_free (&b);
}

int main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_same_seed_same_sequence),
        cmocka_unit_test (test_fixed_latency_without_jitter),
        cmocka_unit_test (test_lognormal_median),
        cmocka_unit_test (test_fail_rate_honoured),
        cmocka_unit_test (test_uniform_open_interval),
        cmocka_unit_test (test_count_words),
        cmocka_unit_test (test_prompt_tokens),
        cmocka_unit_test (test_response_shape),
        cmocka_unit_test (test_response_respects_buffer_limit),
        cmocka_unit_test (test_stream_pieces),
        cmocka_unit_test (test_stream_chunk_json),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
