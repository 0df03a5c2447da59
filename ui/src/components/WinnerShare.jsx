// Who won the jobs in view: a stacked bar and legend (failures and timeouts included).
import { fmtPct } from '../format.js';
import { modelColor } from '../palette.js';

export default function WinnerShare({ jobs = [] }) {
  if (jobs.length === 0) return null;
  const counts = new Map();
  for (const j of jobs) {
    const k = j.winner || `(${j.outcome || 'failed'})`;
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  const parts = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  const total = jobs.length;
  return (
    <div className="share" data-testid="winner-share">
      <div className="share-bar">
        {parts.map(([k, c]) => (
          <span key={k} className="share-seg" style={{ flexGrow: c, background: k.startsWith('(') ? 'var(--failed)' : modelColor(k) }} title={`${k}: ${c}`} />
        ))}
      </div>
      <div className="share-legend">
        {parts.map(([k, c]) => (
          <span key={k} className="share-item">
            <span className="swatch" style={{ background: k.startsWith('(') ? 'var(--failed)' : modelColor(k) }} />
            {k} <span className="num muted">{fmtPct(c / total)}</span>
          </span>
        ))}
      </div>
    </div>
  );
}
