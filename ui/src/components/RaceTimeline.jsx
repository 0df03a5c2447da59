// One job's race: a bar per attempt from start to finish on the job's shared time axis,
// a tick at the first token, coloured by outcome, the winner starred.
import { timelineBars } from '../derive.js';
import { fmtMs } from '../format.js';

function note(b) {
  const took = typeof b.finished_ms === 'number' ? b.finished_ms - (b.started_ms ?? 0) : null;
  if (b.outcome === 'won') return fmtMs(took);
  if (b.outcome === 'cancelled') return `cancelled ${fmtMs(took)}`;
  if (b.outcome === 'failed') return b.error ? String(b.error) : 'failed';
  return 'pending';
}

function tooltip(b) {
  return [
    `${b.model} on ${b.worker ?? '?'} — ${b.outcome}`,
    `started ${fmtMs(b.started_ms)}`,
    b.first_token_ms != null ? `first token ${fmtMs(b.first_token_ms)}` : null,
    b.finished_ms != null ? `finished ${fmtMs(b.finished_ms)}` : null,
    b.error ? `error: ${b.error}` : null,
  ]
    .filter(Boolean)
    .join('\n');
}

export default function RaceTimeline({ job }) {
  const { axisMax, bars } = timelineBars(job);
  return (
    <div className="race" data-testid={`race-${job.job_id}`}>
      {bars.map((b, i) => (
        <div
          key={b.attempt_id ?? i}
          className={`lane${b.winner ? ' lane-winner' : ''}`}
          data-testid={`attempt-${b.attempt_id ?? i}`}
          data-outcome={b.outcome}
          data-model={b.model}
        >
          <div className="lane-label">
            <span className="crown-slot">{b.winner && <span className="crown" data-role="winner" title="winner">★</span>}</span>
            <span className="lane-model">{b.model}</span>
            {b.worker && <span className="lane-worker">{b.worker}</span>}
          </div>
          <div className="lane-track" title={tooltip(b)}>
            <div className={`bar bar-${b.outcome}`} style={{ left: `${b.left}%`, width: `${b.width}%` }} />
            {b.tick !== null && <div className="ttft-tick" style={{ left: `${b.tick}%` }} data-role="ttft" />}
          </div>
          <div className={`lane-note note-${b.outcome}`} title={b.error || undefined}>
            {note(b)}
          </div>
        </div>
      ))}
      <div className="axis" aria-hidden="true">
        <span />
        <div className="axis-scale">
          <span style={{ left: '0%' }}>0</span>
          <span style={{ left: '50%' }}>{fmtMs(axisMax / 2)}</span>
          <span style={{ left: '100%' }}>{fmtMs(axisMax)}</span>
        </div>
        <span />
      </div>
    </div>
  );
}
