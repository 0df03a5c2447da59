// One finished job of the request log: outcome, id, policy, winner, latency, and its race.
import { memo } from 'react';
import RaceTimeline from './RaceTimeline.jsx';
import { fmtClock, fmtMs } from '../format.js';

const GLYPHS = { won: '✓', failed: '✕', timeout: '⧗', cancelled: '⊘' };

function JobRow({ job }) {
  const outcome = job.outcome || 'failed';
  const attempts = job.attempts.length;
  return (
    <article
      className={`job job-${outcome}`}
      data-testid={`job-${job.job_id}`}
      data-winner={job.winner || undefined}
      data-outcome={outcome}
    >
      <header className="job-head">
        <span className="job-glyph" aria-label={outcome}>
          {GLYPHS[outcome] || '?'}
        </span>
        <span className="job-id mono">#{job.job_id}</span>
        <span className={`chip policy policy-${job.policy}`}>{job.policy || '—'}</span>
        {job.winner ? (
          <span className="job-winner">
            <span className="crown" data-role="winner" title="winner">★</span>
            {job.winner}
          </span>
        ) : (
          <span className="job-error" title={job.error || outcome}>
            {outcome}
            {job.error ? `: ${job.error}` : ''}
          </span>
        )}
        <span className="job-of">
          {attempts > 1 ? `of ${attempts} attempts` : attempts === 1 ? 'single attempt' : 'no attempt'}
        </span>
        <span className="spacer" />
        <span className="job-latency num">{fmtMs(job.latency_ms)}</span>
        <span className="job-time mono">{fmtClock(job.ts_ms)}</span>
      </header>
      <RaceTimeline job={job} />
    </article>
  );
}

//  Jobs never change once logged, so a row re-renders only for a different job.
export default memo(JobRow);
