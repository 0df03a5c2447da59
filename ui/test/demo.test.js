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
