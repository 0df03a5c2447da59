// edge/auth = on: the metrics stream answers 401 until the page presents the admin key.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import App from '../src/App.jsx';
import { ADMIN_KEY_STORAGE, authHeaders, clearAdminKey, getAdminKey, redact, setAdminKey } from '../src/auth.js';
import { errorResponse, makeFetch, sseResponse } from './fakeFetch.js';
import { EDGE, METRICS } from './samples.js';

const GOOD = 'sk-aigw-admin-0123456789abcdef';
const WRONG = 'sk-aigw-wrong-fedcba9876543210';

//  A fake edge with auth on: events and models want `Bearer GOOD`.
function authEdge() {
  const streams = [];
  const fetch = makeFetch((url, init, call) => {
    const ok = call.headers.authorization === `Bearer ${GOOD}`;
    const refuse = () => errorResponse(401, call.headers.authorization ? 'the admin key is not correct' : 'this route needs the admin key (Authorization: Bearer ...)');
    if (url === '/v1/aigw/events') {
      if (!ok) return refuse();
      const s = sseResponse({ signal: init.signal });
      streams.push(s);
      return s.response;
    }
    if (url === '/v1/models') {
      if (!ok) return refuse();
      return { ok: true, status: 200, json: async () => ({ data: [{ id: 'quick', aigw: { kind: 'group', workers: 2 } }] }) };
    }
    return { ok: true, status: 200, json: async () => ({}) };
  });
  return { fetch, streams, events: () => fetch.calls.filter((c) => c.url === '/v1/aigw/events') };
}

const frame = (type, data) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

function enterKey(key) {
  const form = screen.getByTestId('admin-key-form');
  const input = within(form).getByLabelText('Admin key');
  input.value = key;
  fireEvent.click(within(form).getByRole('button', { name: /connect/i }));
}

let consoleCalls;
beforeAll(() => {
  globalThis.IS_REACT_ACT_ENVIRONMENT = false; // the stream updates arrive on their own
});
afterAll(() => {
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
});
beforeEach(() => {
  sessionStorage.clear();
  consoleCalls = [];
  for (const m of ['log', 'info', 'warn', 'error', 'debug']) {
    vi.spyOn(console, m).mockImplementation((...args) => consoleCalls.push(args.map(String).join(' ')));
  }
});
afterEach(() => {
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

const leaks = (key) => [document.documentElement.outerHTML, window.location.href, ...consoleCalls].filter((t) => t.includes(key));

describe('admin key prompt', () => {
  it('asks for the key on 401, stores it for the tab, sends it, and forgets it', async () => {
    const edge = authEdge();
    vi.stubGlobal('fetch', edge.fetch);
    render(<App streamOptions={{ flushMs: 0, staleMs: 0 }} />);

    // 401 without a key: the form, no error yet.
    const form = await screen.findByTestId('admin-key-form');
    expect(screen.getByTestId('connection').dataset.status).toBe('unauthorized');
    expect(edge.events()[0].headers.authorization).toBeUndefined();
    const input = within(form).getByLabelText('Admin key');
    expect(input.getAttribute('type')).toBe('password');
    expect(form.textContent).toMatch(/only for this browser tab/);
    expect(screen.queryByTestId('admin-key-error')).toBeNull();
    expect(screen.queryByTestId('forget-key')).toBeNull();
    expect(screen.queryByTestId('models-table')).toBeNull();

    // An empty submit asks for the key and sends nothing.
    fireEvent.click(within(form).getByRole('button', { name: /connect/i }));
    expect(screen.getByTestId('admin-key-error').textContent).toMatch(/enter the admin key/i);
    expect(edge.events()).toHaveLength(1);

    // A wrong key: sent as a Bearer header, refused, dropped, the form again with an error.
    enterKey(WRONG);
    expect(sessionStorage.getItem(ADMIN_KEY_STORAGE)).toBe(WRONG);
    const err = await screen.findByTestId('admin-key-error');
    expect(err.textContent).toMatch(/did not accept that key/);
    expect(err.textContent).toMatch(/401/);
    expect(err.getAttribute('role')).toBe('alert');
    expect(edge.events()[1].headers.authorization).toBe(`Bearer ${WRONG}`);
    expect(sessionStorage.getItem(ADMIN_KEY_STORAGE)).toBeNull();
    expect(screen.getByLabelText('Admin key').getAttribute('aria-invalid')).toBe('true');
    expect(leaks(WRONG)).toEqual([]);

    // The right key: the stream opens and the data shows.
    enterKey(GOOD);
    await waitFor(() => expect(screen.getByTestId('connection').dataset.status).toBe('open'));
    expect(screen.queryByTestId('admin-key-form')).toBeNull();
    expect(sessionStorage.getItem(ADMIN_KEY_STORAGE)).toBe(GOOD);
    expect(edge.events()[2].headers.authorization).toBe(`Bearer ${GOOD}`);
    edge.streams[0].push(frame('metrics', METRICS) + frame('edge', { ...EDGE, cost_usd: 0.0042, cost_saved_usd: 0.0017 }));
    await screen.findByTestId('model-row-fast-sim');
    await waitFor(() => expect(screen.getByTestId('tile-cost').textContent).toContain('$0.0042'));
    // The probes send the key to /v1/models too.
    await waitFor(() => expect(edge.fetch.calls.some((c) => c.url === '/v1/models' && c.headers.authorization === `Bearer ${GOOD}`)).toBe(true));
    for (const c of edge.fetch.calls) {
      expect(c.url).not.toContain(GOOD);
      if (c.url === '/healthz' || c.url === '/readyz') expect(c.headers.authorization).toBeUndefined();
    }
    expect(leaks(GOOD)).toEqual([]);

    // Forget: cleared, the stream re-opened without it, the form again (no error).
    fireEvent.click(screen.getByTestId('forget-key'));
    expect(sessionStorage.getItem(ADMIN_KEY_STORAGE)).toBeNull();
    await screen.findByTestId('admin-key-form');
    expect(edge.events().at(-1).headers.authorization).toBeUndefined();
    expect(edge.fetch.calls.filter((c) => c.url === '/v1/aigw/events')[2].signal.aborted).toBe(true);
    expect(screen.queryByTestId('admin-key-error')).toBeNull();
    expect(screen.queryByTestId('forget-key')).toBeNull();
  });

  it('uses a key already kept in this tab without asking', async () => {
    const edge = authEdge();
    vi.stubGlobal('fetch', edge.fetch);
    sessionStorage.setItem(ADMIN_KEY_STORAGE, GOOD);
    render(<App streamOptions={{ flushMs: 0, staleMs: 0 }} />);
    await waitFor(() => expect(screen.getByTestId('connection').dataset.status).toBe('open'));
    expect(edge.events()[0].headers.authorization).toBe(`Bearer ${GOOD}`);
    expect(screen.queryByTestId('admin-key-form')).toBeNull();
    expect(screen.getByTestId('forget-key')).toBeTruthy();
  });

  it('shows the edge message on 403 (no admin key configured)', async () => {
    const fetch = makeFetch((url) =>
      url === '/v1/aigw/events'
        ? errorResponse(403, 'this route needs the admin key, and none is set: export AIGW_ADMIN_KEY before starting the edge', 'admin_key_not_set', 'permission_error')
        : { ok: true, status: 200, json: async () => ({}) },
    );
    vi.stubGlobal('fetch', fetch);
    render(<App streamOptions={{ flushMs: 0, staleMs: 0 }} />);
    const err = await screen.findByTestId('admin-key-error');
    expect(err.textContent).toMatch(/HTTP 403/);
    expect(err.textContent).toMatch(/AIGW_ADMIN_KEY/);
    expect(screen.getByTestId('admin-key-form').dataset.httpStatus).toBe('403');
  });

  it('leaves an edge with auth off as it was', async () => {
    const streams = [];
    const fetch = makeFetch((url, init) => {
      if (url !== '/v1/aigw/events') return { ok: true, status: 200, json: async () => ({ data: [] }) };
      const s = sseResponse({ signal: init.signal });
      streams.push(s);
      return s.response;
    });
    vi.stubGlobal('fetch', fetch);
    render(<App streamOptions={{ flushMs: 0, staleMs: 0 }} />);
    await waitFor(() => expect(screen.getByTestId('connection').dataset.status).toBe('open'));
    streams[0].push(frame('edge', EDGE));
    await waitFor(() => expect(screen.getByTestId('tile-rps').textContent).toContain('35.2'));
    expect(fetch.calls[0].headers.authorization).toBeUndefined();
    expect(screen.queryByTestId('admin-key-form')).toBeNull();
    expect(screen.queryByTestId('tile-cost')).toBeNull(); // this edge reports no cost
  });
});

describe('auth helpers', () => {
  it('keep the key in sessionStorage and build the header', () => {
    expect(getAdminKey()).toBeNull();
    expect(authHeaders()).toEqual({});
    setAdminKey(`  ${GOOD} `);
    expect(sessionStorage.getItem('aigw.adminKey')).toBe(GOOD);
    expect(authHeaders()).toEqual({ Authorization: `Bearer ${GOOD}` });
    clearAdminKey();
    expect(getAdminKey()).toBeNull();
    expect(localStorage.getItem('aigw.adminKey')).toBeNull();
    expect(redact(`bad ${GOOD}!`, GOOD)).toBe('bad •••!');
  });
});
