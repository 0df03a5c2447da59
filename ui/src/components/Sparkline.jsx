// A tiny SVG line chart of the newest `capacity` values, right-aligned so it scrolls left.
import { useId } from 'react';

export default function Sparkline({ values = [], capacity = 120, height = 28, color = 'var(--accent)', min = 0, max, label }) {
  const gradientId = useId();
  const data = values.slice(-capacity);
  const known = data.filter((v) => typeof v === 'number' && Number.isFinite(v));
  const top = max ?? Math.max(...known, min + 1e-9);
  const scale = top - min || 1;
  const offset = capacity - data.length;
  const pts = [];
  data.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return;
    const y = height - 2 - ((Math.min(Math.max(v, min), top) - min) / scale) * (height - 4);
    pts.push([offset + i, y]);
  });
  const line = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${x},${y.toFixed(2)}`).join('');
  const area = pts.length > 1 ? `${line}L${pts[pts.length - 1][0]},${height}L${pts[0][0]},${height}Z` : '';
  return (
    <svg
      className="sparkline"
      viewBox={`0 0 ${capacity - 1} ${height}`}
      preserveAspectRatio="none"
      role="img"
      aria-label={label || 'trend'}
      style={{ height }}
    >
      <defs>
        <linearGradient id={gradientId} x1="0" x2="0" y1="0" y2="1">
          <stop offset="0%" stopColor={color} stopOpacity="0.35" />
          <stop offset="100%" stopColor={color} stopOpacity="0" />
        </linearGradient>
      </defs>
      {area && <path d={area} fill={`url(#${gradientId})`} stroke="none" />}
      {pts.length > 1 && <path d={line} fill="none" stroke={color} strokeWidth="1.5" vectorEffect="non-scaling-stroke" strokeLinejoin="round" />}
    </svg>
  );
}
