// The broker's lifetime counters, grouped, with the bad ones tinted when non-zero.
import { fmtCount } from '../format.js';

//  [key, label, kind ('bad': tinted when non-zero, 'warn': amber), tooltip]. `optional`
//  groups show only when the broker sends one of their counters (older brokers do not).
const GROUPS = [
  ['Jobs', [['jobs_accepted', 'accepted'], ['jobs_won', 'won'], ['jobs_failed', 'failed', 'bad'], ['jobs_timeout', 'timed out', 'bad'], ['jobs_cancelled', 'cancelled']]],
  ['Attempts', [['attempts_started', 'started'], ['attempts_won', 'won'], ['attempts_cancelled', 'cancelled'], ['attempts_failed', 'failed', 'bad'], ['late_replies', 'late replies']]],
  [
    'Resilience',
    [
      ['attempts_retried', 'retries', null, 'retries started after a retryable failure'],
      ['attempts_hedged', 'hedges', null, 'backups started by the hedge timer'],
      ['hedges_suppressed', 'hedges refused', 'warn', 'hedges the hedge budget refused (no token left)'],
      ['retries_suppressed', 'retries refused', 'warn', 'retries the hedge budget refused (no token left)'],
      ['breaker_trips', 'breaker trips', 'bad', 'times a model started cooling down after failures'],
      ['attempts_skipped', 'skipped (cooling)', 'warn', 'targets not started because they were cooling down'],
      ['jobs_cooldown', 'jobs all cooling', 'bad', 'jobs answered 503 at once because every target was cooling down (also in jobs failed)'],
    ],
    true,
  ],
  ['Fabric', [['workers_joined', 'workers joined'], ['workers_lost', 'workers lost', 'bad'], ['malformed', 'malformed', 'bad'], ['send_failures', 'send failures', 'bad']]],
];

export default function BrokerCounters({ counters, stream }) {
  if (!counters) return <div className="empty">No counters yet.</div>;
  const groups = GROUPS.filter(([, items, optional]) => !optional || items.some(([key]) => key in counters));
  return (
    <div className="counters" data-testid="broker-counters">
      {groups.map(([title, items]) => (
        <div key={title} className="counter-group" data-group={title.toLowerCase()}>
          <h3 className="subhead">{title}</h3>
          <dl>
            {items.map(([key, label, kind, help]) => {
              const v = counters[key] ?? 0;
              const tint = v > 0 && (kind === 'bad' || kind === 'warn') ? kind : '';
              return (
                <div key={key} className={`counter ${tint}`} data-counter={key} title={help}>
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
