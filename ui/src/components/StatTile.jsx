// One figure of the health header: a label, a big value, a caption and an optional sparkline.
import Sparkline from './Sparkline.jsx';

export default function StatTile({ label, value, sub, tone = 'neutral', series, color, testId, title }) {
  return (
    <div className={`tile tile-${tone}`} data-testid={testId} title={title}>
      <div className="tile-label">{label}</div>
      <div className="tile-value num">{value}</div>
      {sub && <div className="tile-sub">{sub}</div>}
      {series && (
        <div className="tile-spark">
          <Sparkline values={series} color={color} label={`${label} over the last 2 minutes`} />
        </div>
      )}
    </div>
  );
}
