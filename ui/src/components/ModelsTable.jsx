// Models table: per model status (the broker's state, or derived), load, win rate,
// latency/TTFT percentiles, errors, savings, the breaker (window error rate, trips,
// skipped) and backups (retries, hedges) when the broker reports them, and cost / cost
// saved when it reports those.
import ModelStatus from './ModelStatus.jsx';
import Sparkline from './Sparkline.jsx';
import PercentileCells from './PercentileCells.jsx';
import WinRateBar from './WinRateBar.jsx';
import { deriveModels, hasHealth, modelSeries } from '../derive.js';
import { fmtCount, fmtPct, fmtUsd } from '../format.js';

const pick50 = (m) => m.latency_ms?.p50;
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const count = (v, one, many = `${one}s`) => `${fmtCount(v ?? 0)} ${(v ?? 0) === 1 ? one : many}`;

//  The derived error rate, with the broker's breaker-window rate below it when sent.
function ErrorsCell({ m, health }) {
  const rate = m.breakerErrorRate;
  return (
    <td className={`num ${(m.errorRate ?? 0) > 0.1 ? 'bad' : ''}`} data-testid="model-errors" title={`${m.errors ?? 0} failed attempts in total`}>
      {fmtPct(m.errorRate)}
      {health && (
        <span
          className={`health-sub ${(rate ?? 0) >= 0.1 ? 'bad' : ''}`}
          data-testid="model-window-errors"
          title="failed share of the outcomes in the broker's circuit-breaker window (it starts again at 0 when the breaker trips)"
        >
          {fmtPct(rate)} window
        </span>
      )}
    </td>
  );
}

//  Breaker trips and cooldown skips, then retries, hedges and budget refusals.
function ResilienceCell({ m }) {
  const refused = m.budget_refused ?? 0;
  const title = [
    `${m.trips ?? 0} times the circuit breaker opened (cooldowns)`,
    `${m.skipped ?? 0} starts skipped while cooling down`,
    `${m.retries ?? 0} retries started after a retryable failure`,
    `${m.hedges ?? 0} hedges (backups started by the hedge timer)`,
    `${refused} hedges or retries the hedge budget refused, this model paying`,
  ].join('\n');
  return (
    <td className="left health-cell" data-testid="model-resilience" title={title}>
      <span className="health-main">
        <span data-testid="model-trips" className={(m.trips ?? 0) > 0 ? 'warn' : ''}>{count(m.trips, 'trip')}</span>
        {' · '}
        <span data-testid="model-skipped">{fmtCount(m.skipped ?? 0)} skipped</span>
      </span>
      <span className="health-sub">
        <span data-testid="model-retries">{count(m.retries, 'retry', 'retries')}</span>
        {' · '}
        <span data-testid="model-hedges">{count(m.hedges, 'hedge')}</span>
      </span>
      {refused > 0 && (
        <span className="health-sub warn" data-testid="model-budget-refused">
          {fmtCount(refused)} refused by budget
        </span>
      )}
    </td>
  );
}

export default function ModelsTable({ metrics, history = [], receivedAt = null, now }) {
  const rows = deriveModels(metrics, history);
  if (!metrics) return <div className="empty">Waiting for the broker’s metrics…</div>;
  if (rows.length === 0) return <div className="empty">The broker reports no models.</div>;
  //  The cost columns only when some model carries a cost (older brokers send none).
  const costs = rows.some((m) => isNum(m.cost_usd) || isNum(m.cost_saved_usd));
  //  The breaker and backups only from a broker that reports them.
  const health = rows.some(hasHealth);
  return (
    <div className="table-wrap">
      <table className="models" data-testid="models-table">
        <thead>
          <tr className="group-head">
            <th colSpan={5} />
            <th colSpan={3} className="grp">Latency</th>
            <th colSpan={3} className="grp">Time to first token</th>
            <th colSpan={(costs ? 6 : 4) + (health ? 1 : 0)} />
          </tr>
          <tr>
            <th className="left">Model</th>
            <th className="left">Status</th>
            <th>Workers</th>
            <th>In flight</th>
            <th className="left">Win rate</th>
            <th>p50</th>
            <th>p95</th>
            <th>p99</th>
            <th>p50</th>
            <th>p95</th>
            <th>p99</th>
            <th title={`failed attempts / finished attempts over the last 30 s${health ? "; below: the broker's circuit-breaker window" : ''}`}>Errors</th>
            {health && (
              <th className="left" title="circuit-breaker trips and starts skipped while cooling; retries and hedges started, and those the hedge budget refused">
                Resilience
              </th>
            )}
            <th title="losing attempts cancelled">Cancelled</th>
            <th title="tokens not generated thanks to cancelling losers">Tokens saved</th>
            {costs && <th title="what this model's attempts cost since the broker started, cancelled losers included">Cost</th>}
            {costs && <th title="estimated cost avoided by cancelling this model's losing attempts">Saved</th>}
            <th className="left">p50 trend</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => (
            <tr key={m.name} data-testid={`model-row-${m.name}`} data-status={m.status} className={`status-${m.status}`}>
              <td className="left model-name">{m.name}</td>
              <td className="left" data-testid="model-status">
                <ModelStatus model={m} receivedAt={receivedAt} now={now} />
              </td>
              <td className="num">{m.workers ?? 0}</td>
              <td className="num">
                {m.in_flight ?? 0}
                {m.queued > 0 && <span className="queued"> +{m.queued} queued</span>}
              </td>
              <td className="left" data-testid="model-winrate">
                <WinRateBar value={m.winRate} />
              </td>
              <PercentileCells p={m.finished > 0 ? m.latency_ms : null} />
              <PercentileCells p={m.finished > 0 ? m.ttft_ms : null} />
              <ErrorsCell m={m} health={health} />
              {health && <ResilienceCell m={m} />}
              <td className="num">{fmtCount(m.cancelled ?? 0)}</td>
              <td className="num saved" title={`${m.tokens_wasted ?? 0} tokens wasted by losers before they were cancelled`}>
                {fmtCount(m.tokens_saved ?? 0)}
              </td>
              {costs && (
                <td className="num cost" data-testid="model-cost">
                  {fmtUsd(m.cost_usd)}
                </td>
              )}
              {costs && (
                <td className="num saved" data-testid="model-cost-saved">
                  {fmtUsd(m.cost_saved_usd)}
                </td>
              )}
              <td className="left trend">
                <Sparkline values={modelSeries(history, m.name, pick50)} capacity={60} height={20} color="var(--blue)" label={`${m.name} latency p50`} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
