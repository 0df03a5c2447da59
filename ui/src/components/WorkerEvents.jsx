// The newest worker join / leave events, newest first.
import { fmtAgo } from '../format.js';

export default function WorkerEvents({ events = [], now = Date.now(), max = 6 }) {
  if (events.length === 0) return null;
  return (
    <>
      <h3 className="subhead">Joins and leaves</h3>
      <ul className="wev-list">
        {events.slice(0, max).map((ev, i) => (
          <li key={`${ev.id}-${ev.receivedAt}-${i}`} className={`wev wev-${ev.event}`}>
            <span className="wev-kind">{ev.event === 'join' ? '+' : '−'}</span>
            <span className="mono">{ev.id}</span>
            <span className="wev-what">{ev.event === 'join' ? 'joined' : `left${ev.reason ? `: ${ev.reason}` : ''}`}</span>
            <span className="wev-when">{fmtAgo(ev.ts_ms ?? ev.receivedAt, now)}</span>
          </li>
        ))}
      </ul>
    </>
  );
}
