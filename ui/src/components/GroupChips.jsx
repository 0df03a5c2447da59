// Model groups the edge reports as live in /v1/models (kind "group").
export default function GroupChips({ models }) {
  const groups = (models || []).filter((m) => m.aigw?.kind === 'group');
  if (groups.length === 0) return null;
  return (
    <div className="groups">
      <span className="muted">Groups</span>
      {groups.map((g) => (
        <span key={g.id} className="chip chip-group" title={`${g.aigw.workers ?? 0} workers behind its targets`}>
          {g.id}
        </span>
      ))}
    </div>
  );
}
