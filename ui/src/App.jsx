// The aigw dashboard: health header, models, worker pools, broker counters and the live request log.
// The stream is read over fetch (src/sse.js) so it can carry the admin key; a 401/403 from
// the edge swaps the panels for the admin key form.
import { useCallback, useEffect, useState } from 'react';
import AdminKeyForm from './components/AdminKeyForm.jsx';
import BrokerCounters from './components/BrokerCounters.jsx';
import GroupChips from './components/GroupChips.jsx';
import HealthBar from './components/HealthBar.jsx';
import Legend from './components/Legend.jsx';
import ModelsTable from './components/ModelsTable.jsx';
import Panel from './components/Panel.jsx';
import RequestLog from './components/RequestLog.jsx';
import StaleBanner from './components/StaleBanner.jsx';
import TopBar from './components/TopBar.jsx';
import WorkerPools from './components/WorkerPools.jsx';
import { deriveModels } from './derive.js';
import { authHeaders, clearAdminKey, getAdminKey, redact, setAdminKey } from './auth.js';
import { FetchEventSource } from './sse.js';
import { DEFAULT_URL, useAigwClient } from './stream.js';
import { useNow } from './useNow.js';
import { useProbes } from './useProbes.js';

function modelSummary(metrics, history) {
  const counts = { healthy: 0, degraded: 0, cooling: 0, down: 0 };
  for (const m of deriveModels(metrics, history)) counts[m.status] = (counts[m.status] ?? 0) + 1;
  return Object.entries(counts)
    .filter(([, c]) => c > 0)
    .map(([s, c]) => `${c} ${s}`)
    .join(' · ');
}

function workerSummary(workers) {
  const alive = workers.filter((w) => w.alive);
  const used = alive.reduce((s, w) => s + (w.in_flight || 0), 0);
  const cap = alive.reduce((s, w) => s + (w.capacity || 0), 0);
  return workers.length ? `${alive.length} up · ${used} / ${cap} slots busy` : '';
}

//  Stream options: the fetch-based source with the tab's admin key, unless the caller
//  brings its own source (demo, tests).
function withAuth(streamOptions) {
  return { EventSourceImpl: FetchEventSource, eventSourceInit: () => ({ headers: authHeaders() }), ...streamOptions };
}

//  What to tell the user when the edge refused the stream.
function refusal(connection, triedKey) {
  const { httpStatus: status, lastError } = connection;
  const said = lastError ? ` (${lastError})` : '';
  if (status === 403) return `The edge refused the stream, HTTP 403${said}.`;
  if (triedKey) return `The edge did not accept that key, HTTP ${status ?? 401}${said}. Try again.`;
  return null;
}

export default function App({ url = DEFAULT_URL, streamOptions, demo = false }) {
  const [options] = useState(() => withAuth(streamOptions));
  const { state, client } = useAigwClient(url, options);
  const [adminKey, setKeyState] = useState(() => (demo ? null : getAdminKey()));
  const [error, setError] = useState(null);
  const now = useNow(1000);
  const probes = useProbes(!demo, 5000, adminKey);
  const { status, since } = state.connection;
  const live = status === 'open';
  const locked = status === 'unauthorized';
  useEffect(() => {
    document.title = `aigw · ${live ? 'live' : locked ? 'admin key needed' : status}`;
  }, [live, locked, status]);
  //  Refused with a key: it is wrong (or the edge has none); drop it and say so.
  useEffect(() => {
    if (!locked) return;
    const tried = getAdminKey();
    setError(redact(refusal(state.connection, !!tried), tried));
    if (tried) {
      clearAdminKey();
      setKeyState(null);
    }
    // Runs once per refusal (`since` changes with each); state.connection is that refusal.
  }, [locked, since]);
  const submitKey = useCallback(
    (key) => {
      setAdminKey(key);
      setKeyState(getAdminKey());
      setError(null);
      client.reconnect();
    },
    [client],
  );
  const forgetKey = useCallback(() => {
    clearAdminKey();
    setKeyState(null);
    setError(null);
    client.reconnect();
  }, [client]);
  return (
    <div className={`app${live ? '' : ' app-stale'}`}>
      <TopBar state={state} now={now} demo={demo} hasKey={!demo && !!adminKey} onForgetKey={forgetKey} />
      <StaleBanner connection={state.connection} now={now} />
      <HealthBar state={state} now={now} probes={demo ? { readyz: true } : probes} />
      {locked && <AdminKeyForm onSubmit={submitKey} error={error} httpStatus={state.connection.httpStatus} />}
      {!locked && (
        <main className="grid">
          <Panel className="area-models" title="Models" meta={modelSummary(state.metrics, state.metricsHistory)}>
            <ModelsTable metrics={state.metrics} history={state.metricsHistory} receivedAt={state.receivedAt.metrics} />
            <GroupChips models={probes.models} />
          </Panel>
          <Panel className="area-log" title="Live requests" meta={state.jobs.length ? `newest ${state.jobs.length}` : ''} actions={<Legend />}>
            <RequestLog jobs={state.jobs} />
          </Panel>
          <Panel className="area-workers" title="Worker pools" meta={workerSummary(state.workers)}>
            <WorkerPools workers={state.workers} events={state.workerEvents} now={now} />
          </Panel>
          <Panel className="area-counters" title="Broker counters" meta={state.metrics ? `${state.metrics.jobs_in_flight ?? 0} jobs in flight` : ''}>
            <BrokerCounters counters={state.metrics?.counters} stream={state.counts} />
          </Panel>
        </main>
      )}
    </div>
  );
}
