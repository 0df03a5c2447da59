// A banner over the page while the stream is down: what is wrong and how old the figures are.
import { fmtClock } from '../format.js';

export default function StaleBanner({ connection, now }) {
  const { status, retryAt, lastError, lastEventAt } = connection;
  if (status !== 'offline' && status !== 'reconnecting') return null;
  const wait = status === 'offline' && retryAt ? Math.max(0, Math.ceil((retryAt - now) / 1000)) : null;
  return (
    <div className="banner" role="alert" data-testid="stale-banner">
      <strong>Lost the live stream from the edge</strong>
      <span>
        {lastError ? `${lastError} — ` : ''}
        {wait ? `reconnecting in ${wait} s` : 'reconnecting…'}
      </span>
      {lastEventAt && <span className="banner-age">figures below are from {fmtClock(lastEventAt)}</span>}
    </div>
  );
}
