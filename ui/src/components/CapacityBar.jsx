// A horizontal gauge of used / capacity with the numbers beside it.
export default function CapacityBar({ used = 0, capacity = 0, label }) {
  const ratio = capacity > 0 ? Math.min(1, Math.max(0, used / capacity)) : 0;
  const tone = ratio >= 0.9 ? 'hot' : ratio >= 0.6 ? 'warm' : 'cool';
  return (
    <div className="capacity" title={label}>
      <div className="capacity-track" role="meter" aria-valuemin={0} aria-valuemax={capacity} aria-valuenow={used} aria-label={label}>
        <div className={`capacity-fill ${tone}`} style={{ width: `${ratio * 100}%` }} />
      </div>
      <span className="capacity-text num">
        {used} / {capacity}
      </span>
    </div>
  );
}
