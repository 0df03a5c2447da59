// Pure derivations and formatting.
import { describe, expect, it } from 'vitest';
import { baselineSnapshot, errorRate, modelStatus, niceMax, timelineBars, winRate } from '../src/derive.js';
import { fmtCount, fmtMs, fmtPct } from '../src/format.js';

describe('derive', () => {
  it('computes win rate as wins / (wins + losses + errors)', () => {
    expect(winRate({ wins: 9, losses: 1 })).toBe(0.9);
    expect(winRate({ wins: 7, losses: 0, errors: 3 })).toBe(0.7); // failures are not wins
    expect(winRate({ wins: 0, losses: 0 })).toBeNull();
    expect(winRate({})).toBeNull();
  });

  it('computes error rate against a baseline, falling back to lifetime on reset', () => {
    expect(errorRate({ wins: 8, losses: 0, errors: 2 }, null)).toBe(0.2);
    expect(errorRate({ wins: 18, losses: 0, errors: 2 }, { wins: 8, losses: 0, errors: 2 })).toBe(0);
    expect(errorRate({ wins: 1, losses: 0, errors: 1 }, { wins: 8, losses: 0, errors: 0 })).toBe(0.5);
    expect(errorRate({ wins: 8, losses: 0, errors: 2 }, { wins: 8, losses: 0, errors: 2 })).toBeNull();
  });

  it('derives status with the documented thresholds', () => {
    expect(modelStatus({ workers: 0 }, 0)).toBe('down');
    expect(modelStatus(null, 0)).toBe('down');
    expect(modelStatus({ workers: 1, queued: 0 }, 0.1)).toBe('healthy');
    expect(modelStatus({ workers: 1, queued: 0 }, 0.11)).toBe('degraded');
    expect(modelStatus({ workers: 1, queued: 1 }, 0)).toBe('degraded');
    expect(modelStatus({ workers: 1, queued: 0 }, null)).toBe('healthy');
  });

  it('picks the oldest same-broker snapshot inside the window', () => {
    const h = [
      { broker_id: 'a', ts_ms: 0 },
      { broker_id: 'a', ts_ms: 10000 },
      { broker_id: 'a', ts_ms: 20000 },
      { broker_id: 'a', ts_ms: 40000 },
    ];
    expect(baselineSnapshot(h, h[3], 30000)).toBe(h[1]);
    expect(baselineSnapshot(h, { broker_id: 'b', ts_ms: 41000 }, 30000)).toBeNull();
    expect(baselineSnapshot([h[3]], h[3], 30000)).toBeNull();
  });

  it('rounds timeline axes to nice numbers', () => {
    expect(niceMax(41.6)).toBe(50);
    expect(niceMax(120)).toBe(200);
    expect(niceMax(1700)).toBe(2000);
    expect(niceMax(0)).toBe(1);
    expect(niceMax(0.3)).toBe(0.5);
    const { axisMax, bars } = timelineBars({ latency_ms: 900, attempts: [{ started_ms: 0, finished_ms: 1000, outcome: 'weird' }] });
    expect(axisMax).toBe(1000);
    expect(bars[0].outcome).toBe('failed');
  });
});

describe('format', () => {
  it('formats numbers compactly', () => {
    expect(fmtMs(0.42)).toBe('0.4 ms');
    expect(fmtMs(41.5)).toBe('42 ms');
    expect(fmtMs(1534)).toBe('1.53 s');
    expect(fmtMs(null)).toBe('–');
    expect(fmtPct(0.0123)).toBe('1.2%');
    expect(fmtPct(0.5)).toBe('50%');
    expect(fmtPct(0)).toBe('0%');
    expect(fmtCount(950)).toBe('950');
    expect(fmtCount(12345)).toBe('12.3k');
    expect(fmtCount(4100000)).toBe('4.10M');
  });
});
