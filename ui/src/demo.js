// Synthetic aigw metrics stream for `?demo=1`: a seeded simulation of a broker racing a few
// models on a few workers, exposed as an EventSource look-alike the stream client can use.

//  Prices in USD per million tokens: `pin` prompt, `pout` completion (local models are free).
const MODELS = {
  'fast-sim': { lat: 42, jitter: 0.45, ttft: 0.7, fail: 0.01, tokens: 180, pin: 0.15, pout: 0.6 },
  'slow-sim': { lat: 160, jitter: 0.5, ttft: 0.45, fail: 0.02, tokens: 220, pin: 0.5, pout: 1.5 },
  'gpt-4o': { lat: 620, jitter: 0.5, ttft: 0.35, fail: 0.3, tokens: 420, pin: 2.5, pout: 10 },
  'claude-sonnet': { lat: 540, jitter: 0.4, ttft: 0.3, fail: 0.03, tokens: 380, pin: 3, pout: 15 },
  'llama3-local': { lat: 900, jitter: 0.3, ttft: 0.3, fail: 0, tokens: 300, pin: 0, pout: 0 },
};

const WORKERS = [
  { id: 'worker-1', models: ['fast-sim', 'slow-sim'], capacity: 64 },
  { id: 'worker-2', models: ['fast-sim', 'slow-sim'], capacity: 64 },
  { id: 'worker-3', models: ['gpt-4o', 'claude-sonnet'], capacity: 32 },
  { id: 'worker-4', models: ['gpt-4o', 'claude-sonnet'], capacity: 32 },
  { id: 'agent-py-1', models: ['fast-sim'], capacity: 8 },
];

const ROUTES = [
  { w: 6, policy: 'race', targets: ['fast-sim', 'slow-sim'] },
  { w: 2, policy: 'race', targets: ['gpt-4o', 'claude-sonnet'] },
  { w: 2, policy: 'hedge', targets: ['claude-sonnet', 'gpt-4o'], hedge: 300 },
  { w: 1, policy: 'fallback', targets: ['gpt-4o', 'fast-sim'] },
  { w: 1, policy: 'race', targets: ['slow-sim'] },
  { w: 1, policy: 'race', targets: ['fast-sim', 'slow-sim', 'gpt-4o'] },
];

const ERRORS = ['upstream 500', 'upstream 429 rate limited', 'connection reset', 'bad gateway (502)'];
//  Once a minute gpt-4o has a bad spell: its breaker trips, it cools down, probes, recovers.
const INCIDENT = { model: 'gpt-4o', from: 40000, to: 52000, fail: 0.85, error: 'upstream 503 overloaded' };
//  The broker's defaults (brokers/health.h): trip after 5 failures in a row or >= 50% of
//  >= 20 outcomes in 10 s; cool 5 s, doubling up to 60 s; hedge budget 0.1 per start, burst 5.
const BREAKER = { failures: 5, errorRate: 0.5, minRequests: 20, windowMs: 10000, cooldownMs: 5000, cooldownMaxMs: 60000, budget: 0.1, burst: 5 };

function newHealth() {
  return { consecutive: 0, trips: 0, openUntil: 0, halfOpen: false, probing: false, window: [], tokens: BREAKER.burst * 1000,
           n_trips: 0, n_skipped: 0, n_no_budget: 0, retries: 0, hedges: 0 };
}

function windowSum(h, t) {
  while (h.window.length && h.window[0].t <= t - BREAKER.windowMs) h.window.shift();
  const bad = h.window.filter((o) => !o.ok).length;
  return { bad, total: h.window.length };
}

const wouldAdmit = (h, t) => (h.openUntil ? t >= h.openUntil : !(h.halfOpen && h.probing));

function admit(h, t) {
  if (!wouldAdmit(h, t)) {
    h.n_skipped++;
    return { ok: false, probe: false };
  }
  if (h.openUntil) {
    h.openUntil = 0;
    h.halfOpen = true;
  }
  if (h.halfOpen) h.probing = true;
  return { ok: true, probe: h.halfOpen };
}

const earn = (h) => {
  h.tokens = Math.min(BREAKER.burst * 1000, h.tokens + BREAKER.budget * 1000);
};

function takeToken(h) {
  if (h.tokens < 1000) {
    h.n_no_budget++;
    return false;
  }
  h.tokens -= 1000;
  return true;
}

function healthState(h, t) {
  if (h.openUntil && t < h.openUntil) return 'cooling';
  if (h.openUntil || h.halfOpen || h.consecutive) return 'degraded';
  const { bad, total } = windowSum(h, t);
  return bad && bad * 10 >= total ? 'degraded' : 'healthy';
}
const DEADLINE_MS = 3000;
const TICK_MS = 50;
const WARMUP_MS = 90000;
const FLAP_WORKER = 'agent-py-1';

//  Small seeded PRNG (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentiles(values) {
  if (values.length === 0) return { p50: 0, p95: 0, p99: 0 };
  const s = [...values].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const r = (v) => Math.round(v * 10) / 10;
  return { p50: r(at(0.5)), p95: r(at(0.95)), p99: r(at(0.99)) };
}

const round = (v) => Math.round(v * 10) / 10;
const usd = (v) => Math.round(v * 1e8) / 1e8;
const price = (model, prompt, completion) => (prompt * MODELS[model].pin + completion * MODELS[model].pout) / 1e6;

//  A simulated broker + edge. step(t) advances to wall time t and returns the events due.
export function createSimulator({ seed = 42, start = Date.now() } = {}) {
  const rand = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(rand() || 1e-9)) * Math.cos(2 * Math.PI * rand());
  const models = Object.fromEntries(
    Object.keys(MODELS).map((name) => [name, { wins: 0, losses: 0, errors: 0, cancelled: 0, tokens_saved: 0, tokens_wasted: 0, cost: 0, saved: 0, lat: [], ttft: [] }]),
  );
  const workers = Object.fromEntries(
    WORKERS.map((w) => [w.id, { ...w, alive: false, completed: 0, failed: 0, cancelled: 0, lastSeen: start }]),
  );
  const counters = {
    jobs_accepted: 0, jobs_won: 0, jobs_failed: 0, jobs_timeout: 0, jobs_cancelled: 0,
    attempts_started: 0, attempts_won: 0, attempts_cancelled: 0, attempts_failed: 0,
    attempts_retried: 0, attempts_hedged: 0, attempts_skipped: 0, hedges_suppressed: 0, retries_suppressed: 0,
    jobs_cooldown: 0, breaker_trips: 0,
    late_replies: 0, malformed: 0, workers_joined: 0, workers_lost: 0, send_failures: 0,
  };

  function trip(h, t) {
    h.trips++;
    h.n_trips++;
    counters.breaker_trips++;
    h.openUntil = t + Math.min(BREAKER.cooldownMs * 2 ** (h.trips - 1), BREAKER.cooldownMaxMs);
    h.halfOpen = h.probing = false;
    h.consecutive = 0;
    h.window = [];
  }

  //  An attempt's end as the broker's breaker sees it (health_outcome / health_no_verdict).
  function hear({ at, model, v, probe }) {
    const h = health[model];
    if (v === null) {
      if (probe && h.halfOpen) h.probing = false;
      return;
    }
    if (h.openUntil) return; // from before the trip: no news
    if (h.halfOpen) {
      if (v === 'ok') Object.assign(h, { halfOpen: false, probing: false, trips: 0, consecutive: 0, window: [] });
      else trip(h, at);
      return;
    }
    h.window.push({ t: at, ok: v === 'ok' });
    h.consecutive = v === 'ok' ? 0 : h.consecutive + 1;
    if (v === 'ok') return;
    const { bad, total } = windowSum(h, at);
    if (h.consecutive >= BREAKER.failures || (total >= BREAKER.minRequests && bad >= BREAKER.errorRate * total)) trip(h, at);
  }
  const health = Object.fromEntries(Object.keys(MODELS).map((name) => [name, newHealth()]));
  const verdicts = []; // attempt ends the breakers hear about at `at`: {at, model, v: 'ok' | 'bad' | null, probe}
  const active = []; // attempts in flight: {from, to, worker, model}
  const pending = []; // finished jobs waiting for their finish time: {at, job}
  const recent = []; // edge view of finished requests: {at, ok, latency}
  let jobId = 0;
  let attemptId = 0;
  let clock = start;
  let nextSecond = start + 1000;
  let edgeTotal = 0;
  let edgeErrors = 0;
  const spend = { cost: 0, saved: 0, losers: 0 }; // USD the edge was charged / avoided / paid for losers

  const alive = (id) => workers[id].alive;

  function pickWorker(model, t) {
    let best = null;
    for (const w of Object.values(workers)) {
      if (!w.alive || !w.models.includes(model)) continue;
      const busy = active.filter((a) => a.worker === w.id && a.from <= t && a.to > t).length;
      const free = w.capacity - busy;
      if (!best || free > best.free) best = { id: w.id, free };
    }
    return best?.id ?? null;
  }

  //  An attempt's fate at wall time t: the model's usual failure rate, or the incident's.
  function draw(model, t) {
    const m = MODELS[model];
    const incident = model === INCIDENT.model && inIncident(t);
    const total = Math.max(2, m.lat * Math.exp(m.jitter * gauss()));
    const fails = rand() < (incident ? INCIDENT.fail : m.fail);
    const error = incident ? INCIDENT.error : ERRORS[Math.floor(rand() * ERRORS.length)];
    return { total, ttft: total * m.ttft * (0.8 + 0.4 * rand()), fails, failAt: total * (0.2 + 0.7 * rand()), error };
  }

  const inIncident = (t) => {
    const phase = (t - start) % 60000;
    return phase >= INCIDENT.from && phase < INCIDENT.to;
  };

  function chooseRoute() {
    const sum = ROUTES.reduce((s, r) => s + r.w, 0);
    let x = rand() * sum;
    for (const r of ROUTES) if ((x -= r.w) < 0) return r;
    return ROUTES[0];
  }

  //  Plans every attempt of one job starting at wall time t0 and queues the finished job.
  //  Like the broker: a cooling target is skipped (the policy goes on), a hedge or retry
  //  needs a token of the target paying for it (else the job says *_suppressed), a
  //  failed attempt is retried once on hedge/fallback/single-target routes.
  function submit(t0) {
    const route = chooseRoute();
    const plans = [];
    const flags = { hedge: false, retry: false };
    const maxRetries = route.policy === 'race' && route.targets.length > 1 ? 0 : 1;
    const endOf = (p) => (p.skipped ? p.at : !p.worker ? p.at + 0.2 : p.at + (p.fails ? p.failAt : p.total));
    const failed = (p) => p.skipped || !p.worker || p.fails;
    const firstWin = () => Math.min(...plans.filter((p) => !failed(p)).map((p) => p.at + p.total), Infinity);

    //  The gate, then the start of `model` at `at` as `kind` (first, hedge, retry). Returns
    //  the plan (skipped ones too; `last` = its retry if one was made), or null when the
    //  budget refused it.
    function begin(model, at, kind, payer = null, retryOf = null) {
      const h = health[model];
      const t = t0 + at;
      if (!wouldAdmit(h, t)) {
        admit(h, t); // counts the skip
        const p = { model, at, kind, retryOf, skipped: true };
        p.last = p;
        plans.push(p);
        return p;
      }
      if ((kind === 'hedge' || kind === 'retry') && payer && !takeToken(health[payer])) {
        flags[kind] = true;
        counters[kind === 'hedge' ? 'hedges_suppressed' : 'retries_suppressed']++;
        return null;
      }
      const { probe } = admit(h, t);
      if (kind === 'first') earn(h);
      const p = { model, at, kind, retryOf, probe, worker: pickWorker(model, t), ...draw(model, t) };
      p.last = p;
      plans.push(p);
      if (p.worker && p.fails && kind !== 'retry' && maxRetries > 0) {
        const again = endOf(p) + rand() * 100; // full jitter of a 100 ms backoff
        if (again < DEADLINE_MS && again < firstWin()) {
          const r = begin(model, again, 'retry', model, p);
          if (r && !r.skipped) p.last = r;
        }
      }
      return p;
    }

    let chain = begin(route.targets[0], 0.1, 'first');
    for (let i = 1; i < route.targets.length; i++) {
      const last = chain.last;
      const down = failed(last);
      const failEnd = endOf(last);
      let at;
      let kind = 'first';
      if (route.policy === 'race') at = 0.1 + i * 0.03;
      else if (route.policy === 'hedge') {
        const timer = chain.at + route.hedge;
        if (down && failEnd <= timer) at = failEnd;
        else {
          at = timer;
          kind = 'hedge';
        }
      } else at = down ? failEnd : Infinity;
      if (!(at < firstWin()) || at > DEADLINE_MS) break;
      let next = begin(route.targets[i], at, kind, kind === 'hedge' ? chain.model : null);
      //  A hedge the budget refused: the next target starts only if this one fails.
      if (next === null) {
        if (!down || !(failEnd < firstWin()) || failEnd > DEADLINE_MS) break;
        next = begin(route.targets[i], failEnd, 'first');
      }
      chain = next;
    }

    const win = firstWin();
    const timeout = win > DEADLINE_MS && plans.some((p) => !failed(p));
    const end = timeout ? DEADLINE_MS : win < Infinity ? win : Math.max(...plans.map(endOf));
    //  Attempts in start order; a retry planned past the job's end never started.
    const kept = plans.filter((p) => p.at <= end || p === plans[0]).sort((a, b) => a.at - b.at);
    for (const p of plans) if (p.probe && !kept.includes(p)) verdicts.push({ at: t0 + end, model: p.model, v: null, probe: true });
    let winner = null;
    const prompt = 150 + ((jobId * 37) % 250); // prompt tokens, the same for every attempt
    const charge = (model, cost, saved = 0, loser = false) => {
      models[model].cost += cost;
      models[model].saved += saved;
      spend.cost += cost;
      spend.saved += saved;
      if (loser) spend.losers += cost;
    };
    const verdict = (p, v, at) => verdicts.push({ at: t0 + at, model: p.model, v, probe: !!p.probe });
    const attempts = kept.map((p) => {
      const id = ++attemptId;
      p.id = id;
      const h = health[p.model];
      const base = {
        attempt_id: id, model: p.model, worker: p.worker ?? null, started_ms: round(p.at), error: null, reason: null,
        retry_of: p.retryOf?.id ?? null, hedge: p.kind === 'hedge',
      };
      if (p.skipped) {
        counters.attempts_skipped++;
        return { ...base, outcome: 'skipped', first_token_ms: null, finished_ms: round(p.at), error: 'ERR_COOLDOWN', reason: 'cooling down after failures' };
      }
      counters.attempts_started++;
      if (p.kind === 'hedge') {
        counters.attempts_hedged++;
        h.hedges++;
      } else if (p.kind === 'retry') {
        counters.attempts_retried++;
        h.retries++;
      }
      const m = models[p.model];
      const stat = MODELS[p.model];
      if (!p.worker) {
        m.errors++;
        counters.attempts_failed++;
        verdict(p, null, p.at);
        return { ...base, worker: null, outcome: 'failed', first_token_ms: null, finished_ms: round(p.at + 0.2), error: 'no worker for model' };
      }
      const finish = p.at + (p.fails ? p.failAt : p.total);
      let outcome;
      let finished = finish;
      if (!timeout && winner === null && !p.fails && Math.abs(finish - win) < 1e-9) {
        outcome = 'won';
        winner = p.model;
      } else if (p.fails && finish <= end) outcome = 'failed';
      else {
        outcome = 'cancelled';
        finished = end + 0.2;
      }
      verdict(p, outcome === 'won' ? 'ok' : outcome === 'failed' ? 'bad' : null, finished);
      const ttft = p.at + p.ttft < finished && !(outcome === 'failed') ? round(p.at + p.ttft) : null;
      active.push({ from: t0 + p.at, to: t0 + finished, worker: p.worker, model: p.model });
      const w = workers[p.worker];
      if (outcome === 'won') {
        m.wins++;
        w.completed++;
        counters.attempts_won++;
        m.lat.push(p.total);
        m.ttft.push(p.ttft);
        charge(p.model, price(p.model, prompt, stat.tokens));
      } else if (outcome === 'failed') {
        m.errors++;
        w.failed++;
        counters.attempts_failed++;
        charge(p.model, price(p.model, prompt, 0));
      } else {
        m.losses++;
        m.cancelled++;
        w.cancelled++;
        counters.attempts_cancelled++;
        const progress = Math.max(0, (finished - p.at - p.ttft) / (p.total - p.ttft || 1));
        const wasted = Math.round(stat.tokens * Math.min(1, progress));
        m.tokens_wasted += wasted;
        m.tokens_saved += stat.tokens - wasted;
        charge(p.model, price(p.model, prompt, wasted), price(p.model, 0, stat.tokens - wasted), true);
        if (rand() < 0.05) counters.late_replies++;
      }
      if (m.lat.length > 400) m.lat.splice(0, 100);
      if (m.ttft.length > 400) m.ttft.splice(0, 100);
      const error = outcome === 'failed' ? p.error : null;
      return { ...base, outcome, first_token_ms: ttft, finished_ms: round(finished), error };
    });
    counters.jobs_accepted++;
    const outcome = timeout ? 'timeout' : winner ? 'won' : 'failed';
    const cooling = outcome === 'failed' && attempts.every((a) => a.outcome === 'skipped');
    if (cooling) counters.jobs_cooldown++;
    const failedErrors = attempts.filter((a) => a.outcome === 'failed').map((a) => `${a.model}: ${a.error}`);
    const job = {
      job_id: ++jobId,
      ts_ms: Math.round(t0 + end),
      targets: route.targets,
      policy: route.policy,
      outcome,
      winner,
      error:
        outcome === 'won' ? null
          : outcome === 'timeout' ? `deadline ${DEADLINE_MS} ms exceeded`
          : cooling ? 'ERR_COOLDOWN'
          : failedErrors.join('; ') || 'all attempts failed',
      message: cooling ? 'every target is cooling down after failures' : null,
      latency_ms: round(end + 0.3),
      hedge_suppressed: flags.hedge,
      retry_suppressed: flags.retry,
      attempts,
    };
    pending.push({ at: t0 + end, job });
  }

  //  Requests other clients keep in flight on a worker (slowly varying), so the demo's
  //  capacity bars look like a shared, busy fleet.
  const background = (w, t) => Math.round(w.capacity * (0.3 + 0.22 * Math.sin((t - start) / 9000 + w.capacity + w.id.charCodeAt(w.id.length - 1))));

  function metricsEvent(t) {
    const inFlight = (pred) => active.filter((a) => a.from <= t && a.to > t && pred(a)).length;
    return {
      ts_ms: Math.round(t),
      broker_id: 'demo-broker-1',
      uptime_s: 7265 + Math.floor((t - start) / 1000),
      jobs_in_flight: new Set(active.filter((a) => a.from <= t && a.to > t).map((a) => a.from)).size,
      counters: { ...counters },
      models: Object.keys(MODELS).map((name) => {
        const m = models[name];
        const h = health[name];
        const ws = Object.values(workers).filter((w) => w.alive && w.models.includes(name));
        const { bad, total } = windowSum(h, t);
        return {
          state: healthState(h, t),
          cooldown_left_ms: h.openUntil > t ? Math.ceil(h.openUntil - t) : 0,
          error_rate: total ? Math.round((bad / total) * 1000) / 1000 : 0,
          trips: h.n_trips,
          skipped: h.n_skipped,
          retries: h.retries,
          hedges: h.hedges,
          budget_refused: h.n_no_budget,
          name,
          workers: ws.length,
          capacity: ws.reduce((s, w) => s + w.capacity, 0),
          in_flight: inFlight((a) => a.model === name) + ws.reduce((sum, w) => sum + Math.round(background(w, t) / w.models.length), 0),
          queued: 0,
          wins: m.wins,
          losses: m.losses,
          errors: m.errors,
          cancelled: m.cancelled,
          tokens_saved: m.tokens_saved,
          tokens_wasted: m.tokens_wasted,
          cost_usd: usd(m.cost),
          cost_saved_usd: usd(m.saved),
          latency_ms: percentiles(m.lat.slice(-200)),
          ttft_ms: percentiles(m.ttft.slice(-200)),
        };
      }),
      workers: Object.values(workers)
        .filter((w) => w.alive)
        .map((w) => ({
          id: w.id,
          models: w.models,
          alive: true,
          in_flight: Math.min(w.capacity, inFlight((a) => a.worker === w.id) + background(w, t)),
          capacity: w.capacity,
          last_seen_ms: Math.round(rand() * 900),
          completed: w.completed,
          failed: w.failed,
          cancelled: w.cancelled,
        })),
    };
  }

  function edgeEvent(t) {
    while (recent.length && recent[0].at < t - 10000) recent.shift();
    const last5 = recent.filter((r) => r.at >= t - 5000);
    const lats = recent.slice(-300).map((r) => r.latency);
    const p = percentiles(lats);
    return {
      ts_ms: Math.round(t),
      requests_total: edgeTotal,
      requests_in_flight: new Set(active.filter((a) => a.from <= t && a.to > t).map((a) => a.from)).size,
      rps: round(last5.length / 5),
      errors_total: edgeErrors,
      error_rate: recent.length ? Math.round((recent.filter((r) => !r.ok).length / recent.length) * 1000) / 1000 : 0,
      latency_ms: { p50: round(p.p50 + 0.4), p99: round(p.p99 + 0.4) },
      overhead_ms: { p50: round(0.3 + rand() * 0.2), p99: round(1.0 + rand() * 0.5) },
      broker_up: true,
      workers: Object.values(workers).filter((w) => w.alive).length,
      cost_usd: usd(spend.cost),
      cost_saved_usd: usd(spend.saved),
      loser_cost_usd: usd(spend.losers),
    };
  }

  function workerEvent(id, event, t, reason = null) {
    const w = workers[id];
    w.alive = event === 'join';
    if (event === 'join') counters.workers_joined++;
    else counters.workers_lost++;
    return ['worker', { event, id, models: w.models, capacity: w.capacity, reason, ts_ms: Math.round(t) }];
  }

  //  Worker churn: everyone joins at the start; FLAP_WORKER drops out for 12 s each minute.
  function churn(prev, t, out) {
    const offset = (x) => x - start;
    WORKERS.forEach((w, i) => {
      const at = 300 + i * 150;
      if (offset(prev) < at && offset(t) >= at) out.push(workerEvent(w.id, 'join', t));
    });
    const phase = (x) => offset(x) % 60000;
    if (alive(FLAP_WORKER) && phase(prev) < 20000 && phase(t) >= 20000) out.push(workerEvent(FLAP_WORKER, 'leave', t, 'heartbeat expired'));
    if (!alive(FLAP_WORKER) && offset(t) > 5000 && phase(prev) < 32000 && phase(t) >= 32000) out.push(workerEvent(FLAP_WORKER, 'join', t));
  }

  function tick(t, out) {
    const prev = clock;
    clock = t;
    churn(prev, t, out);
    verdicts.sort((a, b) => a.at - b.at);
    while (verdicts.length && verdicts[0].at <= t) hear(verdicts.shift());
    const lambda = 5 + 3 * Math.sin((2 * Math.PI * (t - start)) / 60000) + (rand() < 0.02 ? 6 : 0);
    let arrivals = lambda * ((t - prev) / 1000);
    while (arrivals > 0) {
      if (rand() < Math.min(1, arrivals)) submit(t - rand() * (t - prev));
      arrivals -= 1;
    }
    pending.sort((a, b) => a.at - b.at);
    while (pending.length && pending[0].at <= t) {
      const { at, job } = pending.shift();
      edgeTotal++;
      if (job.outcome === 'won') counters.jobs_won++;
      else if (job.outcome === 'timeout') counters.jobs_timeout++;
      else counters.jobs_failed++;
      if (job.outcome !== 'won') edgeErrors++;
      recent.push({ at, ok: job.outcome === 'won', latency: job.latency_ms });
      out.push(['job', job]);
    }
    while (active.length && active[0].to < t - 5000) active.shift();
    while (t >= nextSecond) {
      out.push(['metrics', metricsEvent(nextSecond)]);
      out.push(['edge', edgeEvent(nextSecond)]);
      nextSecond += 1000;
    }
  }

  return {
    //  Advances the simulation to wall time t; returns [[type, data], …] in order.
    step(t) {
      const out = [];
      while (clock + TICK_MS < t) tick(clock + TICK_MS, out);
      if (t > clock) tick(t, out);
      return out;
    },
    get clock() {
      return clock;
    },
  };
}

//  Runs a simulation from WARMUP_MS ago up to now, keeping only what a dashboard would
//  still show (2 minutes of samples, 50 jobs, recent worker events).
function warmUp(sim, now) {
  const events = sim.step(now);
  const keep = { metrics: 120, edge: 120, job: 50, worker: 30 };
  const seen = { metrics: 0, edge: 0, job: 0, worker: 0 };
  const out = [];
  for (let i = events.length - 1; i >= 0; i--) {
    const [type] = events[i];
    if (seen[type]++ < keep[type]) out.push(events[i]);
  }
  return out.reverse();
}

//  An EventSource look-alike class fed by one shared simulation. With `chaos`, the stream
//  drops every 30 s (readyState CLOSED, so the client must re-create it) and now and then
//  sends a malformed event.
export function createDemoEventSource({ chaos = false, seed = 42, tickMs = 100 } = {}) {
  const listeners = new Set();
  let sim = null;
  let timer = null;
  let backlog = [];

  function ensureRunning() {
    if (sim) return;
    const now = Date.now();
    sim = createSimulator({ seed, start: now - WARMUP_MS });
    backlog = warmUp(sim, now);
    timer = setInterval(() => {
      const events = sim.step(Date.now());
      for (const fn of [...listeners]) fn(events);
    }, tickMs);
  }

  function release() {
    if (listeners.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
      sim = null;
    }
  }

  return class DemoEventSource {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSED = 2;

    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.handlers = new Map();
      this.opened = Date.now();
      this.feed = (events) => this.deliver(events);
      ensureRunning();
      this.openTimer = setTimeout(() => {
        if (this.readyState === 2) return;
        this.readyState = 1;
        this.dispatch('open', {});
        this.deliver(backlog);
        backlog = []; // history is replayed once per simulation, not on every reconnect
        listeners.add(this.feed);
      }, 250);
    }

    deliver(events) {
      for (const [type, data] of events) this.dispatch(type, { type, data: JSON.stringify(data) });
      if (!chaos || this.readyState !== 1) return;
      if (Math.random() < 0.01) this.dispatch('job', { type: 'job', data: '{"job_id": 1, "attempts": [' });
      if (Date.now() - this.opened > 30000) {
        this.readyState = 2;
        listeners.delete(this.feed);
        this.dispatch('error', {});
      }
    }

    addEventListener(type, fn) {
      if (!this.handlers.has(type)) this.handlers.set(type, new Set());
      this.handlers.get(type).add(fn);
    }

    removeEventListener(type, fn) {
      this.handlers.get(type)?.delete(fn);
    }

    dispatch(type, ev) {
      for (const fn of this.handlers.get(type) || []) fn(ev);
      const prop = this[`on${type}`];
      if (typeof prop === 'function') prop.call(this, ev);
    }

    close() {
      this.readyState = 2;
      clearTimeout(this.openTimer);
      listeners.delete(this.feed);
      release();
    }
  };
}
