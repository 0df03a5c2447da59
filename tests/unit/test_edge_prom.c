// Unit tests for the edge's observability pieces that are pure: request metrics,
// the Prometheus formatter (names, escaping, cumulative buckets), the broker snapshot
// decoder, msgpack checks and msgpack -> JSON, and the `edge` event JSON.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <cJSON.h>
#include <msgpack.h>

#include "bridge.h"
#include "bsnap.h"
#include "buf.h"
#include "emetrics.h"
#include "mpack.h"
#include "observe.h"
#include "prom.h"

//  --------------------------------------------------------------- helpers

//  Render the edge metrics in em (and broker, may be NULL) into a NUL-terminated string.
static char *s_render (emetrics_t *em, const bsnap_t *broker)
{
    prom_edge_t *e = calloc (1, sizeof *e);
    assert_non_null (e);
    prom_edge_from (e, em);
    e->broker_age_s = broker ? 0.25 : NAN;
    e->bridge_dropped = 2;
    buf_t out;
    buf_init (&out, 1 << 22);
    assert_int_equal (prom_render (&out, e, broker), 0);
    free (e);
    return buf_take (&out, NULL);
}

static bool s_has_line (const char *text, const char *line)
{
    size_t n = strlen (line);
    for (const char *p = text; (p = strstr (p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
            return true;
    return false;
}

static size_t s_count (const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr (p, needle)); p++)
        n++;
    return n;
}

//  Every sample's family has exactly one TYPE line, before its first sample, and
//  the families are not interleaved.
static void s_check_families (const char *text)
{
    char done[256][128];
    size_t ndone = 0;
    char current[128] = "";
    const char *line = text;
    while (*line) {
        size_t len = strcspn (line, "\n");
        char buf[1024];
        snprintf (buf, sizeof buf, "%.*s", (int) len, line);
        if (strncmp (buf, "# TYPE ", 7) == 0) {
            char name[128];
            assert_int_equal (sscanf (buf + 7, "%127s", name), 1);
            for (size_t i = 0; i < ndone; i++)
                assert_string_not_equal (done[i], name);
            snprintf (done[ndone++], sizeof done[0], "%s", name);
            snprintf (current, sizeof current, "%s", name);
        }
        else
        if (buf[0] != '#' && buf[0]) {
            size_t nlen = strcspn (buf, "{ ");
            assert_true (current[0]);
            size_t clen = strlen (current);
            assert_true (nlen >= clen && strncmp (buf, current, clen) == 0);
            const char *suffix = buf + clen;
            assert_true (suffix == buf + nlen || strncmp (suffix, "_bucket", 7) == 0
                         || strncmp (suffix, "_sum", 4) == 0 || strncmp (suffix, "_count", 6) == 0);
        }
        line += len + (line[len] == '\n');
    }
}

//  --------------------------------------------------------------- emetrics

static void test_routes (void **state)
{
    assert_int_equal (emetrics_route ("/v1/chat/completions"), EM_ROUTE_CHAT);
    assert_int_equal (emetrics_route ("/v1/models"), EM_ROUTE_MODELS);
    assert_int_equal (emetrics_route ("/v1/aigw/events"), EM_ROUTE_EVENTS);
    assert_int_equal (emetrics_route ("/metrics"), EM_ROUTE_METRICS);
    assert_int_equal (emetrics_route ("/v1/whatever"), EM_ROUTE_API_OTHER);
    assert_int_equal (emetrics_route ("/assets/x.js"), EM_ROUTE_STATIC);
    assert_int_equal (emetrics_route (NULL), EM_ROUTE_STATIC);
    assert_string_equal (emetrics_route_name (EM_ROUTE_CHAT), "/v1/chat/completions");
}

static void test_upstream_note (void **state)
{
    Aigw__AttemptInfo lost = AIGW__ATTEMPT_INFO__INIT, won = AIGW__ATTEMPT_INFO__INIT;
    lost.outcome = AIGW__OUTCOME__OUTCOME_CANCELLED;
    lost.has_started_us = lost.has_finished_us = true;
    lost.started_us = 10;
    lost.finished_us = 99999;
    won.outcome = AIGW__OUTCOME__OUTCOME_WON;
    won.has_started_us = won.has_finished_us = true;
    won.started_us = 100;
    won.finished_us = 40100;
    Aigw__AttemptInfo *attempts[] = { &lost, &won };
    Aigw__Result res = AIGW__RESULT__INIT;
    res.n_attempts = 2;
    res.attempts = attempts;
    assert_int_equal (emetrics_upstream_us (NULL), -1);
    assert_int_equal (emetrics_upstream_us (&res), 40090);     // first start to winner finish
    lost.started_us = 100;                                      // a race: the winner's own time
    assert_int_equal (emetrics_upstream_us (&res), 40000);
    won.outcome = AIGW__OUTCOME__OUTCOME_FAILED;                // nobody won: no span
    assert_int_equal (emetrics_upstream_us (&res), -1);
}

static void test_in_flight_and_codes (void **state)
{
    emetrics_t *em = emetrics_new ();
    assert_non_null (em);
    emetrics_request_begin (em, EM_ROUTE_CHAT);
    emetrics_request_begin (em, EM_ROUTE_EVENTS);               // streams are not in flight
    assert_int_equal (atomic_load (&em->in_flight), 1);
    emetrics_request_done (em, EM_ROUTE_CHAT, 502, 1000, -1);
    emetrics_request_done (em, EM_ROUTE_EVENTS, 200, 5000000, -1);
    assert_int_equal (atomic_load (&em->in_flight), 0);
    assert_int_equal (atomic_load (&em->chat_errors), 1);
    assert_int_equal (hist_count (&em->duration[EM_ROUTE_EVENTS].hist), 0);
    assert_int_equal (atomic_load (&em->codes[EM_ROUTE_EVENTS][200 - EM_CODE_MIN]), 1);
    emetrics_request_begin (em, EM_ROUTE_STATIC);
    emetrics_request_done (em, EM_ROUTE_STATIC, 42, 10, -1);    // odd code: clamped
    assert_int_equal (atomic_load (&em->codes[EM_ROUTE_STATIC][EM_CODES - 1]), 1);
    emetrics_destroy (&em);
    assert_null (em);
}

//  --------------------------------------------------------------- prometheus

static void test_label_escaping (void **state)
{
    buf_t b;
    buf_init (&b, 256);
    assert_int_equal (prom_label_value (&b, "a\"b\\c\nd"), 0);
    assert_string_equal (b.data, "a\\\"b\\\\c\\nd");
    buf_free (&b);
}

static void test_edge_histograms (void **state)
{
    emetrics_t *em = emetrics_new ();
    uint64_t lat[] = { 300, 3000, 2000000 };    // 0.3 ms, 3 ms, 2 s
    for (int i = 0; i < 3; i++) {
        emetrics_request_begin (em, EM_ROUTE_CHAT);
        emetrics_request_done (em, EM_ROUTE_CHAT, 200, lat[i], i == 0 ? 120 : -1);
    }
    emetrics_request_begin (em, EM_ROUTE_CHAT);
    emetrics_request_done (em, EM_ROUTE_CHAT, 404, 500, -1);   // exactly on a bound: le
    char *text = s_render (em, NULL);
    s_check_families (text);
    assert_true (s_has_line (text, "# TYPE aigw_edge_http_requests_total counter"));
    assert_true (s_has_line (text, "aigw_edge_http_requests_total{route=\"/v1/chat/completions\",code=\"200\"} 3"));
    assert_true (s_has_line (text, "aigw_edge_http_requests_total{route=\"/v1/chat/completions\",code=\"404\"} 1"));
    assert_true (s_has_line (text, "# TYPE aigw_edge_http_request_duration_seconds histogram"));
    const char *b = "aigw_edge_http_request_duration_seconds_bucket{route=\"/v1/chat/completions\",le=";
    char line[256];
    struct { const char *le; int n; } want[] = {
        { "0.0005", 2 }, { "0.001", 2 }, { "0.005", 3 }, { "1", 3 }, { "2.5", 4 }, { "300", 4 },
        { "+Inf", 4 } };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf (line, sizeof line, "%s\"%s\"} %d", b, want[i].le, want[i].n);
        assert_true (s_has_line (text, line));
    }
    assert_true (s_has_line (text, "aigw_edge_http_request_duration_seconds_count{route=\"/v1/chat/completions\"} 4"));
    assert_true (s_has_line (text, "aigw_edge_http_request_duration_seconds_sum{route=\"/v1/chat/completions\"} 2.0038"));
    assert_true (s_has_line (text, "aigw_edge_overhead_seconds_bucket{le=\"0.0001\"} 0"));
    assert_true (s_has_line (text, "aigw_edge_overhead_seconds_bucket{le=\"0.00025\"} 1"));
    assert_true (s_has_line (text, "aigw_edge_overhead_seconds_count 1"));
    assert_true (s_has_line (text, "aigw_edge_http_requests_in_flight 0"));
    assert_true (s_has_line (text, "aigw_edge_bridge_dropped_total 2"));
    //  No broker snapshot: broker_up 0 and no broker series
    assert_true (s_has_line (text, "aigw_broker_up 0"));
    assert_null (strstr (text, "aigw_model_"));
    assert_null (strstr (text, "aigw_broker_metrics_age_seconds"));
    //  Unused routes have no histogram series
    assert_null (strstr (text, "route=\"/healthz\""));
    free (text);
    emetrics_destroy (&em);
}

//  --------------------------------------------------------------- broker snapshot

static void s_pack_str (msgpack_packer *pk, const char *s)
{
    msgpack_pack_str (pk, strlen (s));
    msgpack_pack_str_body (pk, s, strlen (s));
}

static void s_pack_pcts (msgpack_packer *pk, const char *key, double p50, double p95, double p99)
{
    s_pack_str (pk, key);
    msgpack_pack_map (pk, 3);
    s_pack_str (pk, "p50");
    msgpack_pack_double (pk, p50);
    s_pack_str (pk, "p95");
    msgpack_pack_double (pk, p95);
    s_pack_str (pk, "p99");
    msgpack_pack_double (pk, p99);
}

//  A model's health fields (the broker's breaker and budget) as bmetrics.c sends them.
typedef struct {
    const char *state;
    uint64_t cooldown_left_ms;
    double error_rate;
    uint64_t trips, skipped, retries, hedges, budget_refused;
} s_health_t;

static void s_pack_u64 (msgpack_packer *pk, const char *key, uint64_t v)
{
    s_pack_str (pk, key);
    msgpack_pack_uint64 (pk, v);
}

static void s_pack_health (msgpack_packer *pk, const s_health_t *h)
{
    s_pack_str (pk, "state");
    s_pack_str (pk, h->state);
    s_pack_u64 (pk, "cooldown_left_ms", h->cooldown_left_ms);
    s_pack_str (pk, "error_rate");
    msgpack_pack_double (pk, h->error_rate);
    s_pack_u64 (pk, "trips", h->trips);
    s_pack_u64 (pk, "skipped", h->skipped);
    s_pack_u64 (pk, "retries", h->retries);
    s_pack_u64 (pk, "hedges", h->hedges);
    s_pack_u64 (pk, "budget_refused", h->budget_refused);
}

//  A model entry; health NULL: an older broker's (no health fields).
static void s_pack_model (msgpack_packer *pk, const char *name, uint64_t wins, double p50,
                          uint64_t samples, const s_health_t *health)
{
    msgpack_pack_map (pk, 8 + (health ? 8 : 0));
    if (health)
        s_pack_health (pk, health);
    s_pack_str (pk, "name");
    s_pack_str (pk, name);
    s_pack_str (pk, "in_flight");
    msgpack_pack_uint64 (pk, 2);
    s_pack_str (pk, "wins");
    msgpack_pack_uint64 (pk, wins);
    s_pack_str (pk, "losses");
    msgpack_pack_uint64 (pk, 1);
    s_pack_str (pk, "tokens_saved");
    msgpack_pack_uint64 (pk, 120);
    s_pack_pcts (pk, "latency_ms", p50, 80.2, 95.0);
    s_pack_pcts (pk, "ttft_ms", 0, 0, 0);
    s_pack_str (pk, "samples");
    msgpack_pack_uint64 (pk, samples);
}

//  A `metrics` body like docs/metrics-stream.md (a subset), packed with msgpack-c.
static void s_pack_metrics (msgpack_sbuffer *sbuf)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 6);
    s_pack_str (&pk, "broker_id");
    s_pack_str (&pk, "host-1");
    s_pack_str (&pk, "uptime_s");
    msgpack_pack_uint64 (&pk, 42);
    s_pack_str (&pk, "counters");
    msgpack_pack_map (&pk, 10);
    s_pack_str (&pk, "jobs_won");
    msgpack_pack_uint64 (&pk, 9);
    s_pack_str (&pk, "jobs_failed");
    msgpack_pack_uint64 (&pk, 1);
    s_pack_str (&pk, "attempts_started");
    msgpack_pack_uint64 (&pk, 20);
    s_pack_str (&pk, "late-replies");
    msgpack_pack_uint64 (&pk, 3);
    s_pack_u64 (&pk, "attempts_retried", 3);
    s_pack_u64 (&pk, "attempts_hedged", 4);
    s_pack_u64 (&pk, "attempts_skipped", 7);
    s_pack_u64 (&pk, "hedges_suppressed", 1);
    s_pack_u64 (&pk, "jobs_cooldown", 1);
    s_pack_u64 (&pk, "breaker_trips", 2);
    s_pack_str (&pk, "models");
    msgpack_pack_array (&pk, 5);
    const s_health_t degraded = { "degraded", 0, 0.125, 0, 0, 3, 4, 1 };
    const s_health_t cooling = { "cooling", 4200, 0.5, 2, 7, 0, 0, 0 };
    const s_health_t unknown = { "sleeping", 0, 0, 0, 0, 0, 0, 0 };
    s_pack_model (&pk, "fast-sim", 9, 41.0, 10, &degraded);
    s_pack_model (&pk, "we\"ird\\mo\ndel", 0, 0, 0, NULL);      // an older broker's entry
    msgpack_pack_map (&pk, 1);                  // no name: skipped
    s_pack_str (&pk, "wins");
    msgpack_pack_uint64 (&pk, 5);
    s_pack_model (&pk, "cool-sim", 0, 0, 0, &cooling);
    s_pack_model (&pk, "odd-sim", 0, 0, 0, &unknown);          // a state we do not know
    s_pack_str (&pk, "workers");
    msgpack_pack_array (&pk, 1);
    msgpack_pack_map (&pk, 4);
    s_pack_str (&pk, "id");
    s_pack_str (&pk, "worker-1");
    s_pack_str (&pk, "alive");
    msgpack_pack_true (&pk);
    s_pack_str (&pk, "in_flight");
    msgpack_pack_uint64 (&pk, 1);
    s_pack_str (&pk, "capacity");
    msgpack_pack_uint64 (&pk, 64);
    s_pack_str (&pk, "jobs_in_flight");
    msgpack_pack_uint64 (&pk, 3);
}

static void test_broker_series (void **state)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_pack_metrics (&sbuf);
    bsnap_t *snap = bsnap_decode (sbuf.data, sbuf.size, 1000);
    msgpack_sbuffer_destroy (&sbuf);
    assert_non_null (snap);
    assert_string_equal (snap->broker_id, "host-1");
    assert_int_equal (snap->nmodels, 4);
    assert_int_equal (snap->nworkers, 1);
    assert_true (isnan (snap->models[0].errors));              // not sent: absent
    assert_true (snap->counters[0].value == 9);
    //  Health fields: decoded where sent, absent (NAN, no state) where not
    assert_int_equal (snap->models[0].state, BSNAP_STATE_DEGRADED);
    assert_true (snap->models[0].error_rate == 0.125);
    assert_true (snap->models[0].hedges == 4);
    assert_int_equal (snap->models[1].state, BSNAP_STATE_ABSENT);
    assert_true (isnan (snap->models[1].cooldown_left_ms) && isnan (snap->models[1].error_rate)
                 && isnan (snap->models[1].trips) && isnan (snap->models[1].budget_refused));
    assert_string_equal (snap->models[2].name, "cool-sim");
    assert_int_equal (snap->models[2].state, BSNAP_STATE_COOLING);
    assert_true (snap->models[2].cooldown_left_ms == 4200);
    assert_int_equal (snap->models[3].state, BSNAP_STATE_ABSENT);  // "sleeping": unknown
    assert_true (snap->models[3].trips == 0);

    emetrics_t *em = emetrics_new ();
    char *text = s_render (em, snap);
    s_check_families (text);
    assert_true (s_has_line (text, "aigw_broker_up 1"));
    assert_true (s_has_line (text, "aigw_broker_metrics_age_seconds 0.25"));
    assert_true (s_has_line (text, "aigw_broker_info{broker_id=\"host-1\"} 1"));
    assert_true (s_has_line (text, "aigw_broker_uptime_seconds 42"));
    assert_true (s_has_line (text, "aigw_broker_jobs_in_flight 3"));
    assert_true (s_has_line (text, "aigw_broker_jobs_total{outcome=\"won\"} 9"));
    assert_true (s_has_line (text, "aigw_broker_jobs_total{outcome=\"failed\"} 1"));
    assert_true (s_has_line (text, "aigw_broker_attempts_started_total 20"));
    assert_true (s_has_line (text, "aigw_broker_late_replies_total 3"));      // sanitized
    assert_null (strstr (text, "aigw_broker_jobs_won"));
    assert_null (strstr (text, "aigw_broker_attempts_total"));   // no attempt outcomes sent
    assert_true (s_has_line (text, "# TYPE aigw_model_wins_total counter"));
    assert_true (s_has_line (text, "aigw_model_wins_total{model=\"fast-sim\"} 9"));
    assert_true (s_has_line (text, "aigw_model_wins_total{model=\"we\\\"ird\\\\mo\\ndel\"} 0"));
    assert_true (s_has_line (text, "aigw_model_in_flight{model=\"fast-sim\"} 2"));
    assert_true (s_has_line (text, "aigw_model_losses_total{model=\"fast-sim\"} 1"));
    assert_true (s_has_line (text, "aigw_model_tokens_saved_total{model=\"fast-sim\"} 120"));
    assert_null (strstr (text, "aigw_model_errors_total"));      // absent everywhere
    assert_true (s_has_line (text, "# TYPE aigw_model_latency_seconds summary"));
    assert_true (s_has_line (text, "aigw_model_latency_seconds{model=\"fast-sim\",quantile=\"0.5\"} 0.041"));
    assert_true (s_has_line (text, "aigw_model_latency_seconds{model=\"fast-sim\",quantile=\"0.95\"} 0.0802"));
    assert_true (s_has_line (text, "aigw_model_latency_seconds_count{model=\"fast-sim\"} 10"));
    assert_int_equal (s_count (text, "aigw_model_latency_seconds{"), 3);  // no-data model skipped
    assert_null (strstr (text, "aigw_model_ttft_seconds"));      // all zero: no data
    assert_true (s_has_line (text, "aigw_worker_up{worker=\"worker-1\"} 1"));
    assert_true (s_has_line (text, "aigw_worker_capacity{worker=\"worker-1\"} 64"));
    assert_int_equal (s_count (text, "# TYPE aigw_model_wins_total"), 1);
    //  Health: the state as an enum gauge, only for models that sent a known state
    assert_true (s_has_line (text, "# TYPE aigw_model_state gauge"));
    assert_true (s_has_line (text, "aigw_model_state{model=\"fast-sim\",state=\"healthy\"} 0"));
    assert_true (s_has_line (text, "aigw_model_state{model=\"fast-sim\",state=\"degraded\"} 1"));
    assert_true (s_has_line (text, "aigw_model_state{model=\"fast-sim\",state=\"cooling\"} 0"));
    assert_true (s_has_line (text, "aigw_model_state{model=\"cool-sim\",state=\"healthy\"} 0"));
    assert_true (s_has_line (text, "aigw_model_state{model=\"cool-sim\",state=\"degraded\"} 0"));
    assert_true (s_has_line (text, "aigw_model_state{model=\"cool-sim\",state=\"cooling\"} 1"));
    assert_int_equal (s_count (text, "aigw_model_state{"), 6);   // not the old or odd entries
    assert_int_equal (s_count (text, "aigw_model_state{model=\"odd-sim\""), 0);
    assert_true (s_has_line (text, "# TYPE aigw_model_cooldown_remaining_seconds gauge"));
    assert_true (s_has_line (text, "aigw_model_cooldown_remaining_seconds{model=\"cool-sim\"} 4.2"));
    assert_true (s_has_line (text, "aigw_model_cooldown_remaining_seconds{model=\"fast-sim\"} 0"));
    assert_true (s_has_line (text, "# TYPE aigw_model_error_rate gauge"));
    assert_true (s_has_line (text, "aigw_model_error_rate{model=\"fast-sim\"} 0.125"));
    assert_true (s_has_line (text, "aigw_model_error_rate{model=\"cool-sim\"} 0.5"));
    assert_true (s_has_line (text, "# TYPE aigw_model_breaker_trips_total counter"));
    assert_true (s_has_line (text, "aigw_model_breaker_trips_total{model=\"cool-sim\"} 2"));
    assert_true (s_has_line (text, "# TYPE aigw_model_skipped_total counter"));
    assert_true (s_has_line (text, "aigw_model_skipped_total{model=\"cool-sim\"} 7"));
    assert_true (s_has_line (text, "# TYPE aigw_model_retries_total counter"));
    assert_true (s_has_line (text, "aigw_model_retries_total{model=\"fast-sim\"} 3"));
    assert_true (s_has_line (text, "# TYPE aigw_model_hedges_total counter"));
    assert_true (s_has_line (text, "aigw_model_hedges_total{model=\"fast-sim\"} 4"));
    assert_true (s_has_line (text, "# TYPE aigw_model_budget_refused_total counter"));
    assert_true (s_has_line (text, "aigw_model_budget_refused_total{model=\"fast-sim\"} 1"));
    assert_true (s_has_line (text, "aigw_model_budget_refused_total{model=\"odd-sim\"} 0"));
    //  The old broker's entry has no health series at all
    const char *health[] = { "aigw_model_cooldown_remaining_seconds", "aigw_model_error_rate",
                             "aigw_model_breaker_trips_total", "aigw_model_skipped_total",
                             "aigw_model_retries_total", "aigw_model_hedges_total",
                             "aigw_model_budget_refused_total", "aigw_model_state" };
    for (size_t i = 0; i < sizeof health / sizeof health[0]; i++) {
        char series[160];
        snprintf (series, sizeof series, "%s{model=\"we\\\"ird", health[i]);
        assert_int_equal (s_count (text, series), 0);
    }
    //  New broker counters, each its own family with its help text
    assert_true (s_has_line (text, "aigw_broker_attempts_retried_total 3"));
    assert_true (s_has_line (text, "aigw_broker_attempts_hedged_total 4"));
    assert_true (s_has_line (text, "aigw_broker_attempts_skipped_total 7"));
    assert_true (s_has_line (text, "aigw_broker_hedges_suppressed_total 1"));
    assert_true (s_has_line (text, "aigw_broker_jobs_cooldown_total 1"));
    assert_true (s_has_line (text, "aigw_broker_breaker_trips_total 2"));
    assert_true (s_has_line (text, "# HELP aigw_broker_breaker_trips_total Times a model's "
                                   "circuit breaker opened (a cooldown started)."));
    assert_true (s_has_line (text, "# HELP aigw_broker_late_replies_total Broker counter late-replies."));
    assert_null (strstr (text, "aigw_broker_retries_suppressed"));  // not sent
    free (text);
    emetrics_destroy (&em);
    bsnap_release (&snap);
    assert_null (snap);
}

//  An older broker (no health fields anywhere): none of their families is written.
static void test_broker_without_health (void **state)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    s_pack_str (&pk, "broker_id");
    s_pack_str (&pk, "old-1");
    s_pack_str (&pk, "models");
    msgpack_pack_array (&pk, 1);
    s_pack_model (&pk, "fast-sim", 9, 41.0, 10, NULL);
    bsnap_t *snap = bsnap_decode (sbuf.data, sbuf.size, 1000);
    msgpack_sbuffer_destroy (&sbuf);
    assert_non_null (snap);
    assert_int_equal (snap->models[0].state, BSNAP_STATE_ABSENT);
    emetrics_t *em = emetrics_new ();
    char *text = s_render (em, snap);
    s_check_families (text);
    assert_true (s_has_line (text, "aigw_model_wins_total{model=\"fast-sim\"} 9"));
    assert_null (strstr (text, "aigw_model_state"));
    assert_null (strstr (text, "aigw_model_cooldown_remaining_seconds"));
    assert_null (strstr (text, "aigw_model_error_rate"));
    assert_null (strstr (text, "aigw_model_breaker_trips_total"));
    assert_null (strstr (text, "aigw_model_skipped_total"));
    assert_null (strstr (text, "aigw_model_retries_total"));
    assert_null (strstr (text, "aigw_model_hedges_total"));
    assert_null (strstr (text, "aigw_model_budget_refused_total"));
    free (text);
    emetrics_destroy (&em);
    bsnap_release (&snap);
}

static void test_bsnap_state_names (void **state)
{
    assert_string_equal (bsnap_state_name (BSNAP_STATE_HEALTHY), "healthy");
    assert_string_equal (bsnap_state_name (BSNAP_STATE_DEGRADED), "degraded");
    assert_string_equal (bsnap_state_name (BSNAP_STATE_COOLING), "cooling");
    assert_null (bsnap_state_name (BSNAP_STATE_ABSENT));
    assert_null (bsnap_state_name ((bsnap_state_t) 17));
    assert_int_equal (bsnap_state_parse ("cooling"), BSNAP_STATE_COOLING);
    assert_int_equal (bsnap_state_parse ("Cooling"), BSNAP_STATE_ABSENT);
    assert_int_equal (bsnap_state_parse (NULL), BSNAP_STATE_ABSENT);
    //  A state string with a NUL inside, or a non-string, is not a state
    const uint8_t nul[] = { 0x82, 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'm', 0xa5, 's', 't', 'a', 't', 'e',
                            0xa9, 'h', 'e', 'a', 'l', 't', 'h', 'y', 0, 'x' };
    const uint8_t models_hdr[] = { 0x81, 0xa6, 'm', 'o', 'd', 'e', 'l', 's', 0x91 };
    uint8_t msg[sizeof models_hdr + sizeof nul];
    memcpy (msg, models_hdr, sizeof models_hdr);
    memcpy (msg + sizeof models_hdr, nul, sizeof nul);
    bsnap_t *snap = bsnap_decode (msg, sizeof msg, 0);
    assert_non_null (snap);
    assert_int_equal (snap->nmodels, 1);
    assert_int_equal (snap->models[0].state, BSNAP_STATE_ABSENT);
    bsnap_release (&snap);
    msg[sizeof models_hdr + 14] = 0x07;         // state: 7, not a string
    snap = bsnap_decode (msg, sizeof models_hdr + 15, 0);
    assert_non_null (snap);
    assert_int_equal (snap->models[0].state, BSNAP_STATE_ABSENT);
    bsnap_release (&snap);
}

//  promtool (Debian package prometheus) accepts the whole exposition, health included.
static void test_promtool (void **state)
{
    if (system ("command -v promtool >/dev/null 2>&1") != 0) {
        print_message ("promtool not installed (Debian package prometheus): not checked\n");
        skip ();
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_pack_metrics (&sbuf);
    bsnap_t *snap = bsnap_decode (sbuf.data, sbuf.size, 1000);
    msgpack_sbuffer_destroy (&sbuf);
    assert_non_null (snap);
    emetrics_t *em = emetrics_new ();
    emetrics_request_begin (em, EM_ROUTE_CHAT);
    emetrics_request_done (em, EM_ROUTE_CHAT, 200, 3000, 120);
    char *text = s_render (em, snap);
    char path[] = "/tmp/aigw-prom-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    size_t len = strlen (text);
    assert_int_equal (write (fd, text, len), (ssize_t) len);
    close (fd);
    char cmd[128];
    snprintf (cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system (cmd);
    unlink (path);
    assert_int_equal (rc, 0);
    free (text);
    emetrics_destroy (&em);
    bsnap_release (&snap);
}

static void test_bsnap_rejects (void **state)
{
    const uint8_t not_map[] = { 0x93, 0x01, 0x02, 0x03 };
    assert_null (bsnap_decode (not_map, sizeof not_map, 0));
    const uint8_t truncated[] = { 0x82, 0xa1, 'a' };
    assert_null (bsnap_decode (truncated, sizeof truncated, 0));
    assert_null (bsnap_decode ("", 0, 0));
}

//  --------------------------------------------------------------- msgpack

static void test_mpack_valid (void **state)
{
    const uint8_t ok[] = { 0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x92, 0xc0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0 };
    assert_true (mpack_valid (ok, sizeof ok, MPACK_DEPTH_MAX));
    assert_false (mpack_valid (ok, sizeof ok - 1, MPACK_DEPTH_MAX));     // truncated float
    const uint8_t trailing[] = { 0x01, 0x02 };
    assert_false (mpack_valid (trailing, sizeof trailing, MPACK_DEPTH_MAX));
    const uint8_t huge_array[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };
    assert_false (mpack_valid (huge_array, sizeof huge_array, MPACK_DEPTH_MAX));
    const uint8_t huge_str[] = { 0xdb, 0x7f, 0xff, 0xff, 0xff, 'x' };
    assert_false (mpack_valid (huge_str, sizeof huge_str, MPACK_DEPTH_MAX));
    const uint8_t never_used[] = { 0xc1 };
    assert_false (mpack_valid (never_used, 1, MPACK_DEPTH_MAX));
    uint8_t deep[40];
    memset (deep, 0x91, sizeof deep);           // 39 nested one-element arrays around nil
    deep[39] = 0xc0;
    assert_false (mpack_valid (deep, sizeof deep, MPACK_DEPTH_MAX));
    assert_true (mpack_valid (deep + 20, 20, MPACK_DEPTH_MAX));
    const uint8_t ext[] = { 0xd6, 0xff, 1, 2, 3, 4 };          // fixext4 (timestamp)
    assert_true (mpack_valid (ext, sizeof ext, MPACK_DEPTH_MAX));
    assert_false (mpack_valid (ok, 0, MPACK_DEPTH_MAX));
}

static void test_mpack_json (void **state)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 7);
    s_pack_str (&pk, "s");
    s_pack_str (&pk, "a\"b\\\n\x01");
    s_pack_str (&pk, "n");
    msgpack_pack_nil (&pk);
    s_pack_str (&pk, "f");
    msgpack_pack_double (&pk, 41.2);
    s_pack_str (&pk, "i");
    msgpack_pack_int64 (&pk, -5);
    s_pack_str (&pk, "a");
    msgpack_pack_array (&pk, 2);
    msgpack_pack_true (&pk);
    msgpack_pack_uint64 (&pk, 18446744073709551615ull);
    s_pack_str (&pk, "b");
    msgpack_pack_bin (&pk, 2);
    msgpack_pack_bin_body (&pk, "xy", 2);
    msgpack_pack_uint64 (&pk, 7);               // a non-string key
    msgpack_pack_double (&pk, NAN);
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    assert_int_equal (msgpack_unpack_next (&up, sbuf.data, sbuf.size, NULL), MSGPACK_UNPACK_SUCCESS);
    buf_t out;
    buf_init (&out, 4096);
    assert_int_equal (mpack_to_json (&up.data, &out), 0);
    assert_string_equal (out.data, "{\"s\":\"a\\\"b\\\\\\n\\u0001\",\"n\":null,\"f\":41.2,\"i\":-5,"
                                   "\"a\":[true,18446744073709551615],\"b\":null,\"7\":null}");
    cJSON *js = cJSON_Parse (out.data);
    assert_non_null (js);
    cJSON_Delete (js);
    //  Output limit: refused, not truncated silently
    buf_t small;
    buf_init (&small, 10);
    assert_int_equal (mpack_to_json (&up.data, &small), -1);
    assert_true (small.toobig);
    buf_free (&small);
    buf_free (&out);
    msgpack_unpacked_destroy (&up);
    msgpack_sbuffer_destroy (&sbuf);
}

//  --------------------------------------------------------------- edge event

static void test_edge_event_json (void **state)
{
    hist_t lat, ovh;
    hist_reset (&lat);
    hist_reset (&ovh);
    for (int i = 0; i < 100; i++) {
        hist_record (&lat, 40000);
        hist_record (&ovh, 400);
    }
    bridge_edge_t e = { .ts_ms = 1764201600000, .requests_total = 1200, .errors_total = 3,
                        .window_requests = 100, .window_errors = 1, .window_s = 10,
                        .in_flight = 4, .latency = &lat, .overhead = &ovh, .broker_up = true,
                        .workers = 2 };
    buf_t out;
    buf_init (&out, 4096);
    assert_int_equal (bridge_edge_json (&out, &e), 0);
    cJSON *js = cJSON_Parse (out.data);
    assert_non_null (js);
    assert_int_equal (cJSON_GetObjectItem (js, "requests_total")->valuedouble, 1200);
    assert_int_equal (cJSON_GetObjectItem (js, "requests_in_flight")->valuedouble, 4);
    assert_true (fabs (cJSON_GetObjectItem (js, "rps")->valuedouble - 10.0) < 1e-9);
    assert_true (fabs (cJSON_GetObjectItem (js, "error_rate")->valuedouble - 0.01) < 1e-9);
    double p50 = cJSON_GetObjectItem (cJSON_GetObjectItem (js, "latency_ms"), "p50")->valuedouble;
    assert_true (p50 >= 40.0 && p50 <= 40.0 * 17 / 16);
    double o99 = cJSON_GetObjectItem (cJSON_GetObjectItem (js, "overhead_ms"), "p99")->valuedouble;
    assert_true (o99 >= 0.4 && o99 <= 0.4 * 17 / 16);
    assert_true (cJSON_IsTrue (cJSON_GetObjectItem (js, "broker_up")));
    assert_int_equal (cJSON_GetObjectItem (js, "workers")->valuedouble, 2);
    assert_int_equal (cJSON_GetObjectItem (js, "ts_ms")->valuedouble, 1764201600000.0);
    cJSON_Delete (js);
    buf_free (&out);
}

//  --------------------------------------------------------------- document root

static void test_resolve_root (void **state)
{
    char dir[] = "/tmp/aigw-root-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char sub[64], cfgpath[96], root[512];
    snprintf (sub, sizeof sub, "%s/ui", dir);
    assert_int_equal (mkdir (sub, 0700), 0);
    snprintf (cfgpath, sizeof cfgpath, "%s/config/aigw.conf", dir);
    char cfgdir[80];
    snprintf (cfgdir, sizeof cfgdir, "%s/config", dir);
    assert_int_equal (mkdir (cfgdir, 0700), 0);
    snprintf (root, sizeof root, "../ui");              // exists: normalized
    assert_int_equal (cfg_resolve_path (root, sizeof root, cfgpath), 0);
    assert_string_equal (root, sub);
    snprintf (root, sizeof root, "../ui/dist");         // missing: joined as is
    assert_int_equal (cfg_resolve_path (root, sizeof root, cfgpath), 0);
    char want[160];
    snprintf (want, sizeof want, "%s/../ui/dist", cfgdir);
    assert_string_equal (root, want);
    snprintf (root, sizeof root, "/srv/dist");          // absolute: unchanged
    assert_int_equal (cfg_resolve_path (root, sizeof root, cfgpath), 0);
    assert_string_equal (root, "/srv/dist");
    root[0] = 0;                                        // off: unchanged
    assert_int_equal (cfg_resolve_path (root, sizeof root, cfgpath), 0);
    assert_string_equal (root, "");
    char tiny[8] = "ui";                                // does not fit: unchanged, -1
    assert_int_equal (cfg_resolve_path (tiny, sizeof tiny, cfgpath), -1);
    assert_string_equal (tiny, "ui");
    rmdir (sub);
    rmdir (cfgdir);
    rmdir (dir);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_routes),
        cmocka_unit_test (test_upstream_note),
        cmocka_unit_test (test_in_flight_and_codes),
        cmocka_unit_test (test_label_escaping),
        cmocka_unit_test (test_edge_histograms),
        cmocka_unit_test (test_broker_series),
        cmocka_unit_test (test_broker_without_health),
        cmocka_unit_test (test_bsnap_state_names),
        cmocka_unit_test (test_promtool),
        cmocka_unit_test (test_bsnap_rejects),
        cmocka_unit_test (test_mpack_valid),
        cmocka_unit_test (test_mpack_json),
        cmocka_unit_test (test_edge_event_json),
        cmocka_unit_test (test_resolve_root),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
