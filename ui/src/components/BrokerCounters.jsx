// The broker's lifetime counters, grouped, with the bad ones tinted when non-zero.
import { fmtCount } from '../format.js';

const GROUPS = [
  ['Jobs', [['jobs_accepted', 'accepted'], ['jobs_won', 'won'], ['jobs_failed', 'failed', 'bad'], ['jobs_timeout', 'timed out', 'bad'], ['jobs_cancelled', 'cancelled']]],
  ['Attempts', [['attempts_started', 'started'], ['attempts_won', 'won'], ['attempts_cancelled', 'cancelled'], ['attempts_failed', 'failed', 'bad'], ['late_replies', 'late replies']]],
  ['Fabric', [['workers_joined', 'workers joined'], ['workers_lost', 'workers lost', 'bad'], ['malformed', 'malformed', 'bad'], ['send_failures', 'send failures', 'bad']]],
];

export default function BrokerCounters({ counters, stream }) {
  if (!counters) return <div className="empty">No counters yet.</div>;
  return (
    <div className="counters" data-testid="broker-counters">
      {GROUPS.map(([title, items]) => (
        <div key={title} className="counter-group">
          <h3 className="subhead">{title}</h3>
          <dl>
            {items.map(([key, label, kind]) => {
              const v = counters[key] ?? 0;
              return (
                <div key={key} className={`counter ${kind === 'bad' && v > 0 ? 'bad' : ''}`}>
                  <dt>{label}</dt>
                  <dd className="num">{fmtCount(v)}</dd>
                </div>
              );
            })}
          </dl>
        </div>
      ))}
      {stream && (
        <p className="stream-note">
          Dashboard stream: {fmtCount(stream.metrics + stream.job + stream.worker + stream.edge)} events
          {stream.malformed > 0 ? `, ${stream.malformed} malformed ignored` : ', none malformed'}
        </p>
      )}
    </div>
  );
}
