// Client of the edge's metrics stream (SSE at /v1/aigw/events): parses each event type,
// keeps bounded histories, reconnects with backoff, and exposes subscribe() and a React hook.
// A 401/403 from the edge (edge/auth = on, no or a wrong admin key) stops the retries and
// shows as status "unauthorized" until reconnect() is called (with a new key).
import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';

export const DEFAULT_URL = '/v1/aigw/events';
export const EVENT_TYPES = ['metrics', 'job', 'worker', 'edge'];

const ES_CLOSED = 2;
const MAX_SAMPLE = 160;

//  Fixed-capacity FIFO: push() past capacity drops the oldest item.
export class RingBuffer {
  constructor(capacity) {
    this.capacity = Math.max(1, capacity | 0);
    this.items = new Array(this.capacity);
    this.start = 0;
    this.size = 0;
  }

  get length() {
    return this.size;
  }

  push(item) {
    if (this.size < this.capacity) {
      this.items[(this.start + this.size) % this.capacity] = item;
      this.size++;
    } else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  //  Items oldest first (a new array).
  toArray() {
    const out = new Array(this.size);
    for (let i = 0; i < this.size; i++) out[i] = this.items[(this.start + i) % this.capacity];
    return out;
  }

  last() {
    return this.size ? this.items[(this.start + this.size - 1) % this.capacity] : undefined;
  }

  clear() {
    this.items = new Array(this.capacity);
    this.start = 0;
    this.size = 0;
  }
}

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const num = (v, dflt = null) => (isNum(v) ? v : dflt);
const isId = (v) => typeof v === 'string' || isNum(v);

//  Each parser returns the normalised event, or null when the event is unusable.
function parseMetrics(d) {
  if (!isObj(d)) return null;
  if (d.models !== undefined && !Array.isArray(d.models)) return null;
  if (d.workers !== undefined && !Array.isArray(d.workers)) return null;
  return {
    ...d,
    ts_ms: num(d.ts_ms),
    counters: isObj(d.counters) ? d.counters : {},
    models: (d.models || [])
      .filter((m) => isObj(m) && typeof m.name === 'string')
      .map((m) => ({ ...m, cost_usd: num(m.cost_usd), cost_saved_usd: num(m.cost_saved_usd) })),
    workers: (d.workers || []).filter((w) => isObj(w) && isId(w.id)),
  };
}

function parseJob(d) {
  if (!isObj(d) || !isId(d.job_id) || !Array.isArray(d.attempts)) return null;
  return {
    ...d,
    ts_ms: num(d.ts_ms),
    targets: Array.isArray(d.targets) ? d.targets : [],
    latency_ms: num(d.latency_ms),
    attempts: d.attempts.filter(isObj),
  };
}

function parseWorker(d) {
  if (!isObj(d) || !isId(d.id) || (d.event !== 'join' && d.event !== 'leave')) return null;
  return { ...d, id: String(d.id), models: Array.isArray(d.models) ? d.models : [] };
}

//  Optional cost fields (USD, cumulative since the edge / broker started): null when absent.
const COST_FIELDS = ['cost_usd', 'cost_saved_usd', 'loser_cost_usd'];

function parseEdge(d) {
  if (!isObj(d)) return null;
  const out = { ...d, ts_ms: num(d.ts_ms) };
  for (const k of COST_FIELDS) out[k] = num(d[k]);
  return out;
}

const PARSERS = { metrics: parseMetrics, job: parseJob, worker: parseWorker, edge: parseEdge };

//  Parses one SSE `data:` payload of the given type. Returns {value} or {error}.
export function parseEvent(type, raw) {
  const parser = PARSERS[type];
  if (!parser) return { error: 'unknown event type' };
  let data;
  try {
    data = JSON.parse(raw);
  } catch {
    return { error: 'bad JSON' };
  }
  const value = parser(data);
  return value ? { value } : { error: 'unexpected shape' };
}

const DEFAULTS = {
  EventSourceImpl: undefined, // defaults to globalThis.EventSource at connect time
  //  Second argument of `new EventSourceImpl(url, init)`: an object, or a function called
  //  at every (re)connect (so e.g. the current admin key goes into init.headers).
  eventSourceInit: undefined,
  edgeHistory: 120, // ~2 minutes of 1/s edge samples
  metricsHistory: 120, // ~2 minutes of 1/s broker snapshots
  maxJobs: 50,
  maxWorkerEvents: 30,
  backoffInitialMs: 500,
  backoffMaxMs: 15000,
  jitter: 0.2, // ± fraction of each backoff delay
  staleMs: 10000, // an open stream silent this long is re-created
  flushMs: 100, // notify listeners at most this often (0 = at once)
  workerGraceMs: 60000, // how long a vanished worker stays listed as down
  now: () => Date.now(),
};

function emptyState(url) {
  return {
    url,
    connection: {
      status: 'idle', // idle | connecting | open | reconnecting | offline | unauthorized | stopped
      since: null,
      httpStatus: null, // HTTP status of the last failed attempt when the source reported one
      failures: 0, // consecutive failed (re)connects, reset on open
      reconnects: 0, // streams re-created by this client
      retryAt: null,
      lastError: null,
      lastEventAt: null,
    },
    metrics: null,
    metricsHistory: [],
    edge: null,
    edgeHistory: [],
    jobs: [], // newest first
    workers: [],
    workerEvents: [], // newest first
    receivedAt: { metrics: null, job: null, worker: null, edge: null },
    counts: { metrics: 0, job: 0, worker: 0, edge: 0, malformed: 0, ignored: 0 },
    malformedByType: {},
    lastMalformed: null,
  };
}

const byId = (a, b) => String(a.id).localeCompare(String(b.id), undefined, { numeric: true });

//  Creates a stream client for `url`. Nothing happens until start().
export function createAigwStream(url = DEFAULT_URL, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const listeners = new Set();
  const edgeRing = new RingBuffer(o.edgeHistory);
  const metricsRing = new RingBuffer(o.metricsHistory);
  const jobRing = new RingBuffer(o.maxJobs);
  const workerEventRing = new RingBuffer(o.maxWorkerEvents);
  const workers = new Map();
  let state = emptyState(url);
  let draft = { ...state, connection: { ...state.connection } };
  let es = null;
  let running = false;
  let retryTimer = null;
  let flushTimer = null;
  let watchdog = null;
  let seq = 0;

  const now = () => o.now();

  function flush() {
    if (flushTimer !== null) clearTimeout(flushTimer);
    flushTimer = null;
    draft.connection = { ...draft.connection };
    state = draft;
    draft = { ...state };
    for (const fn of [...listeners]) fn(state);
  }

  function changed() {
    if (o.flushMs <= 0) return flush();
    if (flushTimer === null) flushTimer = setTimeout(flush, o.flushMs);
  }

  function setConnection(patch) {
    draft.connection = { ...draft.connection, ...patch };
    flush(); // connection changes are shown at once
  }

  function snapshotWorkers() {
    draft.workers = [...workers.values()].sort(byId);
  }

  function applyMetrics(m, t) {
    metricsRing.push(m);
    draft.metrics = m;
    draft.metricsHistory = metricsRing.toArray();
    const seen = new Set();
    for (const w of m.workers) {
      const id = String(w.id);
      seen.add(id);
      const alive = w.alive !== false;
      const prev = workers.get(id);
      workers.set(id, {
        ...w,
        id,
        alive,
        seenAt: t,
        goneAt: alive ? null : (prev?.goneAt ?? t),
        reason: alive ? null : (prev?.reason ?? 'reported dead by broker'),
      });
    }
    for (const [id, w] of workers) {
      if (seen.has(id)) continue;
      if (w.alive) workers.set(id, { ...w, alive: false, in_flight: 0, goneAt: t, reason: w.reason ?? 'no longer reported' });
      else if (t - (w.goneAt ?? t) > o.workerGraceMs) workers.delete(id);
    }
    snapshotWorkers();
  }

  function applyWorker(w, t) {
    workerEventRing.push({ ...w, receivedAt: t });
    draft.workerEvents = workerEventRing.toArray().reverse();
    const prev = workers.get(w.id);
    if (w.event === 'join') {
      workers.set(w.id, {
        completed: 0, failed: 0, cancelled: 0, last_seen_ms: 0, ...prev,
        id: w.id, models: w.models, capacity: num(w.capacity, prev?.capacity ?? 0),
        in_flight: prev?.alive ? prev.in_flight : 0, alive: true, seenAt: t, goneAt: null, reason: null,
      });
    } else {
      workers.set(w.id, {
        completed: 0, failed: 0, cancelled: 0, ...prev,
        id: w.id, models: w.models.length ? w.models : (prev?.models ?? []),
        capacity: num(w.capacity, prev?.capacity ?? 0), in_flight: 0,
        alive: false, goneAt: t, reason: w.reason || 'left',
      });
    }
    snapshotWorkers();
  }

  function applyEdge(e) {
    draft.edge = e;
    edgeRing.push({
      ts_ms: e.ts_ms,
      rps: num(e.rps),
      error_rate: num(e.error_rate),
      p50: num(e.latency_ms?.p50),
      p99: num(e.latency_ms?.p99),
      in_flight: num(e.requests_in_flight),
      cost_usd: e.cost_usd,
    });
    draft.edgeHistory = edgeRing.toArray();
  }

  function applyJob(j) {
    jobRing.push({ ...j, _seq: ++seq });
    draft.jobs = jobRing.toArray().reverse();
  }

  const APPLY = { metrics: applyMetrics, job: applyJob, worker: applyWorker, edge: applyEdge };

  function malformed(type, reason, raw) {
    draft.counts = { ...draft.counts, malformed: draft.counts.malformed + 1 };
    draft.malformedByType = { ...draft.malformedByType, [type]: (draft.malformedByType[type] || 0) + 1 };
    const sample = typeof raw === 'string' ? raw.slice(0, MAX_SAMPLE) : String(raw);
    draft.lastMalformed = { type, reason, sample, at: now() };
  }

  function onEvent(type, ev, source) {
    if (source !== es) return; // a late event from a stream we already replaced
    const t = now();
    draft.connection = { ...draft.connection, lastEventAt: t };
    if (draft.connection.status !== 'open') draft.connection = { ...draft.connection, status: 'open', since: t, failures: 0, retryAt: null };
    const { value, error } = parseEvent(type, ev?.data);
    if (error) malformed(type, error, ev?.data);
    else {
      draft.counts = { ...draft.counts, [type]: draft.counts[type] + 1 };
      draft.receivedAt = { ...draft.receivedAt, [type]: t };
      APPLY[type](value, t);
    }
    changed();
  }

  function onUntyped(source) {
    if (source !== es) return;
    draft.counts = { ...draft.counts, ignored: draft.counts.ignored + 1 };
    changed();
  }

  function onOpen(source) {
    if (source !== es) return;
    const t = now();
    setConnection({ status: 'open', since: t, failures: 0, retryAt: null, lastError: null, lastEventAt: t, httpStatus: null });
  }

  function onError(source, ev) {
    if (source !== es || !running) return;
    //  Sources over fetch (src/sse.js) say why; the browser's EventSource does not.
    const raw = ev && typeof ev === 'object' && 'status' in ev ? ev.status : source.status;
    const status = isNum(raw) ? raw : null;
    const message = typeof ev?.message === 'string' && ev.message ? ev.message : null;
    if (status === 401 || status === 403) {
      closeSource();
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
      setConnection({
        status: 'unauthorized', since: now(), retryAt: null, httpStatus: status,
        lastError: message || (status === 401 ? 'the edge wants the admin key' : 'the edge refused the stream'),
      });
    } else if (source.readyState === ES_CLOSED) {
      closeSource();
      draft.connection = { ...draft.connection, httpStatus: status };
      scheduleReconnect(message ? (status && status !== 200 ? `HTTP ${status}: ${message}` : message) : 'stream closed');
    } else if (draft.connection.status !== 'reconnecting') {
      // The browser retries by itself while readyState is CONNECTING.
      setConnection({ status: 'reconnecting', since: now(), lastError: 'connection lost' });
    }
  }

  function backoffDelay(failures) {
    const base = Math.min(o.backoffMaxMs, o.backoffInitialMs * 2 ** failures);
    const spread = base * o.jitter;
    return Math.max(0, Math.round(base - spread + Math.random() * 2 * spread));
  }

  function scheduleReconnect(reason) {
    const failures = draft.connection.failures;
    const delay = backoffDelay(failures);
    if (retryTimer !== null) clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (!running) return;
      draft.connection = { ...draft.connection, reconnects: draft.connection.reconnects + 1 };
      connect();
    }, delay);
    setConnection({ status: 'offline', since: now(), failures: failures + 1, retryAt: now() + delay, lastError: reason });
  }

  function closeSource() {
    const old = es;
    es = null;
    if (old) {
      try {
        old.close();
      } catch {
        /* already gone */
      }
    }
  }

  function connect() {
    const Impl = o.EventSourceImpl || globalThis.EventSource;
    closeSource();
    let source;
    try {
      const init = typeof o.eventSourceInit === 'function' ? o.eventSourceInit() : o.eventSourceInit;
      source = init === undefined ? new Impl(url) : new Impl(url, init);
    } catch (err) {
      scheduleReconnect(`cannot open stream: ${err?.message || err}`);
      return;
    }
    es = source;
    source.addEventListener('open', () => onOpen(source));
    source.addEventListener('error', (ev) => onError(source, ev));
    source.addEventListener('message', () => onUntyped(source));
    for (const type of EVENT_TYPES) source.addEventListener(type, (ev) => onEvent(type, ev, source));
    setConnection({ status: 'connecting', since: now(), retryAt: null });
  }

  function checkStale() {
    const c = draft.connection;
    if (!running || c.status !== 'open' || c.lastEventAt === null) return;
    if (now() - c.lastEventAt > o.staleMs) {
      closeSource();
      scheduleReconnect('no events for ' + Math.round(o.staleMs / 1000) + ' s');
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      connect();
      if (o.staleMs > 0) watchdog = setInterval(checkStale, Math.max(250, Math.min(1000, o.staleMs / 4)));
    },
    stop() {
      if (!running) return;
      running = false;
      closeSource();
      if (retryTimer !== null) clearTimeout(retryTimer);
      if (watchdog !== null) clearInterval(watchdog);
      retryTimer = watchdog = null;
      setConnection({ status: 'stopped', since: now(), retryAt: null });
    },
    //  Closes the current stream and opens a new one now.
    reconnect() {
      if (!running) return;
      if (retryTimer !== null) clearTimeout(retryTimer);
      retryTimer = null;
      draft.connection = { ...draft.connection, reconnects: draft.connection.reconnects + 1 };
      connect();
    },
    //  Calls fn(state) after every visible change. Returns the unsubscribe function.
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    getState() {
      return state;
    },
    //  The EventSource in use (for tests and diagnostics).
    get source() {
      return es;
    },
  };
}

//  React hook: {state, client} of the stream at `url`; the client lives as long as the
//  component (options are read once, at the first render).
export function useAigwClient(url = DEFAULT_URL, options) {
  const optionsRef = useRef(options);
  const client = useMemo(() => createAigwStream(url, optionsRef.current), [url]);
  useEffect(() => {
    client.start();
    return () => client.stop();
  }, [client]);
  const state = useSyncExternalStore(client.subscribe, client.getState, client.getState);
  return { state, client };
}

//  React hook: the live state of the stream at `url`.
export function useAigwStream(url = DEFAULT_URL, options) {
  return useAigwClient(url, options).state;
}
