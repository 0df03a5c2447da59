// Pure derivations from stream events: model status, win and error rates, job timelines.

export const DEGRADED_ERROR_RATE = 0.1;
export const ERROR_WINDOW_MS = 30000;

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const n = (v) => (isNum(v) ? v : 0);

//  wins / (wins + losses + errors): a failed attempt is a race the model did not win (a
//  model failing 27% of its attempts cannot show a 99% win rate). Null before any finished.
export function winRate(m) {
  const total = n(m?.wins) + n(m?.losses) + n(m?.errors);
  return total > 0 ? n(m.wins) / total : null;
}

//  Finished attempts counted by the broker for a model: won, lost (cancelled) or failed.
function finished(m) {
  return n(m?.wins) + n(m?.losses) + n(m?.errors);
}

//  Error rate of a model between `base` (an older snapshot of the same model, or null)
//  and `cur`. Falls back to the lifetime counters when there is no usable baseline
//  (first sample, broker restarted, counters went down). Null when nothing finished.
export function errorRate(cur, base) {
  let errs = n(cur?.errors);
  let total = finished(cur);
  if (base) {
    const de = errs - n(base.errors);
    const dt = total - finished(base);
    if (de >= 0 && dt >= 0 && n(cur?.wins) >= n(base.wins) && n(cur?.losses) >= n(base.losses)) {
      errs = de;
      total = dt;
    }
  }
  return total > 0 ? errs / total : null;
}

//  The broker's health states (metrics.models[].state, from its circuit breaker).
export const BROKER_STATES = ['healthy', 'degraded', 'cooling'];

//  down: no workers. Else the broker's `state` when it sends one (healthy, degraded,
//  cooling). Older brokers send none: degraded when the windowed error rate is above 10%
//  or attempts are queued, else healthy.
export function modelStatus(m, windowErrorRate) {
  if (!m || n(m.workers) <= 0) return 'down';
  if (BROKER_STATES.includes(m.state)) return m.state;
  if ((windowErrorRate ?? 0) > DEGRADED_ERROR_RATE || n(m.queued) > 0) return 'degraded';
  return 'healthy';
}

//  Milliseconds of cooldown left for a model at `now`: the broker's cooldown_left_ms
//  less the time since that metrics event arrived (`receivedAt`, same clock as `now`),
//  floor 0. Null when the broker did not say.
export function cooldownLeft(m, receivedAt, now) {
  if (!isNum(m?.cooldown_left_ms)) return null;
  const elapsed = isNum(receivedAt) && isNum(now) ? Math.max(0, now - receivedAt) : 0;
  return Math.max(0, m.cooldown_left_ms - elapsed);
}

//  True when the broker reports the health counters (trips, retries, hedges, skipped).
export function hasHealth(m) {
  return ['trips', 'retries', 'hedges', 'skipped', 'error_rate'].some((k) => isNum(m?.[k]));
}

//  The oldest snapshot of `history` (metrics events, oldest first) within `windowMs` of
//  `latest` and from the same broker, to diff counters against. Null if none.
export function baselineSnapshot(history, latest, windowMs = ERROR_WINDOW_MS) {
  if (!latest || !Array.isArray(history)) return null;
  const from = n(latest.ts_ms) - windowMs;
  for (const h of history) {
    if (h === latest) return null;
    if (h.broker_id !== latest.broker_id) continue;
    if (n(h.ts_ms) >= from && n(h.ts_ms) < n(latest.ts_ms)) return h;
  }
  return null;
}

//  One row per model of `metrics`, with status, win rate, the error rate derived over the
//  last 30 s of snapshots (`errorRate`) and the broker's breaker-window error rate
//  (`breakerErrorRate`, 0..1, null from an older broker).
export function deriveModels(metrics, history = []) {
  if (!metrics) return [];
  const base = baselineSnapshot(history, metrics);
  const baseByName = new Map((base?.models || []).map((m) => [m.name, m]));
  return metrics.models.map((m) => {
    const er = errorRate(m, baseByName.get(m.name) || null);
    return {
      ...m,
      status: modelStatus(m, er),
      winRate: winRate(m),
      errorRate: er,
      breakerErrorRate: isNum(m.error_rate) ? Math.min(1, Math.max(0, m.error_rate)) : null,
      finished: finished(m),
    };
  });
}

//  Per-model series of a numeric field over the metrics history (for sparklines).
export function modelSeries(history, name, pick) {
  return history.map((h) => {
    const m = h.models?.find((x) => x.name === name);
    const v = m ? pick(m) : null;
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  });
}

//  A "nice" axis maximum (1, 2, 2.5, 5 × 10^k) at or above v.
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

//  The time span a job's timeline covers, in ms from the job's start.
export function jobSpan(job) {
  let end = n(job?.latency_ms);
  for (const a of job?.attempts || []) end = Math.max(end, n(a.finished_ms), n(a.first_token_ms), n(a.started_ms));
  return end;
}

export const ATTEMPT_OUTCOMES = ['won', 'cancelled', 'failed', 'skipped', 'pending'];
const SKIPPED_MIN_WIDTH = 2.5; // % of the axis: a skipped attempt takes no time, but must show

//  Bars of a job's race timeline as percentages of a shared axis [0, axisMax]. Each bar
//  also says whether it is a backup started by the hedge timer (`hedge`) and which lane
//  it repeats (`retryOf`: index into bars, via the attempt's `retry_of` attempt_id; a
//  `redispatch` when that attempt's worker was lost), null when none or not found.
export function timelineBars(job) {
  const span = jobSpan(job);
  const axisMax = niceMax(span);
  const pct = (v) => Math.max(0, Math.min(100, (n(v) / axisMax) * 100));
  const attempts = job?.attempts || [];
  const laneOf = new Map();
  attempts.forEach((a, i) => {
    if (isNum(a.attempt_id) && a.attempt_id > 0 && !laneOf.has(a.attempt_id)) laneOf.set(a.attempt_id, i);
  });
  const bars = attempts.map((a, i) => {
    const start = n(a.started_ms);
    const pending = a.finished_ms === null || a.finished_ms === undefined;
    const end = pending ? span : n(a.finished_ms);
    const outcome = ATTEMPT_OUTCOMES.includes(a.outcome) ? a.outcome : pending ? 'pending' : 'failed';
    const hasTtft = typeof a.first_token_ms === 'number' && Number.isFinite(a.first_token_ms);
    const skipped = outcome === 'skipped';
    const ref = isNum(a.retry_of) ? laneOf.get(a.retry_of) : undefined;
    const retryOf = ref !== undefined && ref !== i ? ref : null;
    return {
      ...a,
      outcome,
      winner: outcome === 'won',
      left: skipped ? Math.min(pct(start), 100 - SKIPPED_MIN_WIDTH) : pct(start),
      width: skipped ? SKIPPED_MIN_WIDTH : Math.max(0.6, pct(end) - pct(start)),
      tick: hasTtft ? pct(a.first_token_ms) : null,
      hedge: a.hedge === true,
      retryOf,
      redispatch: retryOf !== null && attempts[retryOf].error === 'ERR_WORKER_LOST',
    };
  });
  return { axisMax, span, bars };
}

//  What a job's event says the hedge budget refused: 'hedge', 'retry', 'hedge and retry', or null.
export function suppressed(job) {
  const h = job?.hedge_suppressed === true;
  const r = job?.retry_suppressed === true;
  return h && r ? 'hedge and retry' : h ? 'hedge' : r ? 'retry' : null;
}

//  Spend rate in USD per minute over `history` (edge samples {ts_ms, cost_usd}, oldest
//  first), from the oldest sample after the last counter reset (edge restart) to the
//  newest. Null when fewer than `minSpanMs` of samples carry a cost.
export function spendPerMinute(history, minSpanMs = 5000) {
  if (!Array.isArray(history)) return null;
  let first = null;
  let last = null;
  for (const h of history) {
    if (typeof h?.cost_usd !== 'number' || !Number.isFinite(h.cost_usd) || typeof h.ts_ms !== 'number') continue;
    if (last && h.cost_usd < last.cost_usd) first = null; // the edge restarted
    if (!first) first = h;
    last = h;
  }
  if (!first || !last || last.ts_ms - first.ts_ms < minSpanMs) return null;
  return ((last.cost_usd - first.cost_usd) / (last.ts_ms - first.ts_ms)) * 60000;
}
