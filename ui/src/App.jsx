// The aigw dashboard: health header, models, worker pools, broker counters and the live request log.
import { useEffect } from 'react';
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
import { DEFAULT_URL, useAigwStream } from './stream.js';
import { useNow } from './useNow.js';
import { useProbes } from './useProbes.js';

function modelSummary(metrics, history) {
  const counts = { healthy: 0, degraded: 0, down: 0 };
  for (const m of deriveModels(metrics, history)) counts[m.status]++;
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

export default function App({ url = DEFAULT_URL, streamOptions, demo = false }) {
  const state = useAigwStream(url, streamOptions);
  const now = useNow(1000);
  const probes = useProbes(!demo);
  const live = state.connection.status === 'open';
  useEffect(() => {
    document.title = `aigw · ${live ? 'live' : state.connection.status}`;
  }, [live, state.connection.status]);
  return (
    <div className={`app${live ? '' : ' app-stale'}`}>
      <TopBar state={state} now={now} demo={demo} />
      <StaleBanner connection={state.connection} now={now} />
      <HealthBar state={state} now={now} probes={demo ? { readyz: true } : probes} />
      <main className="grid">
        <Panel className="area-models" title="Models" meta={modelSummary(state.metrics, state.metricsHistory)}>
          <ModelsTable metrics={state.metrics} history={state.metricsHistory} />
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
    </div>
  );
}
