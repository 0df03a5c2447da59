// ModelsTable derives each model's status, win rate and windowed error rate from metrics.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { act, render, screen, within } from '@testing-library/react';
import ModelsTable from '../src/components/ModelsTable.jsx';
import { HEALTH, METRICS, model } from './samples.js';

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

  it("shows the broker's state: cooling with the seconds left, degraded, healthy", () => {
    const m = [
      model({ name: 'cool', ...HEALTH, state: 'cooling', cooldown_left_ms: 4200, trips: 1 }),
      model({ name: 'shaky', ...HEALTH, state: 'degraded' }),
      // 2 of 10 failed (the derived rule would say degraded), but the broker says healthy
      model({ name: 'fine', ...HEALTH, wins: 8, errors: 2, queued: 3 }),
      model({ name: 'gone', ...HEALTH, state: 'cooling', cooldown_left_ms: 9000, workers: 0 }),
    ];
    const metrics = { ...METRICS, models: m };
    const { rerender } = render(<ModelsTable metrics={metrics} receivedAt={50_000} now={50_000} />);
    expect(row('cool').dataset.status).toBe('cooling');
    const status = () => within(row('cool')).getByTestId('model-status').textContent;
    expect(status()).toBe('cooling · 4.2 s');
    expect(row('shaky').dataset.status).toBe('degraded');
    expect(within(row('shaky')).getByTestId('model-status').textContent).toBe('degraded');
    expect(row('fine').dataset.status).toBe('healthy');
    expect(row('gone').dataset.status).toBe('down'); // no workers wins over the broker's state
    expect(within(row('cool')).getByTestId('model-status').querySelector('[data-source]').dataset.source).toBe('broker');
    // Counted down from the event's arrival; at the end only the state is left
    rerender(<ModelsTable metrics={metrics} receivedAt={50_000} now={51_500} />);
    expect(status()).toBe('cooling · 2.7 s');
    rerender(<ModelsTable metrics={metrics} receivedAt={50_000} now={60_000} />);
    expect(status()).toBe('cooling');
  });

  describe('with the clock running', () => {
    afterEach(() => vi.useRealTimers());

    it('counts the cooldown down by itself', () => {
      vi.useFakeTimers();
      const metrics = { ...METRICS, models: [model({ name: 'cool', ...HEALTH, state: 'cooling', cooldown_left_ms: 12_000 })] };
      render(<ModelsTable metrics={metrics} receivedAt={Date.now()} />);
      const left = () => within(row('cool')).getByTestId('cooldown-left').textContent;
      expect(left()).toBe(' · 12 s');
      act(() => vi.advanceTimersByTime(3000));
      expect(left()).toBe(' · 9.0 s');
    });
  });

  it('falls back to the derived status without a broker state', () => {
    render(<ModelsTable metrics={{ ...METRICS, models: [model({ name: 'old', wins: 8, errors: 2 })] }} />);
    expect(row('old').dataset.status).toBe('degraded');
    expect(within(row('old')).getByTestId('model-status').querySelector('[data-source]').dataset.source).toBe('derived');
  });

  it("shows the breaker's window error rate, trips, skipped, retries, hedges and budget refusals", () => {
    const m = model({ name: 'm', ...HEALTH, state: 'degraded', wins: 9, losses: 0, errors: 1, error_rate: 0.25, trips: 2, skipped: 7, retries: 3, hedges: 1, budget_refused: 4 });
    render(<ModelsTable metrics={{ ...METRICS, models: [m, model({ name: 'calm', ...HEALTH })] }} />);
    const r = within(row('m'));
    expect(screen.getByText('Resilience')).toBeTruthy();
    expect(r.getByTestId('model-errors').textContent).toBe('10%25% window'); // 30 s derived, then the broker's
    expect(r.getByTestId('model-window-errors').textContent).toBe('25% window');
    expect(r.getByTestId('model-window-errors').classList.contains('bad')).toBe(true);
    expect(r.getByTestId('model-trips').textContent).toBe('2 trips');
    expect(r.getByTestId('model-skipped').textContent).toBe('7 skipped');
    expect(r.getByTestId('model-retries').textContent).toBe('3 retries');
    expect(r.getByTestId('model-hedges').textContent).toBe('1 hedge');
    expect(r.getByTestId('model-budget-refused').textContent).toBe('4 refused by budget');
    const calm = within(row('calm'));
    expect(calm.getByTestId('model-resilience').textContent).toBe('0 trips · 0 skipped0 retries · 0 hedges');
    expect(calm.queryByTestId('model-budget-refused')).toBeNull();
  });

  it('has no resilience column or window error rate for an older broker', () => {
    render(<ModelsTable metrics={sample} />);
    expect(screen.queryByText('Resilience')).toBeNull();
    expect(screen.queryByTestId('model-resilience')).toBeNull();
    expect(screen.queryByTestId('model-window-errors')).toBeNull();
    expect(within(row('flaky')).getByTestId('model-errors').textContent).toBe('20%');
  });

  it('says so while waiting for metrics', () => {
    render(<ModelsTable metrics={null} />);
    expect(screen.getByText(/waiting for the broker/i)).toBeTruthy();
  });
});
