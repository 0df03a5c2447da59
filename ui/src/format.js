// Number and time formatting shared by the dashboard's components.

const ok = (v) => typeof v === 'number' && Number.isFinite(v);

//  Milliseconds, compact: "0.4 ms", "41 ms", "1.25 s". "–" when unknown.
export function fmtMs(v) {
  if (!ok(v)) return '–';
  if (v < 10) return `${v.toFixed(1)} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 10000) return `${(v / 1000).toFixed(2)} s`;
  return `${(v / 1000).toFixed(1)} s`;
}

//  A ratio 0..1 as a percentage: "9.5%", "100%". "–" when unknown.
export function fmtPct(v) {
  if (!ok(v)) return '–';
  const p = v * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  if (p < 10) return `${p.toFixed(1)}%`;
  return `${Math.round(p)}%`;
}

//  Counts: 950, 12.3k, 4.1M.
export function fmtCount(v) {
  if (!ok(v)) return '–';
  const a = Math.abs(v);
  if (a < 1000) return String(Math.round(v));
  if (a < 1e6) return `${(v / 1e3).toFixed(a < 1e4 ? 2 : 1)}k`;
  if (a < 1e9) return `${(v / 1e6).toFixed(a < 1e7 ? 2 : 1)}M`;
  return `${(v / 1e9).toFixed(1)}G`;
}

//  Requests per second: "35.2", "1.2k".
export function fmtRate(v) {
  if (!ok(v)) return '–';
  if (v < 100) return v.toFixed(1);
  return fmtCount(v);
}

//  Seconds as "42 s", "3 m 05 s", "2 h 04 m", "3 d 2 h".
export function fmtDuration(s) {
  if (!ok(s)) return '–';
  s = Math.max(0, Math.floor(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} m`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

//  How long ago a wall-clock ms timestamp was, relative to `now`: "now", "4 s ago".
export function fmtAgo(ts, now) {
  if (!ok(ts) || !ok(now)) return '';
  const s = Math.round((now - ts) / 1000);
  if (s <= 1) return 'now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} m ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

//  Wall-clock time of day "14:03:27".
export function fmtClock(ts) {
  if (!ok(ts)) return '';
  const d = new Date(ts);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':');
}

//  US dollars: "$0.0042", "$0.42", "$12.30", "$1,234.50", "$2.35M"; "$0.00" for zero,
//  "<$0.000001" for dust, "—" when unknown (the edge or broker did not report a cost).
export function fmtUsd(v) {
  if (!ok(v)) return '—';
  const sign = v < 0 ? '-' : '';
  const a = Math.abs(v);
  if (a === 0) return '$0.00';
  if (a < 0.000001) return `${sign}<$0.000001`;
  if (a < 1) {
    const decimals = Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(a))));
    return `${sign}$${a.toFixed(decimals)}`;
  }
  if (a < 1e6) return `${sign}$${a.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  return `${sign}$${(a / 1e6).toFixed(2)}M`;
}

//  Time left of a cooldown in ms: "4.2 s" below 10 s, "12 s" below a minute, then
//  "1 m 05 s" (whole seconds rounded up, so it never shows 0 before it is over).
export function fmtLeft(ms) {
  if (!ok(ms) || ms < 0) return '–';
  if (ms < 10000) return `${(Math.ceil(ms / 100) / 10).toFixed(1)} s`;
  const s = Math.ceil(ms / 1000);
  return s < 60 ? `${s} s` : fmtDuration(s);
}
