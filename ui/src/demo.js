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
    late_replies: 0, malformed: 0, workers_joined: 0, workers_lost: 0, send_failures: 0,
  };
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

  function draw(model) {
    const m = MODELS[model];
    const total = Math.max(2, m.lat * Math.exp(m.jitter * gauss()));
    const fails = rand() < m.fail;
    return { total, ttft: total * m.ttft * (0.8 + 0.4 * rand()), fails, failAt: total * (0.2 + 0.7 * rand()) };
  }

  function chooseRoute() {
    const sum = ROUTES.reduce((s, r) => s + r.w, 0);
    let x = rand() * sum;
    for (const r of ROUTES) if ((x -= r.w) < 0) return r;
    return ROUTES[0];
  }

  //  Plans every attempt of one job starting at wall time t0 and queues the finished job.
  function submit(t0) {
    const route = chooseRoute();
    const plans = [];
    const startAttempt = (model, at) => plans.push({ model, at, worker: pickWorker(model, t0 + at), ...draw(model) });
    const endOf = (p) => p.at + (p.fails ? p.failAt : p.total);
    const firstWin = () => Math.min(...plans.filter((p) => !p.fails && p.worker).map((p) => p.at + p.total), Infinity);

    startAttempt(route.targets[0], 0.1);
    for (let i = 1; i < route.targets.length; i++) {
      const prev = plans[plans.length - 1];
      let at;
      if (route.policy === 'race') at = 0.1 + i * 0.03;
      else if (route.policy === 'hedge') at = prev.fails || !prev.worker ? Math.min(prev.at + route.hedge, endOf(prev)) : prev.at + route.hedge;
      else at = prev.fails || !prev.worker ? endOf(prev) : Infinity;
      if (!(at < firstWin()) || at > DEADLINE_MS) break;
      startAttempt(route.targets[i], at);
    }

    const win = firstWin();
    const timeout = win > DEADLINE_MS && plans.some((p) => !p.fails && p.worker);
    const end = timeout ? DEADLINE_MS : win < Infinity ? win : Math.max(...plans.map((p) => (p.worker ? endOf(p) : p.at + 0.2)));
    let winner = null;
    const prompt = 150 + ((jobId * 37) % 250); // prompt tokens, the same for every attempt
    const charge = (model, cost, saved = 0, loser = false) => {
      models[model].cost += cost;
      models[model].saved += saved;
      spend.cost += cost;
      spend.saved += saved;
      if (loser) spend.losers += cost;
    };
    const attempts = plans.map((p) => {
      const id = ++attemptId;
      counters.attempts_started++;
      const m = models[p.model];
      const stat = MODELS[p.model];
      const base = { attempt_id: id, model: p.model, worker: p.worker, started_ms: round(p.at), error: null };
      if (!p.worker) {
        m.errors++;
        counters.attempts_failed++;
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
      const error = outcome === 'failed' ? ERRORS[Math.floor(rand() * ERRORS.length)] : null;
      return { ...base, outcome, first_token_ms: ttft, finished_ms: round(finished), error };
    });
    counters.jobs_accepted++;
    const outcome = timeout ? 'timeout' : winner ? 'won' : 'failed';
    const failedErrors = attempts.filter((a) => a.outcome === 'failed').map((a) => `${a.model}: ${a.error}`);
    const job = {
      job_id: ++jobId,
      ts_ms: Math.round(t0 + end),
      targets: route.targets,
      policy: route.policy,
      outcome,
      winner,
      error: outcome === 'won' ? null : outcome === 'timeout' ? `deadline ${DEADLINE_MS} ms exceeded` : failedErrors.join('; ') || 'all attempts failed',
      latency_ms: round(end + 0.3),
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
        const ws = Object.values(workers).filter((w) => w.alive && w.models.includes(name));
        return {
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
