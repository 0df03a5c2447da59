// Stream client: parsing per event type, bounded histories, malformed input, reconnects.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createElement } from 'react';
import { act, render, screen } from '@testing-library/react';
import { RingBuffer, createAigwStream, parseEvent, useAigwStream } from '../src/stream.js';
import { makeFakeEventSource } from './fakeEventSource.js';
import { EDGE, JOB, METRICS, WORKER_JOIN, WORKER_LEAVE } from './samples.js';

let ES;
const base = { flushMs: 0, jitter: 0, staleMs: 0 };

function started(options = {}) {
  const client = createAigwStream('/v1/aigw/events', { EventSourceImpl: ES, ...base, ...options });
  client.start();
  return client;
}

beforeEach(() => {
  ES = makeFakeEventSource();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('RingBuffer', () => {
  it('keeps the newest items up to its capacity, oldest first', () => {
    const r = new RingBuffer(3);
    expect(r.toArray()).toEqual([]);
    for (let i = 1; i <= 5; i++) r.push(i);
    expect(r.length).toBe(3);
    expect(r.toArray()).toEqual([3, 4, 5]);
    expect(r.last()).toBe(5);
    r.clear();
    expect(r.length).toBe(0);
    expect(r.last()).toBeUndefined();
  });
});

describe('parseEvent', () => {
  it('accepts the documented shapes', () => {
    expect(parseEvent('metrics', JSON.stringify(METRICS)).value.models[0].name).toBe('fast-sim');
    expect(parseEvent('job', JSON.stringify(JOB)).value.attempts).toHaveLength(2);
    expect(parseEvent('worker', JSON.stringify(WORKER_LEAVE)).value.reason).toBe('heartbeat expired');
    expect(parseEvent('edge', JSON.stringify(EDGE)).value.rps).toBe(35.2);
  });

  it('rejects bad JSON and wrong shapes', () => {
    expect(parseEvent('job', '{"job_id": 1,').error).toBe('bad JSON');
    expect(parseEvent('job', '{"job_id": 1}').error).toBe('unexpected shape');
    expect(parseEvent('metrics', '[]').error).toBe('unexpected shape');
    expect(parseEvent('metrics', '{"models": {}}').error).toBe('unexpected shape');
    expect(parseEvent('worker', '{"event": "explode", "id": "w"}').error).toBe('unexpected shape');
    expect(parseEvent('edge', 'null').error).toBe('unexpected shape');
    expect(parseEvent('edge', undefined).error).toBe('bad JSON');
    expect(parseEvent('bogus', '{}').error).toBe('unknown event type');
  });

  it('drops unusable entries inside an otherwise good event', () => {
    const m = parseEvent('metrics', JSON.stringify({ ...METRICS, models: [METRICS.models[0], 7, { nope: 1 }], workers: [null] })).value;
    expect(m.models).toHaveLength(1);
    expect(m.workers).toEqual([]);
  });
});

describe('createAigwStream', () => {
  it('subscribes to the URL and parses each event type', () => {
    const client = started();
    const es = ES.instances[0];
    expect(es.url).toBe('/v1/aigw/events');
    expect(client.getState().connection.status).toBe('connecting');
    es.open();
    expect(client.getState().connection.status).toBe('open');

    es.emit('metrics', METRICS);
    es.emit('edge', EDGE);
    es.emit('job', JOB);
    es.emit('worker', WORKER_JOIN);
    const s = client.getState();
    expect(s.metrics.broker_id).toBe('host-1234');
    expect(s.metricsHistory).toHaveLength(1);
    expect(s.edge.rps).toBe(35.2);
    expect(s.edgeHistory).toEqual([{ ts_ms: EDGE.ts_ms, rps: 35.2, error_rate: 0.01, p50: 42, p99: 120, in_flight: 4, cost_usd: null }]);
    expect(s.jobs.map((j) => j.job_id)).toEqual([17]);
    expect(s.workerEvents.map((w) => `${w.event}:${w.id}`)).toEqual(['join:worker-9']);
    expect(s.workers.map((w) => [w.id, w.alive])).toEqual([
      ['worker-1', true],
      ['worker-9', true],
    ]);
    expect(s.counts).toMatchObject({ metrics: 1, edge: 1, job: 1, worker: 1, malformed: 0 });
  });

  it('keeps bounded histories, newest jobs first', () => {
    const client = started({ maxJobs: 5, edgeHistory: 4, metricsHistory: 3, maxWorkerEvents: 2 });
    const es = ES.instances[0];
    es.open();
    for (let i = 1; i <= 12; i++) {
      es.emit('job', { ...JOB, job_id: i });
      es.emit('edge', { ...EDGE, ts_ms: i, rps: i });
      es.emit('metrics', { ...METRICS, ts_ms: i });
      es.emit('worker', { ...WORKER_JOIN, ts_ms: i });
    }
    const s = client.getState();
    expect(s.jobs.map((j) => j.job_id)).toEqual([12, 11, 10, 9, 8]);
    expect(s.edgeHistory.map((e) => e.rps)).toEqual([9, 10, 11, 12]);
    expect(s.metricsHistory.map((m) => m.ts_ms)).toEqual([10, 11, 12]);
    expect(s.workerEvents.map((w) => w.ts_ms)).toEqual([12, 11]);
    expect(s.counts.job).toBe(12);
  });

  it('ignores and counts malformed events, and goes on', () => {
    const client = started();
    const es = ES.instances[0];
    es.open();
    es.emit('job', JOB);
    const before = client.getState();
    es.emit('job', '{"job_id": 18, "attempts": [');
    es.emit('job', '{"job_id": 19}');
    es.emit('metrics', 'not json at all');
    es.emit('worker', '{"event": "join"}');
    es.emit('edge', '42');
    const s = client.getState();
    expect(s.counts.malformed).toBe(5);
    expect(s.malformedByType).toEqual({ job: 2, metrics: 1, worker: 1, edge: 1 });
    expect(s.lastMalformed).toMatchObject({ type: 'edge', reason: 'unexpected shape', sample: '42' });
    expect(s.jobs).toBe(before.jobs);
    expect(s.metrics).toBeNull();
    expect(s.edge).toBeNull();
    es.emit('job', { ...JOB, job_id: 20 });
    expect(client.getState().jobs.map((j) => j.job_id)).toEqual([20, 17]);
    expect(client.getState().connection.status).toBe('open');
  });

  it('counts events without a type as ignored', () => {
    const client = started();
    ES.instances[0].open();
    ES.instances[0].emit('message', '{}');
    expect(client.getState().counts.ignored).toBe(1);
  });

  it('re-creates the EventSource with backoff when it is CLOSED', () => {
    vi.useFakeTimers();
    const client = started({ backoffInitialMs: 500, backoffMaxMs: 2000 });
    ES.instances[0].open();
    ES.instances[0].fail(true);
    let c = client.getState().connection;
    expect(c.status).toBe('offline');
    expect(c.failures).toBe(1);
    expect(c.lastError).toBe('stream closed');
    expect(ES.instances[0].closed).toBe(true);

    vi.advanceTimersByTime(499);
    expect(ES.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(ES.instances).toHaveLength(2);
    expect(client.getState().connection.status).toBe('connecting');

    // Still down: the delays double up to the cap.
    ES.instances[1].fail(true);
    vi.advanceTimersByTime(999);
    expect(ES.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(ES.instances).toHaveLength(3);
    ES.instances[2].fail(true);
    vi.advanceTimersByTime(2000);
    expect(ES.instances).toHaveLength(4);
    ES.instances[3].fail(true);
    expect(client.getState().connection.retryAt - Date.now()).toBe(2000);
    vi.advanceTimersByTime(2000);
    expect(ES.instances).toHaveLength(5);

    // Back up: state is live again, failures reset, and data flows from the new source.
    ES.instances[4].open();
    c = client.getState().connection;
    expect(c).toMatchObject({ status: 'open', failures: 0, reconnects: 4 });
    ES.instances[4].emit('edge', EDGE);
    expect(client.getState().edge.rps).toBe(35.2);

    ES.instances[4].fail(true);
    vi.advanceTimersByTime(500);
    expect(ES.instances).toHaveLength(6);
    client.stop();
  });

  it('lets the browser retry by itself while the source is CONNECTING', () => {
    vi.useFakeTimers();
    const client = started();
    ES.instances[0].open();
    ES.instances[0].fail(false);
    expect(client.getState().connection.status).toBe('reconnecting');
    vi.advanceTimersByTime(60000);
    expect(ES.instances).toHaveLength(1);
    ES.instances[0].open();
    expect(client.getState().connection.status).toBe('open');
  });

  it('ignores events from a source it has replaced', () => {
    vi.useFakeTimers();
    const client = started();
    const old = ES.instances[0];
    old.open();
    old.fail(true);
    vi.advanceTimersByTime(500);
    old.emit('job', JOB);
    expect(client.getState().jobs).toEqual([]);
  });

  it('re-creates a stream that went silent', () => {
    vi.useFakeTimers();
    const client = started({ staleMs: 4000 });
    ES.instances[0].open();
    vi.advanceTimersByTime(3000);
    ES.instances[0].emit('edge', EDGE);
    vi.advanceTimersByTime(3000);
    expect(ES.instances).toHaveLength(1);
    vi.advanceTimersByTime(2000);
    expect(client.getState().connection.lastError).toMatch(/no events/);
    expect(ES.instances[0].closed).toBe(true);
    vi.advanceTimersByTime(500);
    expect(ES.instances).toHaveLength(2);
    client.stop();
  });

  it('retries when the EventSource constructor throws', () => {
    vi.useFakeTimers();
    let calls = 0;
    class Throwing extends ES {
      constructor(url) {
        if (calls++ === 0) throw new Error('bad url');
        super(url);
      }
    }
    const client = started({ EventSourceImpl: Throwing });
    expect(client.getState().connection).toMatchObject({ status: 'offline' });
    expect(client.getState().connection.lastError).toMatch(/bad url/);
    vi.advanceTimersByTime(500);
    expect(ES.instances).toHaveLength(1);
  });

  it('waits for reconnect() after a 401/403, without backoff retries', () => {
    vi.useFakeTimers();
    const inits = [];
    let n = 0;
    const client = started({ eventSourceInit: () => (inits.push(++n), { headers: { n } }) });
    const es = ES.instances[0];
    es.readyState = 2;
    es.dispatch('error', { status: 401, message: 'the admin key is not correct' });
    expect(client.getState().connection).toMatchObject({ status: 'unauthorized', httpStatus: 401, lastError: 'the admin key is not correct', retryAt: null });
    expect(es.closed).toBe(true);
    vi.advanceTimersByTime(60000);
    expect(ES.instances).toHaveLength(1);
    client.reconnect();
    expect(ES.instances).toHaveLength(2);
    expect(inits).toEqual([1, 2]); // init is built afresh for each connection
    expect(ES.instances[1].init).toEqual({ headers: { n: 2 } });
    expect(client.getState().connection.status).toBe('connecting');
    ES.instances[1].open();
    expect(client.getState().connection).toMatchObject({ status: 'open', httpStatus: null, lastError: null });
    client.stop();
  });

  it('stop() closes the source and cancels the retry', () => {
    vi.useFakeTimers();
    const client = started();
    ES.instances[0].fail(true);
    client.stop();
    vi.advanceTimersByTime(60000);
    expect(ES.instances).toHaveLength(1);
    expect(client.getState().connection.status).toBe('stopped');
    client.start();
    expect(ES.instances).toHaveLength(2);
  });

  it('batches notifications to at most one per flush period', () => {
    vi.useFakeTimers();
    const client = started({ flushMs: 100 });
    const seen = [];
    client.subscribe((s) => seen.push(s));
    ES.instances[0].open();
    const afterOpen = seen.length;
    for (let i = 0; i < 20; i++) ES.instances[0].emit('job', { ...JOB, job_id: i });
    expect(seen.length).toBe(afterOpen);
    vi.advanceTimersByTime(100);
    expect(seen.length).toBe(afterOpen + 1);
    expect(client.getState().jobs).toHaveLength(20);
  });

  it('tracks worker liveness from metrics and join/leave events', () => {
    let t = 1000;
    const client = started({ now: () => t, workerGraceMs: 5000 });
    const es = ES.instances[0];
    es.open();
    es.emit('metrics', METRICS);
    es.emit('worker', WORKER_JOIN);
    es.emit('worker', WORKER_LEAVE);
    let w9 = client.getState().workers.find((w) => w.id === 'worker-9');
    expect(w9).toMatchObject({ alive: false, reason: 'heartbeat expired', in_flight: 0 });

    t += 1000;
    es.emit('metrics', { ...METRICS, workers: [] });
    const w1 = client.getState().workers.find((w) => w.id === 'worker-1');
    expect(w1).toMatchObject({ alive: false, reason: 'no longer reported' });

    t += 6000;
    es.emit('metrics', { ...METRICS, workers: [] });
    expect(client.getState().workers).toEqual([]);

    es.emit('worker', WORKER_JOIN);
    w9 = client.getState().workers.find((w) => w.id === 'worker-9');
    expect(w9).toMatchObject({ alive: true, capacity: 64, reason: null });
  });
});

describe('useAigwStream', () => {
  function Probe({ impl }) {
    const s = useAigwStream('/v1/aigw/events', { EventSourceImpl: impl, flushMs: 0, staleMs: 0 });
    return createElement('p', { 'data-testid': 'probe' }, `${s.connection.status} ${s.jobs.length} ${s.edge?.rps ?? '-'}`);
  }

  it('renders the live state and closes the stream on unmount', () => {
    const { unmount } = render(createElement(Probe, { impl: ES }));
    expect(screen.getByTestId('probe').textContent).toBe('connecting 0 -');
    const es = ES.instances.at(-1);
    act(() => {
      es.open();
      es.emit('job', JOB);
      es.emit('edge', EDGE);
    });
    expect(screen.getByTestId('probe').textContent).toBe('open 1 35.2');
    unmount();
    expect(es.closed).toBe(true);
  });
});
