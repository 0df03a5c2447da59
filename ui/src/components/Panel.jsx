// A titled card of the dashboard grid.
export default function Panel({ title, meta, actions, className = '', children, ...rest }) {
  return (
    <section className={`panel ${className}`} {...rest}>
      <header className="panel-head">
        <h2>{title}</h2>
        {meta && <span className="panel-meta">{meta}</span>}
        {actions && <span className="panel-actions">{actions}</span>}
      </header>
      <div className="panel-body">{children}</div>
    </section>
  );
}
