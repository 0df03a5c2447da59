// Three table cells: p50, p95 and p99 of a {p50, p95, p99} object in ms.
import { fmtMs } from '../format.js';

export default function PercentileCells({ p }) {
  return (
    <>
      <td className="num pct p50">{fmtMs(p?.p50)}</td>
      <td className="num pct">{fmtMs(p?.p95)}</td>
      <td className="num pct p99">{fmtMs(p?.p99)}</td>
    </>
  );
}
