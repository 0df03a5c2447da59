// A win rate (0..1 or null) as a percentage over a thin bar.
import { fmtPct } from '../format.js';

export default function WinRateBar({ value }) {
  return (
    <div className="winrate">
      <span className="num">{fmtPct(value)}</span>
      <span className="winrate-track">
        <span className="winrate-fill" style={{ width: `${(value ?? 0) * 100}%` }} />
      </span>
    </div>
  );
}
