// Key to the race timeline's colours and marks.
export default function Legend() {
  return (
    <span className="legend" aria-label="legend">
      <span className="lg"><span className="lg-bar bar-won" />won</span>
      <span className="lg"><span className="lg-bar bar-cancelled" />cancelled</span>
      <span className="lg"><span className="lg-bar bar-failed" />failed</span>
      <span className="lg"><span className="lg-bar bar-pending" />pending</span>
      <span className="lg" title="not started: the model was cooling down after failures"><span className="lg-bar bar-skipped" />skipped</span>
      <span className="lg"><span className="lg-tick" />first token</span>
      <span className="lg"><span className="crown">★</span>winner</span>
    </span>
  );
}
