// ModelsTable derives each model's status, win rate and windowed error rate from metrics.
import { describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/react';
import ModelsTable from '../src/components/ModelsTable.jsx';
import { METRICS, model } from './samples.js';

const sample = {
  ...METRICS,
  models: [
    model({ name: 'fast-sim', wins: 9, losses: 1, errors: 0, queued: 0, workers: 2 }),
    model({ name: 'flaky', wins: 6, losses: 2, errors: 2, queued: 0, workers: 1 }),
    model({ name: 'busy', wins: 50, losses: 50, errors: 1, queued: 3, workers: 1 }),
    model({ name: 'gone', wins: 4, losses: 0, errors: 0, queued: 0, workers: 0 }),
    model({ name: 'fresh', wins: 0, losses: 0, errors: 0, queued: 0, workers: 1, latency_ms: { p50: 0, p95: 0, p99: 0 } }),
  ],
};

const row = (name) => screen.getByTestId(`model-row-${name}`);

describe('ModelsTable', () => {
  it('derives status and win rate from a metrics event', () => {
    render(<ModelsTable metrics={sample} history={[sample]} />);
    expect(row('fast-sim').dataset.status).toBe('healthy');
    expect(row('flaky').dataset.status).toBe('degraded'); // 2 errors of 10 finished = 20%
    expect(row('busy').dataset.status).toBe('degraded'); // queued > 0
    expect(row('gone').dataset.status).toBe('down'); // no workers
    expect(row('fresh').dataset.status).toBe('healthy');

    expect(within(row('fast-sim')).getByTestId('model-winrate').textContent).toBe('90%');
    expect(within(row('flaky')).getByTestId('model-winrate').textContent).toBe('60%'); // 6 of 10
    expect(within(row('busy')).getByTestId('model-winrate').textContent).toBe('50%'); // 50 of 101
    expect(within(row('fresh')).getByTestId('model-winrate').textContent).toBe('–');
    expect(within(row('flaky')).getByTestId('model-errors').textContent).toBe('20%');
    expect(within(row('gone')).getByTestId('model-status').textContent).toMatch(/down/i);
  });

  it('shows no TTFT for a model that never produced a token', () => {
    const m = model({ name: 'quiet', wins: 3, losses: 0, errors: 0, workers: 1,
                      ttft_ms: { p50: null, p95: null, p99: null } });
    render(<ModelsTable metrics={{ ...METRICS, models: [m] }} />);
    expect(row('quiet').textContent).not.toContain('0.0 ms');
  });

  it('shows load, percentiles, cancellations and tokens saved', () => {
    render(<ModelsTable metrics={{ ...METRICS, models: [model({ in_flight: 7, queued: 2, tokens_saved: 12345 })] }} />);
    const r = row('fast-sim');
    expect(r.textContent).toContain('+2 queued');
    expect(r.textContent).toContain('41 ms');
    expect(r.textContent).toContain('80 ms');
    expect(r.textContent).toContain('95 ms');
    expect(r.textContent).toContain('12.3k');
    expect(within(r).getByTestId('model-status').textContent).toMatch(/degraded/i);
    // A model that never finished an attempt shows no percentiles.
    render(<ModelsTable metrics={sample} />);
    expect(row('fresh').textContent).not.toContain('0.0 ms');
  });

  it('judges errors over the recent window, not the lifetime', () => {
    const at = (ts, m) => ({ ...METRICS, ts_ms: ts, models: [model({ name: 'm', ...m })] });
    // Lifetime 50% errors, but none in the last 30 s: healthy.
    const oldBad = at(1_000_000, { wins: 50, losses: 0, errors: 50 });
    const nowGood = at(1_020_000, { wins: 150, losses: 0, errors: 50 });
    render(<ModelsTable metrics={nowGood} history={[oldBad, nowGood]} />);
    expect(row('m').dataset.status).toBe('healthy');
    expect(within(row('m')).getByTestId('model-errors').textContent).toBe('0%');
  });

  it('uses lifetime counters after a broker restart', () => {
    const before = { ...METRICS, broker_id: 'a', ts_ms: 1_000_000, models: [model({ name: 'm', wins: 500, errors: 0 })] };
    const after = { ...METRICS, broker_id: 'b', ts_ms: 1_005_000, models: [model({ name: 'm', wins: 3, losses: 0, errors: 1 })] };
    render(<ModelsTable metrics={after} history={[before, after]} />);
    expect(row('m').dataset.status).toBe('degraded'); // 1 of 4
  });

  it('says so while waiting for metrics', () => {
    render(<ModelsTable metrics={null} />);
    expect(screen.getByText(/waiting for the broker/i)).toBeTruthy();
  });
});
