// A coloured dot and word for a status (healthy, degraded, down, up, stale…).
export default function StatusPill({ status, label }) {
  return (
    <span className={`pill pill-${status}`} data-status={status}>
      <span className="dot" aria-hidden="true" />
      {label ?? status}
    </span>
  );
}
