// Health header: edge, broker and workers up/down, then traffic figures with 2-minute sparklines.
import StatTile from './StatTile.jsx';
import StatusPill from './StatusPill.jsx';
import { spendPerMinute } from '../derive.js';
import { fmtDuration, fmtMs, fmtPct, fmtRate, fmtUsd } from '../format.js';

const METRICS_STALE_MS = 5000;
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

function edgeStatus(connection) {
  if (connection.status === 'open') return 'up';
  if (connection.status === 'unauthorized') return 'locked';
  if (connection.status === 'connecting' || connection.status === 'idle') return 'unknown';
  return 'down';
}

function brokerStatus(state, now) {
  if (state.connection.status !== 'open') return 'unknown';
  if (state.edge?.broker_up === false) return 'down';
  const at = state.receivedAt.metrics;
  if (at !== null && now - at > METRICS_STALE_MS) return 'stale';
  return at !== null || state.edge?.broker_up ? 'up' : 'unknown';
}

export default function HealthBar({ state, now, probes }) {
  const { edge, metrics, edgeHistory, workers } = state;
  const es = edgeStatus(state.connection);
  const bs = brokerStatus(state, now);
  const alive = workers.filter((w) => w.alive).length;
  const reported = typeof edge?.workers === 'number' ? edge.workers : alive;
  const ws = state.connection.status !== 'open' ? 'unknown' : reported > 0 ? (alive < workers.length ? 'degraded' : 'up') : 'down';
  const used = workers.reduce((s, w) => s + (w.alive ? w.in_flight || 0 : 0), 0);
  const cap = workers.reduce((s, w) => s + (w.alive ? w.capacity || 0 : 0), 0);
  const series = (k) => edgeHistory.map((h) => h[k]);
  const errTone = (edge?.error_rate ?? 0) > 0.1 ? 'bad' : (edge?.error_rate ?? 0) > 0.01 ? 'warn' : 'neutral';
  const ready = probes?.readyz;
  //  Cost tiles only once the edge reports costs (older edges do not).
  const costs = !!edge && [edge.cost_usd, edge.cost_saved_usd, edge.loser_cost_usd].some(isNum);
  const rate = costs ? spendPerMinute(edgeHistory) : null;

  return (
    <div className="health" data-testid="health">
      <div className="health-status">
        <div className="svc" data-testid="svc-edge" data-status={es}>
          <span className="svc-name">Edge</span>
          <StatusPill status={es} />
          <span className="svc-sub">
            {es === 'locked' ? 'admin key needed · ' : ''}
            {ready === true ? 'ready' : ready === false ? 'not ready' : '\u00a0'}
            {edge ? ` · ${edge.requests_in_flight ?? 0} in flight` : ''}
          </span>
        </div>
        <div className="svc" data-testid="svc-broker" data-status={bs}>
          <span className="svc-name">Broker</span>
          <StatusPill status={bs} />
          <span className="svc-sub">
            {metrics ? `${metrics.broker_id ?? 'broker'} · up ${fmtDuration(metrics.uptime_s)}` : 'no metrics yet'}
          </span>
        </div>
        <div className="svc" data-testid="svc-workers" data-status={ws}>
          <span className="svc-name">Workers</span>
          <StatusPill status={ws} label={`${reported} up`} />
          <span className="svc-sub">
            {workers.length > alive ? `${workers.length - alive} down · ` : ''}
            {cap > 0 ? `${Math.round((used / cap) * 100)}% busy` : 'no capacity'}
          </span>
        </div>
      </div>
      <div className={`health-figures${costs ? ' with-cost' : ''}`}>
        <StatTile testId="tile-rps" label="Requests / s" value={fmtRate(edge?.rps)} sub={edge ? `${edge.requests_total ?? 0} total` : null} series={series('rps')} color="var(--accent)" />
        <StatTile testId="tile-errors" label="Error rate" tone={errTone} value={fmtPct(edge?.error_rate)} sub={edge ? `${edge.errors_total ?? 0} errors` : null} series={series('error_rate')} color="var(--failed)" />
        <StatTile testId="tile-p50" label="Latency p50" value={fmtMs(edge?.latency_ms?.p50)} sub={edge?.overhead_ms ? `edge overhead ${fmtMs(edge.overhead_ms.p50)}` : null} series={series('p50')} color="var(--blue)" />
        <StatTile testId="tile-p99" label="Latency p99" value={fmtMs(edge?.latency_ms?.p99)} sub={edge?.overhead_ms ? `edge overhead ${fmtMs(edge.overhead_ms.p99)}` : null} series={series('p99')} color="var(--violet)" />
        {costs && (
          <StatTile
            testId="tile-cost"
            label="Spend"
            value={fmtUsd(edge.cost_usd)}
            sub={rate !== null ? `${fmtUsd(rate)} / min · since edge start` : 'since edge start'}
            title="What the edge was charged for every attempt since it started, cancelled losers included"
          />
        )}
        {costs && (
          <StatTile
            testId="tile-saved"
            label="Saved by cancelling"
            tone={isNum(edge.cost_saved_usd) && edge.cost_saved_usd > 0 ? 'good' : 'neutral'}
            value={fmtUsd(edge.cost_saved_usd)}
            sub={isNum(edge.loser_cost_usd) ? `losers still cost ${fmtUsd(edge.loser_cost_usd)}` : null}
            title="Estimated cost avoided by cancelling the losers of each race (what they would have cost had they run to the end)"
          />
        )}
      </div>
    </div>
  );
}
