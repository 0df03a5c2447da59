// Worker pools: each worker's liveness, the models it serves and an in-flight / capacity bar.
import CapacityBar from './CapacityBar.jsx';
import WorkerEvents from './WorkerEvents.jsx';
import { fmtMs } from '../format.js';

const LAGGING_MS = 3000;

function liveness(w) {
  if (!w.alive) return 'down';
  if ((w.last_seen_ms ?? 0) > LAGGING_MS) return 'lagging';
  return 'up';
}

export default function WorkerPools({ workers = [], events = [], now = Date.now() }) {
  return (
    <div className="workers">
      {workers.length === 0 && <div className="empty">No workers have registered yet.</div>}
      <ul className="worker-list">
        {workers.map((w) => {
          const live = liveness(w);
          return (
            <li key={w.id} className={`worker worker-${live}`} data-testid={`worker-${w.id}`} data-alive={String(!!w.alive)}>
              <div className="worker-head">
                <span className="worker-dot" aria-hidden="true" />
                <span className="worker-id mono">{w.id}</span>
                <span className="worker-state">
                  {live === 'down' ? `down${w.reason ? ` · ${w.reason}` : ''}` : live === 'lagging' ? `silent ${fmtMs(w.last_seen_ms)}` : 'up'}
                </span>
              </div>
              <CapacityBar used={w.alive ? (w.in_flight ?? 0) : 0} capacity={w.capacity ?? 0} label={`${w.id} in flight / capacity`} />
              <div className="worker-foot">
                <span className="chips">
                  {(w.models || []).map((m) => (
                    <span key={m} className="chip">
                      {m}
                    </span>
                  ))}
                </span>
                <span className="worker-counts num" title="completed · failed · cancelled">
                  <span className="ok">✓ {w.completed ?? 0}</span>
                  <span className={w.failed ? 'bad' : ''}>✕ {w.failed ?? 0}</span>
                  <span className="muted">⊘ {w.cancelled ?? 0}</span>
                </span>
              </div>
            </li>
          );
        })}
      </ul>
      <WorkerEvents events={events} now={now} />
    </div>
  );
}
