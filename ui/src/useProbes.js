// React hook: polls the edge's /healthz, /readyz and /v1/models (relative URLs), with the
// admin key as Authorization on /v1/models when one is given (with edge/auth = on it needs a
// key; the health probes are open and get none).
import { useEffect, useState } from 'react';
import { authHeaders } from './auth.js';

async function probe(url, signal, headers) {
  try {
    const r = await fetch(url, { signal, cache: 'no-store', headers });
    return r.ok;
  } catch {
    return signal.aborted ? undefined : false;
  }
}

async function models(signal, headers) {
  try {
    const r = await fetch('/v1/models', { signal, cache: 'no-store', headers });
    if (!r.ok) return null;
    const body = await r.json();
    return Array.isArray(body?.data) ? body.data.filter((m) => m && typeof m.id === 'string') : null;
  } catch {
    return null;
  }
}

//  {healthz, readyz: true|false|undefined, models: [{id, aigw:{kind, workers}}]|null}.
export function useProbes(enabled = true, periodMs = 5000, adminKey = null) {
  const [state, setState] = useState({ healthz: undefined, readyz: undefined, models: null });
  useEffect(() => {
    if (!enabled) return undefined;
    const ctl = new AbortController();
    let timer = null;
    const headers = authHeaders(adminKey);
    const run = async () => {
      const [healthz, readyz, list] = await Promise.all([
        probe('/healthz', ctl.signal),
        probe('/readyz', ctl.signal),
        models(ctl.signal, headers),
      ]);
      if (ctl.signal.aborted) return;
      setState({ healthz, readyz, models: list });
      timer = setTimeout(run, periodMs);
    };
    run();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [enabled, periodMs, adminKey]);
  return state;
}
