// The demo simulation emits only events the stream client accepts, with consistent races.
import { describe, expect, it } from 'vitest';
import { createDemoEventSource, createSimulator } from '../src/demo.js';
import { createAigwStream, parseEvent } from '../src/stream.js';

describe('demo simulator', () => {
  const start = 1_700_000_000_000;
  const events = createSimulator({ seed: 7, start }).step(start + 60000);

  it('emits every event type, all well-formed', () => {
    const types = new Set(events.map(([t]) => t));
    expect([...types].sort()).toEqual(['edge', 'job', 'metrics', 'worker']);
    for (const [type, data] of events) expect(parseEvent(type, JSON.stringify(data)).error).toBeUndefined();
    expect(events.filter(([t]) => t === 'metrics')).toHaveLength(60);
  });

  it('produces races with exactly one winner per won job', () => {
    const jobs = events.filter(([t]) => t === 'job').map(([, j]) => j);
    expect(jobs.length).toBeGreaterThan(100);
    for (const j of jobs) {
      const won = j.attempts.filter((a) => a.outcome === 'won');
      if (j.outcome === 'won') {
        expect(won).toHaveLength(1);
        expect(won[0].model).toBe(j.winner);
      } else expect(won).toHaveLength(0);
      for (const a of j.attempts) expect(a.finished_ms).toBeGreaterThanOrEqual(a.started_ms);
    }
  });
});

describe('demo resilience', () => {
  const start = 1_700_000_000_000;
  const events = createSimulator({ seed: 42, start }).step(start + 180000);
  const jobs = events.filter(([t]) => t === 'job').map(([, j]) => j);
  const metrics = events.filter(([t]) => t === 'metrics').map(([, m]) => m);

  it("reports the broker's health fields and counters", () => {
    for (const m of metrics.at(-1).models) {
      expect(['healthy', 'degraded', 'cooling']).toContain(m.state);
      for (const k of ['cooldown_left_ms', 'error_rate', 'trips', 'skipped', 'retries', 'hedges', 'budget_refused']) expect(typeof m[k]).toBe('number');
    }
    const c = metrics.at(-1).counters;
    for (const k of ['attempts_retried', 'attempts_hedged', 'attempts_skipped', 'hedges_suppressed', 'retries_suppressed', 'jobs_cooldown', 'breaker_trips']) expect(typeof c[k]).toBe('number');
    expect(c.breaker_trips).toBeGreaterThan(0);
    // gpt-4o's bad spell cools it down, with the time left
    const cooling = metrics.flatMap((m) => m.models).filter((m) => m.state === 'cooling');
    expect(cooling.length).toBeGreaterThan(0);
    for (const m of cooling) expect(m.cooldown_left_ms).toBeGreaterThan(0);
  });

  it('skips cooling targets, links retries and tags hedges in job events', () => {
    const attempts = jobs.flatMap((j) => j.attempts.map((a) => ({ ...a, job: j })));
    const skipped = attempts.filter((a) => a.outcome === 'skipped');
    expect(skipped.length).toBeGreaterThan(0);
    for (const a of skipped) {
      expect(a.error).toBe('ERR_COOLDOWN');
      expect(a.worker).toBeNull();
      expect(a.finished_ms).toBe(a.started_ms);
    }
    const retries = attempts.filter((a) => a.retry_of !== null);
    expect(retries.length).toBeGreaterThan(0);
    for (const a of retries) {
      const of = a.job.attempts.find((b) => b.attempt_id === a.retry_of);
      expect(of.model).toBe(a.model);
      expect(of.outcome).toBe('failed');
      expect(a.started_ms).toBeGreaterThanOrEqual(of.finished_ms);
    }
    expect(attempts.some((a) => a.hedge && a.outcome !== 'skipped')).toBe(true);
    expect(jobs.some((j) => j.hedge_suppressed)).toBe(true);
    for (const j of jobs) expect(typeof j.hedge_suppressed === 'boolean' && typeof j.retry_suppressed === 'boolean').toBe(true);
  });
});

describe('DemoEventSource', () => {
  it('feeds the stream client like a real EventSource', async () => {
    const client = createAigwStream('/v1/aigw/events', { EventSourceImpl: createDemoEventSource({ tickMs: 20 }), flushMs: 0, staleMs: 0 });
    client.start();
    await new Promise((r) => setTimeout(r, 400));
    const s = client.getState();
    client.stop();
    expect(s.connection.status).toBe('open');
    expect(s.counts.malformed).toBe(0);
    expect(s.jobs.length).toBe(50);
    expect(s.metrics.models.map((m) => m.name)).toContain('fast-sim');
    expect(s.edgeHistory.length).toBeGreaterThan(60);
  });
});
