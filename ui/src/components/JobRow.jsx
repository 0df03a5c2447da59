// One finished job of the request log: outcome, id, policy, winner, latency, what the hedge
// budget refused, and its race.
import { memo } from 'react';
import RaceTimeline from './RaceTimeline.jsx';
import { suppressed } from '../derive.js';
import { fmtClock, fmtMs } from '../format.js';

const GLYPHS = { won: '✓', failed: '✕', timeout: '⧗', cancelled: '⊘' };

function attemptsText(job) {
  const skipped = job.attempts.filter((a) => a.outcome === 'skipped').length;
  const ran = job.attempts.length - skipped;
  const main = ran > 1 ? `of ${ran} attempts` : ran === 1 ? 'single attempt' : 'no attempt';
  return skipped ? `${main} · ${skipped} skipped` : main;
}

function JobRow({ job }) {
  const outcome = job.outcome || 'failed';
  const refused = suppressed(job);
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
          <span className="job-error" title={job.message || job.error || outcome}>
            {outcome}
            {job.error ? `: ${job.error}` : ''}
          </span>
        )}
        <span className="job-of">{attemptsText(job)}</span>
        {refused && (
          <span
            className="chip note-suppressed"
            data-testid="suppressed-note"
            data-suppressed={refused}
            title={`the hedge budget had no token left, so the ${refused === 'hedge and retry' ? 'backup and the retry were' : `${refused} was`} not started`}
          >
            {refused} suppressed (budget)
          </span>
        )}
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
