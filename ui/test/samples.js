// Sample events, as in docs/metrics-stream.md.
export const METRICS = {
  ts_ms: 1764201600000,
  broker_id: 'host-1234',
  uptime_s: 42,
  jobs_in_flight: 3,
  counters: { jobs_accepted: 10, jobs_won: 9, jobs_failed: 1, attempts_started: 20, malformed: 0 },
  models: [
    {
      name: 'fast-sim', workers: 2, capacity: 128, in_flight: 1, queued: 0,
      wins: 9, losses: 1, errors: 0, cancelled: 1, tokens_saved: 120, tokens_wasted: 14,
      latency_ms: { p50: 41.0, p95: 80.2, p99: 95.0 }, ttft_ms: { p50: 31.0, p95: 60.2, p99: 75.0 },
    },
  ],
  workers: [
    { id: 'worker-1', models: ['fast-sim', 'slow-sim'], alive: true, in_flight: 1, capacity: 64, last_seen_ms: 120, completed: 10, failed: 0, cancelled: 4 },
  ],
};

export const JOB = {
  job_id: 17, ts_ms: 1764201600123, targets: ['slow-sim', 'fast-sim'], policy: 'race',
  outcome: 'won', winner: 'fast-sim', error: null, latency_ms: 41.5,
  attempts: [
    { attempt_id: 33, model: 'slow-sim', worker: 'worker-2', outcome: 'cancelled', started_ms: 0.1, first_token_ms: null, finished_ms: 41.6, error: null },
    { attempt_id: 34, model: 'fast-sim', worker: 'worker-1', outcome: 'won', started_ms: 0.1, first_token_ms: 41.2, finished_ms: 41.4, error: null },
  ],
};

export const WORKER_JOIN = { event: 'join', id: 'worker-9', models: ['fast-sim'], capacity: 64, reason: null, ts_ms: 1764201600000 };
export const WORKER_LEAVE = { event: 'leave', id: 'worker-9', models: ['fast-sim'], capacity: 64, reason: 'heartbeat expired', ts_ms: 1764201603000 };

export const EDGE = {
  ts_ms: 1764201600000, requests_total: 1200, requests_in_flight: 4, rps: 35.2,
  errors_total: 3, error_rate: 0.01, latency_ms: { p50: 42.0, p99: 120.0 },
  overhead_ms: { p50: 0.4, p99: 1.2 }, broker_up: true, workers: 2,
};

export function model(overrides) {
  return { ...METRICS.models[0], ...overrides };
}

//  A newer broker's per-model health fields (brokers/bmetrics.c), all quiet.
export const HEALTH = {
  state: 'healthy', cooldown_left_ms: 0, error_rate: 0, trips: 0, skipped: 0, retries: 0, hedges: 0, budget_refused: 0,
};

//  A hedge job as a newer broker reports it: the first target skipped (cooling down), the
//  next one failed and was retried, and a hedge (backup) raced the retry.
export const JOB_RESILIENCE = {
  job_id: 21, ts_ms: 1764201601000, targets: ['gpt-4o', 'claude-sonnet', 'fast-sim'], policy: 'hedge',
  outcome: 'won', winner: 'claude-sonnet', error: null, message: null, latency_ms: 890,
  hedge_suppressed: false, retry_suppressed: false,
  attempts: [
    { attempt_id: 40, model: 'gpt-4o', worker: null, outcome: 'skipped', lost: false, started_ms: 0.1, first_token_ms: null, finished_ms: 0.1, error: 'ERR_COOLDOWN', reason: 'cooling down after failures', tokens: 0, retry_of: null, hedge: false },
    { attempt_id: 41, model: 'claude-sonnet', worker: 'worker-3', outcome: 'failed', lost: false, started_ms: 0.2, first_token_ms: null, finished_ms: 300, error: 'ERR_UPSTREAM', reason: 'upstream 500', tokens: 0, retry_of: null, hedge: false },
    { attempt_id: 42, model: 'claude-sonnet', worker: 'worker-4', outcome: 'won', lost: false, started_ms: 380, first_token_ms: 600, finished_ms: 880, error: null, reason: null, tokens: 120, retry_of: 41, hedge: false },
    { attempt_id: 43, model: 'fast-sim', worker: 'worker-1', outcome: 'cancelled', lost: true, started_ms: 680, first_token_ms: null, finished_ms: 881, error: null, reason: null, tokens: 0, retry_of: null, hedge: true },
  ],
};
