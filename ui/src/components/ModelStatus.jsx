// A model's status pill: the broker's state (healthy, degraded, cooling with the time left,
// counting down from the metrics event's arrival) or the derived one; "down" without workers.
import StatusPill from './StatusPill.jsx';
import { BROKER_STATES, cooldownLeft } from '../derive.js';
import { fmtLeft } from '../format.js';
import { useNow } from '../useNow.js';

const TITLES = {
  healthy: 'the broker sees no recent failures',
  degraded: 'failing lately, or probing after a cooldown (the broker still sends it traffic)',
  cooling: 'circuit breaker open after failures: the broker skips this model until the cooldown ends',
  down: 'no live worker serves this model',
};

//  Only mounted for a cooling model, so only those re-render several times a second.
function CoolingPill({ model, receivedAt, now: fixedNow }) {
  const ticking = useNow(200);
  const left = cooldownLeft(model, receivedAt, fixedNow ?? ticking);
  return (
    <StatusPill
      status="cooling"
      label={
        <>
          cooling
          {left !== null && left > 0 && (
            <span className="pill-sub" data-testid="cooldown-left">
              {' · '}
              {fmtLeft(left)}
            </span>
          )}
        </>
      }
    />
  );
}

export default function ModelStatus({ model, receivedAt = null, now }) {
  const fromBroker = BROKER_STATES.includes(model.state) && model.status !== 'down';
  const title = `${TITLES[model.status] ?? model.status}${fromBroker ? ' (broker state)' : model.status === 'down' ? '' : ' (derived: no broker state)'}`;
  return (
    <span title={title} data-source={fromBroker ? 'broker' : 'derived'}>
      {model.status === 'cooling' ? <CoolingPill model={model} receivedAt={receivedAt} now={now} /> : <StatusPill status={model.status} />}
    </span>
  );
}
