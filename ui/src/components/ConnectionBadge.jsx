// The stream's connection state: live, connecting, reconnecting or offline with the retry countdown.
const LABELS = {
  idle: 'idle',
  connecting: 'connecting…',
  open: 'live',
  reconnecting: 'reconnecting…',
  offline: 'offline',
  unauthorized: 'key needed',
  stopped: 'stopped',
};

const TONES = { open: 'up', connecting: 'wait', reconnecting: 'wait', offline: 'down', unauthorized: 'down', stopped: 'down', idle: 'wait' };

export default function ConnectionBadge({ connection, now, counts }) {
  const status = connection?.status || 'idle';
  let detail = '';
  if (status === 'offline' && connection.retryAt) {
    const s = Math.max(0, Math.ceil((connection.retryAt - now) / 1000));
    detail = s > 0 ? `retry in ${s} s` : 'retrying';
  } else if (status === 'open' && connection.lastEventAt && now - connection.lastEventAt > 3000) {
    detail = `quiet ${Math.round((now - connection.lastEventAt) / 1000)} s`;
  } else if (status === 'reconnecting') {
    detail = connection.lastError || '';
  }
  const title = [
    `stream ${status}`,
    connection?.httpStatus ? `HTTP ${connection.httpStatus}` : null,
    connection?.lastError ? `last error: ${connection.lastError}` : null,
    connection?.reconnects ? `re-created ${connection.reconnects}×` : null,
    counts ? `events: ${counts.metrics} metrics, ${counts.job} job, ${counts.worker} worker, ${counts.edge} edge` : null,
    counts?.malformed ? `${counts.malformed} malformed ignored` : null,
  ]
    .filter(Boolean)
    .join('\n');
  return (
    <div className={`conn conn-${TONES[status]}`} data-testid="connection" data-status={status} title={title} role="status">
      <span className="conn-dot" aria-hidden="true" />
      <span className="conn-label">{LABELS[status]}</span>
      {detail && <span className="conn-detail">{detail}</span>}
      {counts?.malformed > 0 && <span className="conn-bad" title="malformed events ignored">{counts.malformed} bad</span>}
    </div>
  );
}
