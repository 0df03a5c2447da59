// Shown when the edge answers the metrics stream with 401/403 (edge/auth = on): asks for the
// admin key. The input is uncontrolled so the key never lands in a DOM attribute or React
// state; it is cleared as soon as it is handed over.
import { useEffect, useId, useRef, useState } from 'react';

export default function AdminKeyForm({ onSubmit, error, httpStatus }) {
  const id = useId();
  const input = useRef(null);
  const [empty, setEmpty] = useState(false);
  useEffect(() => {
    input.current?.focus();
  }, [error]);

  function submit(e) {
    e.preventDefault();
    const key = input.current?.value.trim() ?? '';
    if (!key) {
      setEmpty(true);
      input.current?.focus();
      return;
    }
    setEmpty(false);
    input.current.value = '';
    onSubmit(key);
  }

  const problem = empty ? 'Enter the admin key.' : error;
  return (
    <section className="keygate" data-testid="admin-key-form" data-http-status={httpStatus ?? undefined} aria-labelledby={`${id}-title`}>
      <form className="keygate-form" onSubmit={submit} noValidate>
        <h2 id={`${id}-title`}>Admin key required</h2>
        <p id={`${id}-help`} className="keygate-help">
          This edge runs with authentication on, so its live metrics need the admin key. The key is
          kept only for this browser tab (sessionStorage, gone when the tab closes) and sent as an
          Authorization header.
        </p>
        <label htmlFor={`${id}-key`}>Admin key</label>
        <div className="keygate-row">
          <input
            ref={input}
            id={`${id}-key`}
            name="admin-key"
            type="password"
            autoComplete="off"
            autoCapitalize="off"
            autoCorrect="off"
            spellCheck={false}
            aria-invalid={problem ? true : undefined}
            aria-describedby={`${id}-help${problem ? ` ${id}-error` : ''}`}
            data-testid="admin-key-input"
          />
          <button type="submit" className="btn btn-primary" data-testid="admin-key-submit">
            Connect
          </button>
        </div>
        {problem && (
          <p id={`${id}-error`} className="keygate-error" role="alert" data-testid="admin-key-error">
            {problem}
          </p>
        )}
      </form>
    </section>
  );
}
