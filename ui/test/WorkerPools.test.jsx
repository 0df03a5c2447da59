// WorkerPools shows each worker's liveness and in-flight / capacity.
import { describe, expect, it } from 'vitest';
import { render, screen, within } from '@testing-library/react';
import WorkerPools from '../src/components/WorkerPools.jsx';

const workers = [
  { id: 'worker-1', models: ['fast-sim', 'slow-sim'], alive: true, in_flight: 3, capacity: 64, last_seen_ms: 120, completed: 10, failed: 0, cancelled: 4 },
  { id: 'worker-2', models: ['slow-sim'], alive: true, in_flight: 60, capacity: 64, last_seen_ms: 4500, completed: 1, failed: 2, cancelled: 0 },
  { id: 'worker-3', models: ['gpt-4o'], alive: false, in_flight: 0, capacity: 32, reason: 'heartbeat expired' },
];

describe('WorkerPools', () => {
  it('shows in-flight / capacity as numbers and a bar', () => {
    render(<WorkerPools workers={workers} />);
    const w1 = screen.getByTestId('worker-worker-1');
    expect(w1.textContent).toContain('3 / 64');
    const meter = within(w1).getByRole('meter');
    expect(meter.getAttribute('aria-valuenow')).toBe('3');
    expect(meter.getAttribute('aria-valuemax')).toBe('64');
    expect(w1.querySelector('.capacity-fill').style.width).toBe(`${(3 / 64) * 100}%`);
    expect(w1.textContent).toContain('fast-sim');
    expect(w1.textContent).toContain('slow-sim');

    const w2 = screen.getByTestId('worker-worker-2');
    expect(w2.querySelector('.capacity-fill').classList.contains('hot')).toBe(true);
    expect(w2.classList.contains('worker-lagging')).toBe(true);
  });

  it('shows liveness, with the reason a worker went down', () => {
    render(<WorkerPools workers={workers} events={[{ event: 'leave', id: 'worker-3', reason: 'heartbeat expired', ts_ms: 1000 }]} now={5000} />);
    expect(screen.getByTestId('worker-worker-1').dataset.alive).toBe('true');
    const w3 = screen.getByTestId('worker-worker-3');
    expect(w3.dataset.alive).toBe('false');
    expect(w3.textContent).toContain('down · heartbeat expired');
    expect(w3.textContent).toContain('0 / 32');
    expect(screen.getByText(/left: heartbeat expired/)).toBeTruthy();
  });

  it('says when no worker has registered', () => {
    render(<WorkerPools workers={[]} />);
    expect(screen.getByText(/no workers/i)).toBeTruthy();
  });
});
