// The whole page renders from a stream: health, models, workers and the request log.
import { describe, expect, it, vi } from 'vitest';
import { act, render, screen } from '@testing-library/react';
import App from '../src/App.jsx';
import { makeFakeEventSource } from './fakeEventSource.js';
import { EDGE, JOB, METRICS } from './samples.js';

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
});
