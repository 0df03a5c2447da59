// One job's race: a bar per attempt from start to finish on the job's shared time axis,
// a tick at the first token, coloured by outcome, the winner starred. Skipped attempts
// (the target was cooling down) are a short grey hatched bar; hedges carry a "hedge" tag and
// retries a "↻ retry of #n" tag pointing at the lane they repeat (lanes are numbered then).
import { timelineBars } from '../derive.js';
import { fmtMs } from '../format.js';

function note(b) {
  const took = typeof b.finished_ms === 'number' ? b.finished_ms - (b.started_ms ?? 0) : null;
  if (b.outcome === 'won') return fmtMs(took);
  if (b.outcome === 'cancelled') return `cancelled ${fmtMs(took)}`;
  if (b.outcome === 'failed') return b.error ? String(b.error) : 'failed';
  if (b.outcome === 'skipped') return 'skipped: cooling down';
  return 'pending';
}

function tooltip(b, bars) {
  const of = b.retryOf !== null ? bars[b.retryOf] : null;
  return [
    `${b.model} on ${b.worker ?? '?'} — ${b.outcome}`,
    b.hedge ? 'hedge: a backup started by the hedge timer' : null,
    of ? `${b.redispatch ? 'redispatch' : 'retry'} of #${b.retryOf + 1} (${of.model}, ${of.outcome}${of.error ? `: ${of.error}` : ''})` : null,
    b.outcome === 'skipped' ? 'not started: the model is cooling down after failures' : `started ${fmtMs(b.started_ms)}`,
    b.first_token_ms != null ? `first token ${fmtMs(b.first_token_ms)}` : null,
    b.finished_ms != null && b.outcome !== 'skipped' ? `finished ${fmtMs(b.finished_ms)}` : null,
    b.error ? `error: ${b.error}` : null,
    b.reason ? `reason: ${b.reason}` : null,
  ]
    .filter(Boolean)
    .join('\n');
}

export default function RaceTimeline({ job }) {
  const { axisMax, bars } = timelineBars(job);
  const numbered = bars.some((b) => b.retryOf !== null);
  const tagged = numbered || bars.some((b) => b.hedge);
  return (
    <div className={`race${tagged ? ' race-tagged' : ''}`} data-testid={`race-${job.job_id}`}>
      {bars.map((b, i) => (
        <div
          key={b.attempt_id || `lane-${i}`}
          className={`lane${b.winner ? ' lane-winner' : ''}`}
          data-testid={`attempt-${b.attempt_id ?? i}`}
          data-outcome={b.outcome}
          data-model={b.model}
          data-hedge={b.hedge || undefined}
          data-retry-of={b.retryOf !== null ? b.retryOf + 1 : undefined}
        >
          <div className="lane-label">
            <span className="crown-slot">{b.winner && <span className="crown" data-role="winner" title="winner">★</span>}</span>
            {numbered && <span className="lane-no mono">#{i + 1}</span>}
            <span className="lane-model">{b.model}</span>
            {b.hedge && (
              <span className="tag tag-hedge" data-role="hedge" title="a backup started by the hedge timer">
                hedge
              </span>
            )}
            {b.retryOf !== null && (
              <span className="tag tag-retry" data-role="retry" title={`started again after #${b.retryOf + 1} ${b.redispatch ? 'lost its worker' : 'failed'}`}>
                ↻ {b.redispatch ? 'redispatch' : 'retry'} of #{b.retryOf + 1}
              </span>
            )}
            {b.worker && <span className="lane-worker">{b.worker}</span>}
          </div>
          <div className="lane-track" title={tooltip(b, bars)}>
            <div className={`bar bar-${b.outcome}`} style={{ left: `${b.left}%`, width: `${b.width}%` }} />
            {b.tick !== null && <div className="ttft-tick" style={{ left: `${b.tick}%` }} data-role="ttft" />}
          </div>
          <div className={`lane-note note-${b.outcome}`} title={b.reason || b.error || undefined}>
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
