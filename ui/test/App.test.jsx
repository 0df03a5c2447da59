// The whole page renders from a stream: health, models, workers and the request log.
import { describe, expect, it, vi } from 'vitest';
import { act, render, screen } from '@testing-library/react';
import App from '../src/App.jsx';
import { makeFakeEventSource } from './fakeEventSource.js';
import { EDGE, HEALTH, JOB, JOB_RESILIENCE, METRICS, model } from './samples.js';

describe('App', () => {
  it('shows what the stream says and the connection state', () => {
    vi.stubGlobal('fetch', vi.fn(async () => ({ ok: true, json: async () => ({ data: [{ id: 'quick', aigw: { kind: 'group', workers: 2 } }] }) })));
    const ES = makeFakeEventSource();
    render(<App streamOptions={{ EventSourceImpl: ES, flushMs: 0 }} />);
    expect(screen.getByTestId('connection').dataset.status).toBe('connecting');
    const es = ES.instances.at(-1);
    act(() => {
      es.open();
      es.emit('metrics', METRICS);
      es.emit('edge', EDGE);
      es.emit('job', JOB);
    });
    expect(screen.getByTestId('connection').dataset.status).toBe('open');
    expect(screen.getByTestId('model-row-fast-sim').dataset.status).toBe('healthy');
    expect(screen.getByTestId('job-17').dataset.winner).toBe('fast-sim');
    expect(screen.getByTestId('worker-worker-1').textContent).toContain('1 / 64');
    expect(screen.getByTestId('tile-rps').textContent).toContain('35.2');
    expect(screen.getByTestId('svc-broker').dataset.status).toBe('up');
    act(() => es.fail(true));
    expect(screen.getByTestId('connection').dataset.status).toBe('offline');
    expect(screen.getByTestId('connection').textContent).toMatch(/retry in/);
    expect(screen.getByTestId('svc-edge').dataset.status).toBe('down');
    vi.unstubAllGlobals();
  });

  it("shows a newer broker's cooling model, skipped attempts and counters", () => {
    vi.stubGlobal('fetch', vi.fn(async () => ({ ok: true, json: async () => ({ data: [] }) })));
    const ES = makeFakeEventSource();
    render(<App streamOptions={{ EventSourceImpl: ES, flushMs: 0 }} />);
    const es = ES.instances.at(-1);
    const metrics = {
      ...METRICS,
      counters: { ...METRICS.counters, breaker_trips: 1, attempts_skipped: 1 },
      models: [model({ ...HEALTH }), model({ name: 'gpt-4o', ...HEALTH, state: 'cooling', cooldown_left_ms: 8000, trips: 1, skipped: 1 })],
    };
    act(() => {
      es.open();
      es.emit('metrics', metrics);
      es.emit('job', { ...JOB_RESILIENCE, hedge_suppressed: true });
    });
    expect(screen.getByText('1 healthy · 1 cooling')).toBeTruthy();
    expect(screen.getByTestId('model-row-gpt-4o').dataset.status).toBe('cooling');
    expect(screen.getByTestId('model-row-gpt-4o').textContent).toMatch(/cooling · [78]\.\d s/);
    expect(screen.getByTestId('attempt-40').dataset.outcome).toBe('skipped');
    expect(screen.getByTestId('suppressed-note').textContent).toBe('hedge suppressed (budget)');
    expect(screen.getByTestId('broker-counters').textContent).toContain('breaker trips1');
    vi.unstubAllGlobals();
  });
});
