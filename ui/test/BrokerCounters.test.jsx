// BrokerCounters lists the broker's counters by group, the resilience ones when sent.
import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import BrokerCounters from '../src/components/BrokerCounters.jsx';
import { METRICS } from './samples.js';

const counter = (key) => document.querySelector(`[data-counter="${key}"]`);

describe('BrokerCounters', () => {
  it('lists retries, hedges, budget refusals, trips and cooldown skips with labels', () => {
    const counters = {
      ...METRICS.counters, attempts_retried: 3, attempts_hedged: 4, attempts_skipped: 7, hedges_suppressed: 2,
      retries_suppressed: 0, jobs_cooldown: 1, breaker_trips: 2,
    };
    render(<BrokerCounters counters={counters} />);
    expect(screen.getByText('Resilience')).toBeTruthy();
    const want = {
      attempts_retried: ['retries', '3'], attempts_hedged: ['hedges', '4'], hedges_suppressed: ['hedges refused', '2'],
      retries_suppressed: ['retries refused', '0'], breaker_trips: ['breaker trips', '2'],
      attempts_skipped: ['skipped (cooling)', '7'], jobs_cooldown: ['jobs all cooling', '1'],
    };
    for (const [key, [label, value]] of Object.entries(want)) {
      expect(counter(key).querySelector('dt').textContent).toBe(label);
      expect(counter(key).querySelector('dd').textContent).toBe(value);
      expect(counter(key).title).not.toBe('');
    }
    expect(counter('breaker_trips').classList.contains('bad')).toBe(true);
    expect(counter('hedges_suppressed').classList.contains('warn')).toBe(true);
    expect(counter('retries_suppressed').classList.contains('warn')).toBe(false); // zero
  });

  it('leaves the group out for an older broker', () => {
    render(<BrokerCounters counters={METRICS.counters} />);
    expect(screen.queryByText('Resilience')).toBeNull();
    expect(counter('jobs_accepted')).not.toBeNull();
  });
});
