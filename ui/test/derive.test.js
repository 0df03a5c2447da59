// Pure derivations and formatting.
import { describe, expect, it } from 'vitest';
import { baselineSnapshot, cooldownLeft, deriveModels, errorRate, hasHealth, modelStatus, niceMax, suppressed, timelineBars, winRate } from '../src/derive.js';
import { fmtCount, fmtLeft, fmtMs, fmtPct } from '../src/format.js';
import { HEALTH, JOB_RESILIENCE, METRICS, model } from './samples.js';

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

  it("takes the broker's state when it sends one; no workers is still down", () => {
    expect(modelStatus({ workers: 1, state: 'cooling' }, 0)).toBe('cooling');
    expect(modelStatus({ workers: 1, state: 'degraded' }, 0)).toBe('degraded');
    expect(modelStatus({ workers: 1, state: 'healthy', queued: 4 }, 0.5)).toBe('healthy');
    expect(modelStatus({ workers: 0, state: 'cooling' }, 0)).toBe('down');
    // An unknown state: the derived rule, as for an older broker
    expect(modelStatus({ workers: 1, state: 'sleepy', queued: 0 }, 0.5)).toBe('degraded');
    expect(modelStatus({ workers: 1, state: 'sleepy', queued: 0 }, 0)).toBe('healthy');
  });

  it('counts the cooldown down from the arrival of the metrics event', () => {
    expect(cooldownLeft({ cooldown_left_ms: 4200 }, 1000, 2000)).toBe(3200);
    expect(cooldownLeft({ cooldown_left_ms: 4200 }, 1000, 9000)).toBe(0);
    expect(cooldownLeft({ cooldown_left_ms: 4200 }, 1000, 500)).toBe(4200); // clock went back
    expect(cooldownLeft({ cooldown_left_ms: 4200 }, null, 2000)).toBe(4200);
    expect(cooldownLeft({}, 1000, 2000)).toBeNull();
    expect(fmtLeft(4200)).toBe('4.2 s');
    expect(fmtLeft(4130)).toBe('4.2 s'); // rounded up: never 0 before it is over
    expect(fmtLeft(12_000)).toBe('12 s');
    expect(fmtLeft(65_000)).toBe('1 m 05 s');
    expect(fmtLeft(null)).toBe('–');
  });

  it("keeps the derived error rate and adds the breaker's", () => {
    const rows = deriveModels({ ...METRICS, models: [model({ wins: 8, losses: 0, errors: 2, ...HEALTH, error_rate: 0.4 }), model({ name: 'old' })] });
    expect(rows[0].errorRate).toBe(0.2);
    expect(rows[0].breakerErrorRate).toBe(0.4);
    expect(rows[1].breakerErrorRate).toBeNull();
    expect(hasHealth(rows[0])).toBe(true);
    expect(hasHealth(rows[1])).toBe(false);
  });

  it('marks skipped, retried and hedged attempts on the timeline', () => {
    const { bars } = timelineBars(JOB_RESILIENCE);
    expect(bars.map((b) => b.outcome)).toEqual(['skipped', 'failed', 'won', 'cancelled']);
    expect(bars[0].width).toBe(2.5);
    expect(bars.map((b) => b.retryOf)).toEqual([null, null, 1, null]);
    expect(bars.map((b) => b.hedge)).toEqual([false, false, false, true]);
    expect(bars[2].redispatch).toBe(false);
    // A skipped attempt at the very end of the axis still fits
    const late = timelineBars({ latency_ms: 100, attempts: [{ outcome: 'skipped', started_ms: 100, finished_ms: 100 }] });
    expect(late.bars[0].left + late.bars[0].width).toBe(100);
    // retry_of naming no attempt of the job (or itself): no link
    const odd = timelineBars({ attempts: [{ attempt_id: 5, retry_of: 5, outcome: 'won' }, { attempt_id: 6, retry_of: 99, outcome: 'failed' }] });
    expect(odd.bars.map((b) => b.retryOf)).toEqual([null, null]);
  });

  it('says what the hedge budget suppressed', () => {
    expect(suppressed({ hedge_suppressed: true })).toBe('hedge');
    expect(suppressed({ retry_suppressed: true })).toBe('retry');
    expect(suppressed({ hedge_suppressed: true, retry_suppressed: true })).toBe('hedge and retry');
    expect(suppressed({ hedge_suppressed: false })).toBeNull();
    expect(suppressed({})).toBeNull();
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
