// Live request log: the newest jobs, each with its race timeline; can be paused to read.
import { useState } from 'react';
import JobRow from './JobRow.jsx';
import WinnerShare from './WinnerShare.jsx';

export default function RequestLog({ jobs = [] }) {
  const [frozen, setFrozen] = useState(null);
  const shown = frozen ?? jobs;
  const newer = frozen ? jobs.filter((j) => j._seq > (frozen[0]?._seq ?? 0)).length : 0;
  return (
    <div className="log" data-testid="request-log">
      {shown.length > 0 && (
        <div className="log-bar">
          <WinnerShare jobs={shown} />
          <button type="button" className={`btn ${frozen ? 'btn-on' : ''}`} onClick={() => setFrozen(frozen ? null : jobs)} data-testid="log-pause">
            {frozen ? `▶ resume${newer ? ` (${newer} new)` : ''}` : '❚❚ pause'}
          </button>
        </div>
      )}
      {shown.length === 0 && <div className="empty">No finished jobs yet. Send a request and watch it race.</div>}
      <div className="job-list">
        {shown.map((j) => (
          <JobRow key={j._seq ?? `${j.job_id}-${j.ts_ms}`} job={j} />
        ))}
      </div>
    </div>
  );
}
