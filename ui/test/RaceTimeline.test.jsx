// RaceTimeline and JobRow draw one bar per attempt on the job's axis, the winner marked.
import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import RaceTimeline from '../src/components/RaceTimeline.jsx';
import JobRow from '../src/components/JobRow.jsx';
import { JOB, JOB_RESILIENCE } from './samples.js';

const pct = (el) => parseFloat(el.style.width);

describe('RaceTimeline', () => {
  it('draws one bar per attempt and marks the winner', () => {
    const { container } = render(<RaceTimeline job={JOB} />);
    const lanes = container.querySelectorAll('.lane');
    expect(lanes).toHaveLength(2);
    expect(container.querySelectorAll('.bar')).toHaveLength(2);

    const loser = screen.getByTestId('attempt-33');
    const winner = screen.getByTestId('attempt-34');
    expect(loser.dataset.outcome).toBe('cancelled');
    expect(winner.dataset.outcome).toBe('won');
    expect(winner.classList.contains('lane-winner')).toBe(true);
    expect(winner.querySelector('[data-role="winner"]')).not.toBeNull();
    expect(loser.querySelector('[data-role="winner"]')).toBeNull();
    expect(container.querySelectorAll('[data-role="winner"]')).toHaveLength(1);
    expect(winner.querySelector('.bar').classList.contains('bar-won')).toBe(true);
    expect(loser.querySelector('.bar').classList.contains('bar-cancelled')).toBe(true);

    // Shared axis 0..50 ms: both bars start at 0.1 ms and end at 41.6 / 41.4 ms.
    expect(parseFloat(winner.querySelector('.bar').style.left)).toBeCloseTo(0.2, 5);
    expect(pct(winner.querySelector('.bar'))).toBeCloseTo(82.6, 5);
    expect(pct(loser.querySelector('.bar'))).toBeCloseTo(83.0, 5);
    expect(container.querySelector('.axis-scale').textContent).toBe('025 ms50 ms');

    // First-token tick only where there was a first token.
    expect(winner.querySelector('[data-role="ttft"]').style.left).toBe('82.4%');
    expect(loser.querySelector('[data-role="ttft"]')).toBeNull();
  });

  it('colours failed and pending attempts, pending running to the end of the axis', () => {
    const job = {
      job_id: 5, policy: 'hedge', outcome: 'failed', winner: null, error: 'all failed', latency_ms: 900,
      attempts: [
        { attempt_id: 1, model: 'a', worker: 'w1', outcome: 'failed', started_ms: 0, first_token_ms: null, finished_ms: 300, error: 'upstream 500' },
        { attempt_id: 2, model: 'b', worker: 'w2', outcome: 'pending', started_ms: 500, first_token_ms: null, finished_ms: null, error: null },
      ],
    };
    render(<RaceTimeline job={job} />);
    const failed = screen.getByTestId('attempt-1');
    const pending = screen.getByTestId('attempt-2');
    expect(failed.querySelector('.bar').classList.contains('bar-failed')).toBe(true);
    expect(failed.textContent).toContain('upstream 500');
    expect(pending.querySelector('.bar').classList.contains('bar-pending')).toBe(true);
    expect(parseFloat(pending.querySelector('.bar').style.left)).toBe(50);
    expect(pct(pending.querySelector('.bar'))).toBe(40);
    expect(document.querySelectorAll('[data-role="winner"]')).toHaveLength(0);
  });
});

describe('RaceTimeline with cooldown, retries and hedges', () => {
  it('draws a skipped attempt as a grey stub labelled "skipped: cooling down"', () => {
    render(<RaceTimeline job={JOB_RESILIENCE} />);
    const skipped = screen.getByTestId('attempt-40');
    expect(skipped.dataset.outcome).toBe('skipped');
    const bar = skipped.querySelector('.bar');
    expect(bar.classList.contains('bar-skipped')).toBe(true);
    expect(pct(bar)).toBe(2.5); // visible although it took no time
    expect(skipped.querySelector('.lane-note').textContent).toBe('skipped: cooling down');
    expect(skipped.querySelector('.lane-note').title).toBe('cooling down after failures');
    expect(skipped.querySelector('.lane-track').title).toMatch(/cooling down/);
    expect(skipped.querySelector('[data-role="ttft"]')).toBeNull();
  });

  it('links a retry to the lane it repeats and tags hedges', () => {
    render(<RaceTimeline job={JOB_RESILIENCE} />);
    const retry = screen.getByTestId('attempt-42');
    expect(retry.dataset.retryOf).toBe('2');
    expect(retry.querySelector('[data-role="retry"]').textContent).toBe('↻ retry of #2');
    expect(retry.querySelector('.lane-track').title).toContain('retry of #2 (claude-sonnet, failed: ERR_UPSTREAM)');
    // Lanes are numbered so "#2" can be found
    expect(screen.getByTestId('attempt-41').querySelector('.lane-no').textContent).toBe('#2');
    const hedge = screen.getByTestId('attempt-43');
    expect(hedge.dataset.hedge).toBe('true');
    expect(hedge.querySelector('[data-role="hedge"]').textContent).toBe('hedge');
    expect(screen.getByTestId('attempt-41').querySelector('[data-role="hedge"]')).toBeNull();
    expect(screen.getByTestId('attempt-41').querySelector('[data-role="retry"]')).toBeNull();
  });

  it('calls a retry of an attempt whose worker was lost a redispatch; no numbers without links', () => {
    const job = {
      ...JOB, job_id: 30,
      attempts: [
        { ...JOB.attempts[1], attempt_id: 50, outcome: 'failed', error: 'ERR_WORKER_LOST', first_token_ms: null },
        { ...JOB.attempts[1], attempt_id: 51, retry_of: 50 },
      ],
    };
    const { unmount } = render(<RaceTimeline job={job} />);
    expect(screen.getByTestId('attempt-51').querySelector('[data-role="retry"]').textContent).toBe('↻ redispatch of #1');
    unmount();
    render(<RaceTimeline job={JOB} />);
    expect(document.querySelector('.lane-no')).toBeNull();
  });
});

describe('JobRow', () => {
  it('notes what the hedge budget suppressed', () => {
    const { unmount } = render(<JobRow job={{ ...JOB, hedge_suppressed: true, retry_suppressed: false }} />);
    const note = screen.getByTestId('suppressed-note');
    expect(note.textContent).toBe('hedge suppressed (budget)');
    expect(note.dataset.suppressed).toBe('hedge');
    unmount();
    render(<JobRow job={{ ...JOB, job_id: 18, hedge_suppressed: false, retry_suppressed: true }} />);
    expect(screen.getByTestId('suppressed-note').textContent).toBe('retry suppressed (budget)');
  });

  it('has no note when nothing was suppressed, and counts skipped attempts apart', () => {
    render(<JobRow job={JOB_RESILIENCE} />);
    expect(screen.queryByTestId('suppressed-note')).toBeNull();
    expect(screen.getByTestId('job-21').textContent).toContain('of 3 attempts · 1 skipped');
  });

  it('carries the test hooks and shows latency and policy', () => {
    render(<JobRow job={JOB} />);
    const row = screen.getByTestId('job-17');
    expect(row.dataset.winner).toBe('fast-sim');
    expect(row.dataset.outcome).toBe('won');
    expect(row.textContent).toContain('race');
    expect(row.textContent).toContain('42 ms');
    expect(row.querySelector('.job-winner [data-role="winner"]')).not.toBeNull();
  });

  it('has no winner attribute for a failed job', () => {
    render(<JobRow job={{ ...JOB, job_id: 9, outcome: 'failed', winner: null, error: 'every upstream failed' }} />);
    const row = screen.getByTestId('job-9');
    expect(row.hasAttribute('data-winner')).toBe(false);
    expect(row.textContent).toContain('every upstream failed');
  });
});
