// Cost: the edge's spend and savings tiles, the per-model cost columns, the USD format.
import { describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/react';
import HealthBar from '../src/components/HealthBar.jsx';
import ModelsTable from '../src/components/ModelsTable.jsx';
import { spendPerMinute } from '../src/derive.js';
import { createSimulator } from '../src/demo.js';
import { fmtUsd } from '../src/format.js';
import { parseEvent } from '../src/stream.js';
import { EDGE, METRICS, model } from './samples.js';

function healthState(edge, edgeHistory = []) {
  return {
    connection: { status: 'open', lastEventAt: 0 },
    edge: parseEvent('edge', JSON.stringify(edge)).value,
    metrics: null,
    edgeHistory,
    workers: [],
    receivedAt: { metrics: null },
  };
}

describe('fmtUsd', () => {
  it('formats dollars sensibly', () => {
    expect(fmtUsd(0.0042)).toBe('$0.0042');
    expect(fmtUsd(0.04237)).toBe('$0.042');
    expect(fmtUsd(0.42)).toBe('$0.42');
    expect(fmtUsd(0.5)).toBe('$0.50');
    expect(fmtUsd(12.3)).toBe('$12.30');
    expect(fmtUsd(1234.5)).toBe('$1,234.50');
    expect(fmtUsd(2345678)).toBe('$2.35M');
    expect(fmtUsd(0)).toBe('$0.00');
    expect(fmtUsd(0.00000001)).toBe('<$0.000001');
    expect(fmtUsd(0.0000123)).toBe('$0.000012');
    expect(fmtUsd(-1.5)).toBe('-$1.50');
    expect(fmtUsd(null)).toBe('—');
    expect(fmtUsd(undefined)).toBe('—');
    expect(fmtUsd('3')).toBe('—');
    expect(fmtUsd(NaN)).toBe('—');
  });
});

describe('cost in the stream', () => {
  it('keeps the cost fields of edge and metrics events, null when absent or not numbers', () => {
    const e = parseEvent('edge', JSON.stringify({ ...EDGE, cost_usd: 12.3, cost_saved_usd: 4.5, loser_cost_usd: 'x' })).value;
    expect(e).toMatchObject({ cost_usd: 12.3, cost_saved_usd: 4.5, loser_cost_usd: null });
    expect(parseEvent('edge', JSON.stringify(EDGE)).value).toMatchObject({ cost_usd: null, cost_saved_usd: null, loser_cost_usd: null });
    const m = parseEvent('metrics', JSON.stringify({ ...METRICS, models: [model({ cost_usd: 0.25 })] })).value;
    expect(m.models[0]).toMatchObject({ cost_usd: 0.25, cost_saved_usd: null });
  });

  it('derives the spend rate per minute, across an edge restart', () => {
    expect(spendPerMinute([])).toBeNull();
    expect(spendPerMinute([{ ts_ms: 0, cost_usd: 1 }, { ts_ms: 1000, cost_usd: 2 }])).toBeNull(); // too short
    expect(spendPerMinute([{ ts_ms: 0, cost_usd: 1 }, { ts_ms: 30000, cost_usd: null }, { ts_ms: 60000, cost_usd: 3 }])).toBeCloseTo(2);
    const restarted = [{ ts_ms: 0, cost_usd: 50 }, { ts_ms: 10000, cost_usd: 0.5 }, { ts_ms: 40000, cost_usd: 1 }];
    expect(spendPerMinute(restarted)).toBeCloseTo(1);
  });
});

describe('HealthBar cost tiles', () => {
  it('shows total spend and what cancelling saved', () => {
    const edge = { ...EDGE, cost_usd: 12.3, cost_saved_usd: 0.0042, loser_cost_usd: 0.87 };
    const history = [{ ts_ms: 0, cost_usd: 11.3 }, { ts_ms: 60000, cost_usd: 12.3 }];
    render(<HealthBar state={healthState(edge, history)} now={0} />);
    const cost = screen.getByTestId('tile-cost');
    expect(cost.textContent).toContain('Spend');
    expect(cost.textContent).toContain('$12.30');
    expect(cost.textContent).toContain('$1.00 / min');
    const saved = screen.getByTestId('tile-saved');
    expect(saved.textContent).toMatch(/saved by cancelling/i);
    expect(saved.textContent).toContain('$0.0042');
    expect(saved.textContent).toContain('losers still cost $0.87');
    expect(screen.getByTestId('health').querySelector('.health-figures').classList.contains('with-cost')).toBe(true);
  });

  it('shows a dash for a missing field and no tiles when the edge reports no cost', () => {
    const { unmount } = render(<HealthBar state={healthState({ ...EDGE, cost_usd: 3 })} now={0} />);
    expect(screen.getByTestId('tile-saved').textContent).toContain('—');
    expect(screen.getByTestId('tile-saved').textContent).not.toContain('losers');
    unmount();
    render(<HealthBar state={healthState(EDGE)} now={0} />);
    expect(screen.queryByTestId('tile-cost')).toBeNull();
    expect(screen.queryByTestId('tile-saved')).toBeNull();
  });
});

describe('ModelsTable cost columns', () => {
  it('shows cost and saved per model, a dash where a model has none', () => {
    const metrics = parseEvent('metrics', JSON.stringify({
      ...METRICS,
      models: [model({ name: 'gpt-4o', cost_usd: 12.3, cost_saved_usd: 4.56 }), model({ name: 'fast-sim', cost_usd: 0.0042 }), model({ name: 'old' })],
    })).value;
    render(<ModelsTable metrics={metrics} />);
    expect(screen.getByRole('columnheader', { name: 'Cost' })).toBeTruthy();
    expect(screen.getByRole('columnheader', { name: 'Saved' })).toBeTruthy();
    const row = (n) => screen.getByTestId(`model-row-${n}`);
    expect(within(row('gpt-4o')).getByTestId('model-cost').textContent).toBe('$12.30');
    expect(within(row('gpt-4o')).getByTestId('model-cost-saved').textContent).toBe('$4.56');
    expect(within(row('fast-sim')).getByTestId('model-cost').textContent).toBe('$0.0042');
    expect(within(row('fast-sim')).getByTestId('model-cost-saved').textContent).toBe('—');
    expect(within(row('old')).getByTestId('model-cost').textContent).toBe('—');
  });

  it('has no cost columns when no model reports a cost', () => {
    render(<ModelsTable metrics={METRICS} />);
    expect(screen.queryByRole('columnheader', { name: 'Cost' })).toBeNull();
    expect(screen.queryByTestId('model-cost')).toBeNull();
  });
});

describe('demo costs', () => {
  it('the simulation reports plausible, consistent costs', () => {
    const start = 1_700_000_000_000;
    const events = createSimulator({ seed: 3, start }).step(start + 30000);
    const edge = events.filter(([t]) => t === 'edge').at(-1)[1];
    const metrics = events.filter(([t]) => t === 'metrics').at(-1)[1];
    expect(edge.cost_usd).toBeGreaterThan(0);
    expect(edge.cost_saved_usd).toBeGreaterThan(0);
    expect(edge.loser_cost_usd).toBeGreaterThan(0);
    expect(edge.loser_cost_usd).toBeLessThan(edge.cost_usd);
    expect(edge.cost_usd).toBeLessThan(10); // 30 s of a small demo, not a fortune
    const sum = metrics.models.reduce((s, m) => s + m.cost_usd, 0);
    expect(sum).toBeCloseTo(edge.cost_usd, 4);
    expect(metrics.models.find((m) => m.name === 'llama3-local').cost_usd).toBe(0);
    for (const m of metrics.models) expect(m.cost_saved_usd).toBeGreaterThanOrEqual(0);
    // Cumulative: never goes down.
    const costs = events.filter(([t]) => t === 'edge').map(([, e]) => e.cost_usd);
    for (let i = 1; i < costs.length; i++) expect(costs[i]).toBeGreaterThanOrEqual(costs[i - 1]);
  });
});
