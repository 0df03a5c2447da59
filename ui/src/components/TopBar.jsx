// Page header: product name, broker identity, demo flag, the connection badge and, when an
// admin key is kept for this tab, the control that forgets it.
import ConnectionBadge from './ConnectionBadge.jsx';
import { fmtClock } from '../format.js';

export default function TopBar({ state, now, demo, hasKey = false, onForgetKey }) {
  return (
    <header className="topbar">
      <div className="brand">
        <svg className="logo" viewBox="0 0 32 32" aria-hidden="true">
          <path d="M6 22h8M6 16h14M6 10h20" stroke="var(--accent)" strokeWidth="3" strokeLinecap="round" />
          <circle cx="26" cy="10" r="3" fill="var(--gold)" />
        </svg>
        <h1>
          aigw <span className="brand-sub">live gateway</span>
        </h1>
        {demo && <span className="demo-flag" data-testid="demo-flag">demo data</span>}
      </div>
      <div className="topbar-right">
        <span className="clock mono">{fmtClock(now)}</span>
        <ConnectionBadge connection={state.connection} now={now} counts={state.counts} />
        {hasKey && onForgetKey && (
          <button type="button" className="btn" onClick={onForgetKey} data-testid="forget-key" title="Forget the admin key kept for this tab">
            Forget key
          </button>
        )}
      </div>
    </header>
  );
}
