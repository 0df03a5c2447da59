// Prometheus text format 0.0.4: HELP and TYPE before each family, escaped label
// values, cumulative histogram buckets, seconds for every time.
#include "prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const prom_bridge_topics[PROM_BRIDGE_TOPICS] = { "metrics", "job", "worker", "edge" };

typedef struct {
    const char *key;
    const char *value;
} s_label_t;

//  --------------------------------------------------------------- snapshot

static void s_hist_from (prom_hist_t *out, const em_hist_t *h)
{
    out->bounds_us = h->bounds_us;
    out->nbounds = h->nbounds;
    for (size_t i = 0; i <= h->nbounds; i++)
        out->buckets[i] = atomic_load_explicit (&((em_hist_t *) h)->buckets[i],
                                                memory_order_relaxed);
    out->sum_us = hist_sum (&h->hist);
}

void prom_edge_from (prom_edge_t *out, const emetrics_t *em)
{
    emetrics_t *m = (emetrics_t *) em;
    for (int r = 0; r < EM_ROUTES; r++) {
        for (int c = 0; c < EM_CODES; c++)
            out->codes[r][c] = atomic_load_explicit (&m->codes[r][c], memory_order_relaxed);
        s_hist_from (&out->duration[r], &m->duration[r]);
    }
    s_hist_from (&out->overhead, &m->overhead);
    int64_t inf = atomic_load (&m->in_flight);
    out->in_flight = inf > 0 ? inf : 0;
}

//  --------------------------------------------------------------- text

int prom_label_value (buf_t *out, const char *s)
{
    size_t run = 0, i = 0;
    for (; s[i]; i++) {
        const char *esc = s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\"" : s[i] == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        if (buf_append (out, s + run, i - run) || buf_puts (out, esc))
            return -1;
        run = i + 1;
    }
    return buf_append (out, s + run, i - run);
}

static int s_family (buf_t *out, const char *name, const char *type, const char *help)
{
    return buf_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int s_double (buf_t *out, double v)
{
    if (isnan (v))
        return buf_puts (out, "NaN");
    if (isinf (v))
        return buf_puts (out, v > 0 ? "+Inf" : "-Inf");
    char text[40];
    if (v == floor (v) && fabs (v) < 9007199254740992.0)
        snprintf (text, sizeof text, "%.0f", v);        // integers exactly (up to 2^53)
    else
        snprintf (text, sizeof text, "%.15g", v);       // no binary noise (0.0802, not ...01)
    return buf_puts (out, text);
}

static int s_labels (buf_t *out, const s_label_t *labels, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_putc (out, '{'))
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((i && buf_putc (out, ',')) || buf_printf (out, "%s=\"", labels[i].key)
            || prom_label_value (out, labels[i].value) || buf_putc (out, '"'))
            return -1;
    return buf_putc (out, '}');
}

static int s_sample (buf_t *out, const char *name, const s_label_t *labels, size_t n,
                     double v)
{
    return buf_puts (out, name) || s_labels (out, labels, n) || buf_putc (out, ' ')
           || s_double (out, v) || buf_putc (out, '\n') ? -1 : 0;
}

static int s_sample_u (buf_t *out, const char *name, const s_label_t *labels, size_t n,
                       uint64_t v)
{
    return buf_puts (out, name) || s_labels (out, labels, n)
           || buf_printf (out, " %llu\n", (unsigned long long) v) ? -1 : 0;
}

//  A family with one unlabelled sample.
static int s_single (buf_t *out, const char *name, const char *type, const char *help,
                     double v)
{
    return s_family (out, name, type, help) || s_sample (out, name, NULL, 0, v) ? -1 : 0;
}

//  _bucket (cumulative, le in seconds), _sum and _count of one histogram series.
static int s_hist (buf_t *out, const char *name, const s_label_t *labels, size_t n,
                   const prom_hist_t *h)
{
    char series[128], le[32];
    s_label_t lab[4];
    if (n > 3)
        return -1;
    if (n)
        memcpy (lab, labels, n * sizeof *lab);
    lab[n].key = "le";
    lab[n].value = le;
    uint64_t cum = 0;
    snprintf (series, sizeof series, "%s_bucket", name);
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += h->buckets[i];
        if (i < h->nbounds)
            snprintf (le, sizeof le, "%.15g", (double) h->bounds_us[i] / 1e6);
        else
            snprintf (le, sizeof le, "+Inf");
        if (s_sample_u (out, series, lab, n + 1, cum))
            return -1;
    }
    snprintf (series, sizeof series, "%s_sum", name);
    if (s_sample (out, series, labels, n, (double) h->sum_us / 1e6))
        return -1;
    snprintf (series, sizeof series, "%s_count", name);
    return s_sample_u (out, series, labels, n, cum);
}

//  --------------------------------------------------------------- edge

static int s_edge_requests (buf_t *out, const prom_edge_t *e)
{
    const char *name = "aigw_edge_http_requests_total";
    if (s_family (out, name, "counter", "HTTP requests answered by the edge, by route and status code."))
        return -1;
    for (int r = 0; r < EM_ROUTES; r++)
        for (int c = 0; c < EM_CODES; c++) {
            if (!e->codes[r][c])
                continue;
            char code[8];
            snprintf (code, sizeof code, "%d", c + EM_CODE_MIN);
            s_label_t lab[] = { { "route", emetrics_route_name ((em_route_t) r) }, { "code", code } };
            if (s_sample_u (out, name, lab, 2, e->codes[r][c]))
                return -1;
        }
    return 0;
}

static int s_edge_durations (buf_t *out, const prom_edge_t *e)
{
    const char *name = "aigw_edge_http_request_duration_seconds";
    if (s_family (out, name, "histogram",
                  "Time from request headers read to response written, by route "
                  "(event streams excluded)."))
        return -1;
    for (int r = 0; r < EM_ROUTES; r++) {
        const prom_hist_t *h = &e->duration[r];
        uint64_t count = 0;
        for (size_t i = 0; i <= h->nbounds; i++)
            count += h->buckets[i];
        if (r == EM_ROUTE_EVENTS || (count == 0 && r != EM_ROUTE_CHAT))
            continue;
        s_label_t lab[] = { { "route", emetrics_route_name ((em_route_t) r) } };
        if (s_hist (out, name, lab, 1, h))
            return -1;
    }
    name = "aigw_edge_overhead_seconds";
    return s_family (out, name, "histogram",
                     "Gateway overhead of chat requests with a winner: edge request time "
                     "minus the upstream span (first attempt start to winner finish).")
           || s_hist (out, name, NULL, 0, &e->overhead) ? -1 : 0;
}

static int s_edge_link (buf_t *out, const prom_edge_t *e)
{
    return s_single (out, "aigw_edge_http_requests_in_flight", "gauge",
                     "Requests being handled now (event streams excluded).", (double) e->in_flight)
        || s_single (out, "aigw_edge_broker_link_up", "gauge",
                     "1 if the broker answered the edge within heartbeat_ms x liveness.",
                     e->link_up ? 1 : 0)
        || s_single (out, "aigw_edge_link_submitted_total", "counter",
                     "Jobs submitted to the broker.", (double) e->link_submitted)
        || s_single (out, "aigw_edge_link_reconnects_total", "counter",
                     "Broker sockets recreated after the broker went silent.",
                     (double) e->link_reconnects)
        || s_single (out, "aigw_edge_link_unrouted_total", "counter",
                     "Broker answers for jobs nobody waited for (or from a broker that no "
                     "longer holds the job).", (double) e->link_unrouted)
        || s_single (out, "aigw_edge_brokers", "gauge",
                     "Brokers in edge/broker.", (double) e->brokers)
        || s_single (out, "aigw_edge_brokers_up", "gauge",
                     "Brokers that answered within heartbeat_ms x liveness.",
                     (double) e->brokers_up)
        || s_single (out, "aigw_edge_link_brokers_lost_total", "counter",
                     "Brokers lost: connection dropped, restarted or silent.",
                     (double) e->link_brokers_lost)
        || s_single (out, "aigw_edge_link_broker_restarts_total", "counter",
                     "Brokers seen answering with a new instance id.",
                     (double) e->link_restarts)
        || s_single (out, "aigw_edge_link_resubmitted_total", "counter",
                     "Jobs sent again to a live broker after theirs was lost, before any "
                     "output reached the client.", (double) e->link_resubmitted)
        || s_single (out, "aigw_edge_link_failed_on_down_total", "counter",
                     "Jobs failed because their broker was lost (output already sent, "
                     "already resubmitted once, or no broker came back in time).",
                     (double) e->link_failed_on_down)
        || s_single (out, "aigw_edge_connections", "gauge",
                     "HTTP connections open.", (double) e->connections)
        || s_single (out, "aigw_edge_connections_refused_total", "counter",
                     "Connections closed at accept (edge/max_connections, edge/max_per_ip).",
                     (double) e->conn_refused)
        || s_single (out, "aigw_edge_connections_over_limit_total", "counter",
                     "Connections answered 503 beyond edge/max_connections.",
                     (double) e->conn_over_limit)
        || s_single (out, "aigw_edge_header_timeouts_total", "counter",
                     "Requests answered 408: headers not received within edge/header_timeout_ms.",
                     (double) e->header_timeouts)
        || s_single (out, "aigw_edge_jobs_in_flight", "gauge",
                     "Chat jobs submitted and not yet answered.", (double) e->jobs_in_flight)
        || s_single (out, "aigw_edge_jobs_refused_total", "counter",
                     "Chat requests answered 429 at edge/max_jobs.", (double) e->jobs_refused)
        || s_single (out, "aigw_edge_bad_framing_total", "counter",
                     "Requests refused for duplicate or conflicting length headers.",
                     (double) e->bad_framing)
        || s_single (out, "aigw_edge_stream_overflow_total", "counter",
                     "Stream clients dropped for not reading (edge/stream_buffer).",
                     (double) e->stream_overflow)
        || s_single (out, "aigw_edge_link_bad_messages_total", "counter",
                     "Malformed broker messages dropped.", (double) e->link_bad) ? -1 : 0;
}

const char *const prom_auth_reasons[PROM_AUTH_REASONS] = {
    "unauthorized", "model_not_allowed", "rate_requests", "rate_tokens", "parallel",
    "insufficient_quota"
};

static int s_edge_keys (buf_t *out, const prom_edge_t *e)
{
    static const char name[] = "aigw_edge_auth_requests_total";
    if (s_family (out, name, "counter", "Chat requests by the key check's verdict "
                  "(edge/auth = on).")
        || s_sample_u (out, name, (s_label_t[]) { { "result", "admitted" } }, 1,
                       e->auth_admitted))
        return -1;
    for (int i = 0; i < PROM_AUTH_REASONS; i++)
        if (s_sample_u (out, name, (s_label_t[]) { { "result", prom_auth_reasons[i] } }, 1,
                        e->auth_refused[i]))
            return -1;
    return s_single (out, "aigw_edge_admin_refused_total", "counter",
                     "Operator routes (admin API, metrics, events) refused for a missing or "
                     "wrong admin key.", (double) e->admin_refused)
        || s_single (out, "aigw_edge_admin_calls_total", "counter",
                     "Calls made with the admin key.", (double) e->admin_calls)
        || s_single (out, "aigw_edge_spend_usd_total", "counter",
                     "Cost charged for every attempt, cancelled losers included (price table "
                     "in models/*/input_price, output_price).", e->cost_usd)
        || s_single (out, "aigw_edge_spend_loser_usd_total", "counter",
                     "Of the cost, what cancelled race losers still cost.", e->loser_cost_usd)
        || s_single (out, "aigw_edge_cancel_saved_usd", "gauge",
                     "Estimated cost avoided by cancelling losers (the winner's output tokens "
                     "at each loser's price, less what the loser produced).", e->saved_usd)
        || s_single (out, "aigw_edge_spend_charges_total", "counter",
                     "Attempts charged.", (double) e->charges)
        || s_single (out, "aigw_edge_spend_late_total", "counter",
                     "Attempts charged after their job's answer (SPEND from the broker).",
                     (double) e->late_charges) ? -1 : 0;
}

static int s_edge_bridge (buf_t *out, const prom_edge_t *e)
{
    if (s_single (out, "aigw_edge_bridge_clients", "gauge",
                  "Browsers connected to /v1/aigw/events.", (double) e->bridge_clients)
        || s_single (out, "aigw_edge_bridge_dropped_total", "counter",
                     "Event stream clients dropped because their buffer overflowed.",
                     (double) e->bridge_dropped)
        || s_single (out, "aigw_edge_bridge_refused_total", "counter",
                     "Event stream clients refused (503) at the client limit.",
                     (double) e->bridge_refused)
        || s_single (out, "aigw_edge_bridge_bad_messages_total", "counter",
                     "Broker stream messages dropped as malformed or too large.",
                     (double) e->bridge_bad))
        return -1;
    const char *name = "aigw_edge_bridge_messages_total";
    if (s_family (out, name, "counter", "Events relayed to browsers, by topic."))
        return -1;
    for (int i = 0; i < PROM_BRIDGE_TOPICS; i++) {
        s_label_t lab[] = { { "topic", prom_bridge_topics[i] } };
        if (s_sample_u (out, name, lab, 1, e->bridge_messages[i]))
            return -1;
    }
    return 0;
}

//  --------------------------------------------------------------- broker

//  name{outcome} from the broker counters <prefix>_<outcome>.
static int s_outcomes (buf_t *out, const bsnap_t *b, const char *name, const char *help,
                       const char *prefix, const char *const *outcomes, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        char key[BSNAP_KEY_MAX];
        snprintf (key, sizeof key, "%s_%s", prefix, outcomes[i]);
        double v = bsnap_counter (b, key);
        if (isnan (v))
            continue;
        s_label_t lab[] = { { "outcome", outcomes[i] } };
        if ((!any && s_family (out, name, "counter", help)) || s_sample (out, name, lab, 1, v))
            return -1;
        any = true;
    }
    return 0;
}

static const char *const s_job_outcomes[] = { "won", "failed", "timeout", "cancelled" };
static const char *const s_attempt_outcomes[] = { "won", "cancelled", "failed" };

//  True for counters exported by s_outcomes (not repeated as their own family).
static bool s_is_outcome_counter (const char *name)
{
    char key[BSNAP_KEY_MAX];
    for (size_t i = 0; i < 4; i++) {
        snprintf (key, sizeof key, "jobs_%s", s_job_outcomes[i]);
        if (strcmp (name, key) == 0)
            return true;
    }
    for (size_t i = 0; i < 3; i++) {
        snprintf (key, sizeof key, "attempts_%s", s_attempt_outcomes[i]);
        if (strcmp (name, key) == 0)
            return true;
    }
    return strcmp (name, "jobs") == 0 || strcmp (name, "attempts") == 0;
}

//  Help text of the broker counters we know (brokers/broker_counters.h); others get a generic one.
static const struct {
    const char *key;
    const char *help;
} s_counter_help[] = {
    { "jobs_accepted", "Chat requests the broker accepted as jobs." },
    { "jobs_rejected", "Requests the broker refused as malformed (ERR_BAD_REQUEST)." },
    { "jobs_cooldown", "Jobs failed at once because every target was cooling down (also in jobs failed)." },
    { "jobs_client_gone", "Jobs cancelled because the connection of the client that sent them closed (also in jobs cancelled)." },
    { "attempts_started", "Attempts dispatched to workers." },
    { "attempts_redispatched", "Attempts started again because their worker was lost." },
    { "attempts_retried", "Retries started after a retryable failure." },
    { "attempts_hedged", "Backup attempts started by the hedge timer." },
    { "attempts_skipped", "Targets not started because they were cooling down." },
    { "hedges_suppressed", "Hedges the hedge budget refused." },
    { "retries_suppressed", "Retries the hedge budget refused." },
    { "breaker_trips", "Times a model's circuit breaker opened (a cooldown started)." },
    { "late_replies", "Worker replies for an attempt no longer live." },
    { "cancel_acks", "Cancellations acknowledged by workers." },
    { "malformed", "Malformed messages dropped." },
    { "unknown_worker", "Messages from unregistered workers (sent DISCONNECT)." },
    { "denied_clients", "Frontend messages from certificates not in fabric/clients." },
    { "denied_models", "Models in READYs that fabric/workers does not allow." },
    { "denied_readys", "READYs refused: no model left, or no known certificate." },
    { "denied_handshakes", "Connections refused at the CURVE handshake." },
    { "workers_joined", "Workers that registered." },
    { "workers_lost", "Workers that left or went silent." },
    { "send_failures", "Sends that failed (peer gone or pipe full)." },
    { "send_full", "Sends refused because a worker's pipe was full (also in send failures)." },
    { "spend_sent", "SPEND messages sent: a cancelled attempt's usage after its job's answer." },
    { "spend_lost", "SPEND messages owed but not sent." },
    { "events_published", "Job and worker events handed to the metrics stream." },
};

static const char *s_help_of (const char *key)
{
    for (size_t i = 0; i < sizeof s_counter_help / sizeof s_counter_help[0]; i++)
        if (strcmp (s_counter_help[i].key, key) == 0)
            return s_counter_help[i].help;
    return NULL;
}

//  Every other broker counter as aigw_broker_<name>_total (name sanitized).
static int s_other_counters (buf_t *out, const bsnap_t *b)
{
    for (size_t i = 0; i < b->ncounters; i++) {
        const char *key = b->counters[i].name;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp (b->counters[j].name, key) == 0;
        if (dup || s_is_outcome_counter (key))
            continue;
        char name[BSNAP_KEY_MAX + 32], help[BSNAP_KEY_MAX + 32];
        int n = snprintf (name, sizeof name, "aigw_broker_%s", key);
        for (char *p = name + 12; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                  || (*p >= '0' && *p <= '9') || *p == '_'))
                *p = '_';
        size_t len = (size_t) n;
        if (len < 6 || strcmp (name + len - 6, "_total") != 0)
            snprintf (name + len, sizeof name - len, "_total");
        const char *known = s_help_of (key);
        snprintf (help, sizeof help, "Broker counter %s.", key);
        if (s_single (out, name, "counter", known ? known : help, b->counters[i].value))
            return -1;
    }
    return 0;
}

typedef struct {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;                      // of a double in bsnap_model_t / bsnap_worker_t
    double scale;
} s_field_t;

#define S_MODEL(f) offsetof (bsnap_model_t, f)
#define S_WORKER(f) offsetof (bsnap_worker_t, f)

static const s_field_t s_model_fields[] = {
    { "aigw_model_workers", "gauge", "Live workers serving the model.", S_MODEL (workers), 1 },
    { "aigw_model_capacity", "gauge", "Concurrent attempts the model's workers accept.", S_MODEL (capacity), 1 },
    { "aigw_model_in_flight", "gauge", "Attempts running on the model now.", S_MODEL (in_flight), 1 },
    { "aigw_model_queued", "gauge", "Attempts waiting for a worker slot.", S_MODEL (queued), 1 },
    { "aigw_model_wins_total", "counter", "Races the model won.", S_MODEL (wins), 1 },
    { "aigw_model_losses_total", "counter", "Races the model lost (attempt cancelled by a winner).", S_MODEL (losses), 1 },
    { "aigw_model_errors_total", "counter", "Attempts on the model that failed.", S_MODEL (errors), 1 },
    { "aigw_model_cancelled_total", "counter", "Attempts on the model cancelled.", S_MODEL (cancelled), 1 },
    { "aigw_model_tokens_saved_total", "counter", "Completion tokens not generated thanks to cancelled losers.", S_MODEL (tokens_saved), 1 },
    { "aigw_model_tokens_wasted_total", "counter", "Completion tokens generated by attempts that lost.", S_MODEL (tokens_wasted), 1 },
    { "aigw_model_cooldown_remaining_seconds", "gauge", "Time left until the model's circuit breaker lets a start through again, 0 unless cooling (as of the broker's latest metrics message).", S_MODEL (cooldown_left_ms), 1e-3 },
    { "aigw_model_error_rate", "gauge", "Share of the model's attempt outcomes that failed over the circuit breaker's window (0 to 1).", S_MODEL (error_rate), 1 },
    { "aigw_model_breaker_trips_total", "counter", "Times the model's circuit breaker opened (a cooldown started).", S_MODEL (trips), 1 },
    { "aigw_model_skipped_total", "counter", "Starts on the model refused because it was cooling down.", S_MODEL (skipped), 1 },
    { "aigw_model_retries_total", "counter", "Retries started on the model after a retryable failure.", S_MODEL (retries), 1 },
    { "aigw_model_hedges_total", "counter", "Backup attempts started on the model by the hedge timer.", S_MODEL (hedges), 1 },
    { "aigw_model_budget_refused_total", "counter", "Hedges and retries the hedge budget refused, this model paying.", S_MODEL (budget_refused), 1 },
};

static const s_field_t s_worker_fields[] = {
    { "aigw_worker_up", "gauge", "1 while the broker hears from the worker.", S_WORKER (alive), 1 },
    { "aigw_worker_in_flight", "gauge", "Attempts running on the worker now.", S_WORKER (in_flight), 1 },
    { "aigw_worker_capacity", "gauge", "Concurrent attempts the worker accepts.", S_WORKER (capacity), 1 },
    { "aigw_worker_last_seen_seconds", "gauge", "Time since the broker last heard from the worker.", S_WORKER (last_seen_ms), 1e-3 },
    { "aigw_worker_completed_total", "counter", "Attempts the worker completed.", S_WORKER (completed), 1 },
    { "aigw_worker_failed_total", "counter", "Attempts that failed on the worker.", S_WORKER (failed), 1 },
    { "aigw_worker_cancelled_total", "counter", "Attempts cancelled on the worker.", S_WORKER (cancelled), 1 },
};

//  One family over n records of size stride: label key = each record's name.
static int s_records (buf_t *out, const s_field_t *f, const char *label, const void *base,
                      size_t n, size_t stride)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        const char *rec = (const char *) base + i * stride;
        double v;
        memcpy (&v, rec + f->offset, sizeof v);
        if (isnan (v))
            continue;
        s_label_t lab[] = { { label, rec } };      // the name is the record's first field
        if ((!any && s_family (out, f->name, f->type, f->help))
            || s_sample (out, f->name, lab, 1, v * f->scale))
            return -1;
        any = true;
    }
    return 0;
}

//  A model's percentiles as a summary (quantile samples, plus _count when the broker
//  says how many samples it has). Models without data (all zero or absent) are skipped.
static int s_quantiles (buf_t *out, const bsnap_t *b, const char *name, const char *help,
                        size_t offset, bool with_count)
{
    static const char *const q[] = { "0.5", "0.95", "0.99" };
    char count[96];
    snprintf (count, sizeof count, "%s_count", name);
    bool any = false;
    for (size_t i = 0; i < b->nmodels; i++) {
        const bsnap_model_t *m = &b->models[i];
        const bsnap_pcts_t *p = (const bsnap_pcts_t *) ((const char *) m + offset);
        double v[] = { p->p50, p->p95, p->p99 };
        if (!(v[0] > 0 || v[1] > 0 || v[2] > 0) || (with_count && m->samples == 0))
            continue;
        if (!any && s_family (out, name, "summary", help))
            return -1;
        any = true;
        for (int k = 0; k < 3; k++) {
            s_label_t lab[] = { { "model", m->name }, { "quantile", q[k] } };
            if (!isnan (v[k]) && s_sample (out, name, lab, 2, v[k] / 1000.0))
                return -1;
        }
        s_label_t lab[] = { { "model", m->name } };
        if (with_count && !isnan (m->samples) && s_sample (out, count, lab, 1, m->samples))
            return -1;
    }
    return 0;
}

//  aigw_model_state{model, state}: 1 for the model's state, 0 for the others, for the
//  models whose state the broker sent.
static int s_model_state (buf_t *out, const bsnap_t *b)
{
    static const char name[] = "aigw_model_state";
    bool any = false;
    for (size_t i = 0; i < b->nmodels; i++) {
        const bsnap_model_t *m = &b->models[i];
        if (!bsnap_state_name (m->state))
            continue;
        if (!any && s_family (out, name, "gauge",
                              "The broker's health state of the model: 1 for the current one "
                              "(healthy, degraded: failing or probing, cooling: circuit breaker "
                              "open), 0 for the others."))
            return -1;
        any = true;
        for (int s = BSNAP_STATE_HEALTHY; s <= BSNAP_STATES; s++) {
            s_label_t lab[] = { { "model", m->name }, { "state", bsnap_state_name ((bsnap_state_t) s) } };
            if (s_sample_u (out, name, lab, 2, m->state == (bsnap_state_t) s))
                return -1;
        }
    }
    return 0;
}

static int s_broker_models (buf_t *out, const bsnap_t *b)
{
    for (size_t i = 0; i < sizeof s_model_fields / sizeof s_model_fields[0]; i++)
        if (s_records (out, &s_model_fields[i], "model", b->models, b->nmodels, sizeof *b->models))
            return -1;
    if (s_model_state (out, b))
        return -1;
    for (size_t i = 0; i < sizeof s_worker_fields / sizeof s_worker_fields[0]; i++)
        if (s_records (out, &s_worker_fields[i], "worker", b->workers, b->nworkers,
                       sizeof *b->workers))
            return -1;
    return s_quantiles (out, b, "aigw_model_latency_seconds",
                        "Broker's latency percentiles of the model's finished attempts.",
                        offsetof (bsnap_model_t, latency), true)
        || s_quantiles (out, b, "aigw_model_ttft_seconds",
                        "Broker's time-to-first-token percentiles of the model.",
                        offsetof (bsnap_model_t, ttft), false) ? -1 : 0;
}

static int s_broker (buf_t *out, const bsnap_t *b)
{
    if (s_single (out, "aigw_broker_up", "gauge",
                  "1 if a broker metrics message arrived recently.", b ? 1 : 0))
        return -1;
    if (!b)
        return 0;
    s_label_t id[] = { { "broker_id", b->broker_id } };
    if (s_family (out, "aigw_broker_info", "gauge", "The broker publishing the metrics stream.")
        || s_sample (out, "aigw_broker_info", id, 1, 1))
        return -1;
    if ((!isnan (b->uptime_s) && s_single (out, "aigw_broker_uptime_seconds", "gauge",
                                           "Broker uptime.", b->uptime_s))
        || (!isnan (b->jobs_in_flight)
            && s_single (out, "aigw_broker_jobs_in_flight", "gauge",
                         "Jobs the broker is working on.", b->jobs_in_flight)))
        return -1;
    return s_outcomes (out, b, "aigw_broker_jobs_total", "Jobs finished by the broker, by outcome.",
                       "jobs", s_job_outcomes, 4)
        || s_outcomes (out, b, "aigw_broker_attempts_total", "Attempts finished, by outcome.",
                       "attempts", s_attempt_outcomes, 3)
        || s_other_counters (out, b) || s_broker_models (out, b) ? -1 : 0;
}

//  The shared limits' backend (limits/backend = redis only).
static int s_edge_limits (buf_t *out, const prom_edge_t *e)
{
    if (!e->limits_shared)
        return 0;
    return s_single (out, "aigw_limits_backend_up", "gauge",
                     "1 if the latest call to the shared limits' Redis succeeded.",
                     e->limits_up ? 1 : 0)
        || s_single (out, "aigw_limits_backend_errors_total", "counter",
                     "Redis errors and timeouts of the shared limits (connects, commands, "
                     "error or malformed replies); each applied limits/on_failure.",
                     (double) e->limits_errors)
        || s_single (out, "aigw_limits_unavailable_total", "counter",
                     "Chat requests answered 503 limits_unavailable (on_failure = closed).",
                     (double) e->limits_refused) ? -1 : 0;
}

int prom_render (buf_t *out, const prom_edge_t *edge, const bsnap_t *broker)
{
    if (s_edge_requests (out, edge) || s_edge_durations (out, edge) || s_edge_link (out, edge)
        || s_edge_bridge (out, edge) || s_edge_keys (out, edge) || s_edge_limits (out, edge))
        return -1;
    if (!isnan (edge->broker_age_s)
        && s_single (out, "aigw_broker_metrics_age_seconds", "gauge",
                     "Age of the latest broker metrics message.", edge->broker_age_s))
        return -1;
    return s_broker (out, broker);
}
