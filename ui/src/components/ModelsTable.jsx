// Models table: per model status (derived), load, win rate, latency/TTFT percentiles, errors,
// savings, and cost / cost saved when the broker reports them.
import StatusPill from './StatusPill.jsx';
import Sparkline from './Sparkline.jsx';
import PercentileCells from './PercentileCells.jsx';
import WinRateBar from './WinRateBar.jsx';
import { deriveModels, modelSeries } from '../derive.js';
import { fmtCount, fmtPct, fmtUsd } from '../format.js';

const pick50 = (m) => m.latency_ms?.p50;
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

export default function ModelsTable({ metrics, history = [] }) {
  const rows = deriveModels(metrics, history);
  if (!metrics) return <div className="empty">Waiting for the broker’s metrics…</div>;
  if (rows.length === 0) return <div className="empty">The broker reports no models.</div>;
  //  The cost columns only when some model carries a cost (older brokers send none).
  const costs = rows.some((m) => isNum(m.cost_usd) || isNum(m.cost_saved_usd));
  return (
    <div className="table-wrap">
      <table className="models" data-testid="models-table">
        <thead>
          <tr className="group-head">
            <th colSpan={5} />
            <th colSpan={3} className="grp">Latency</th>
            <th colSpan={3} className="grp">Time to first token</th>
            <th colSpan={costs ? 6 : 4} />
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
            <th title="failed attempts / finished attempts over the last 30 s">Errors</th>
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
                <StatusPill status={m.status} />
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
              <td className={`num ${(m.errorRate ?? 0) > 0.1 ? 'bad' : ''}`} data-testid="model-errors" title={`${m.errors ?? 0} failed attempts in total`}>
                {fmtPct(m.errorRate)}
              </td>
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
