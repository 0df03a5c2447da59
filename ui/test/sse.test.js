// SSE over fetch: the text/event-stream parser and the EventSource look-alike.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FetchEventSource, createSseParser } from '../src/sse.js';
import { createAigwStream } from '../src/stream.js';
import { errorResponse, makeFetch, sseResponse, tick, until } from './fakeFetch.js';
import { EDGE, METRICS } from './samples.js';

function parse(chunks) {
  const events = [];
  const retries = [];
  const p = createSseParser({ onEvent: (e) => events.push(e), onRetry: (ms) => retries.push(ms) });
  for (const c of chunks) p.push(c);
  return { events, retries, parser: p };
}

const compact = (events) => events.map((e) => [e.type, e.data, e.lastEventId]);

describe('createSseParser', () => {
  it('parses typed events and defaults the type to message', () => {
    const { events } = parse(['event: edge\ndata: {"rps":1}\n\ndata: plain\n\n']);
    expect(compact(events)).toEqual([
      ['edge', '{"rps":1}', ''],
      ['message', 'plain', ''],
    ]);
  });

  it('joins multi-line data with LF and drops only the last LF', () => {
    const { events } = parse(['event: job\ndata: {"a":\ndata: 1}\ndata:\n\n']);
    expect(events[0].data).toBe('{"a":\n1}\n');
    const { events: e2 } = parse(['data: one\ndata: two\n\n']);
    expect(e2[0].data).toBe('one\ntwo');
  });

  it('accepts CRLF, CR and LF line endings, mixed', () => {
    const { events } = parse(['event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n']);
    expect(compact(events)).toEqual([
      ['a', '1', ''],
      ['b', '2', ''],
      ['message', '3', ''],
    ]);
  });

  it('gives the same events however the stream is split into chunks', () => {
    const stream = ': hello\r\nretry: 1000\r\n\r\nevent: metrics\r\ndata: {"x":\r\ndata: 2}\r\nid: 7\r\n\r\nevent: edge\ndata: é ✓\n\n:keepalive\r\rdata:last\r\r';
    const whole = compact(parse([stream]).events);
    expect(whole).toEqual([
      ['metrics', '{"x":\n2}', '7'],
      ['edge', 'é ✓', '7'],
      ['message', 'last', '7'],
    ]);
    // one character at a time
    expect(compact(parse([...stream]).events)).toEqual(whole);
    // every split into two and three chunks
    for (let i = 0; i <= stream.length; i++) {
      expect(compact(parse([stream.slice(0, i), stream.slice(i)]).events)).toEqual(whole);
      const j = Math.min(stream.length, i + 7);
      expect(compact(parse([stream.slice(0, i), stream.slice(i, j), stream.slice(j)]).events)).toEqual(whole);
    }
  });

  it('treats a CRLF split across chunks as one line end', () => {
    // Were the LF read as an empty line, "a" and "b" would be two events.
    const { events } = parse(['data: a\r', '\ndata: b\n\n']);
    expect(compact(events)).toEqual([['message', 'a\nb', '']]);
    const { events: e2 } = parse(['data: a\r', '', '\n', '\r\n']);
    expect(compact(e2)).toEqual([['message', 'a', '']]);
  });

  it('ignores comments, unknown fields and events without data', () => {
    const { events } = parse([': comment\nfoo: bar\nevent: edge\n\nevent: job\nid\ndata\n\n']);
    // "event: edge" alone dispatches nothing and does not leak its type into the next event.
    expect(compact(events)).toEqual([['job', '', '']]);
  });

  it('strips one space after the colon, a BOM, and handles id and retry', () => {
    const { events, retries, parser } = parse(['\ufeffdata:x\n\ndata:  y\nid: 42\nretry: 250\nretry: 3s\n\nid: a\0b\ndata: z\n\n']);
    expect(compact(events)).toEqual([
      ['message', 'x', ''],
      ['message', ' y', '42'],
      ['message', 'z', '42'], // an id with NUL is ignored; the last one stays
    ]);
    expect(retries).toEqual([250]);
    expect(parser.lastEventId).toBe('42');
  });

  it('does not dispatch an event the stream cut off', () => {
    const { events, parser } = parse(['data: done\n\ndata: half']);
    expect(events).toHaveLength(1);
    expect(parser.pending).toBe('data: half');
  });
});

describe('FetchEventSource', () => {
  afterEach(() => vi.unstubAllGlobals());

  function source(handler, init = {}) {
    const fetch = makeFetch(handler);
    const es = new FetchEventSource('/v1/aigw/events', { fetch, ...init });
    const seen = [];
    for (const t of ['open', 'error', 'message', 'edge', 'metrics']) es.addEventListener(t, (ev) => seen.push(ev));
    return { es, fetch, seen };
  }

  it('sends the Authorization header, opens and dispatches events', async () => {
    let body;
    const { es, fetch, seen } = source(
      (url, init) => {
        body = sseResponse({ signal: init.signal });
        return body.response;
      },
      { headers: () => ({ Authorization: 'Bearer sk-admin-0123456789abcdef' }) },
    );
    expect(es.readyState).toBe(FetchEventSource.CONNECTING);
    await until(() => es.readyState === FetchEventSource.OPEN);
    expect(fetch.calls).toHaveLength(1);
    expect(fetch.calls[0].url).toBe('/v1/aigw/events');
    expect(fetch.calls[0].init.method).toBe('GET');
    expect(fetch.calls[0].headers.authorization).toBe('Bearer sk-admin-0123456789abcdef');
    expect(fetch.calls[0].headers.accept).toBe('text/event-stream');
    expect(es.status).toBe(200);

    const onmessage = vi.fn();
    es.onmessage = onmessage;
    body.push('retry: 1000\n\nevent: edge\ndata: {"rps"');
    body.push(':35.2}\n\ndata: hi\n');
    body.push(new Uint8Array([0x69, 0x64, 0x3a, 0x20, 0x39, 0x0a, 0x0a])); // "id: 9\n\n"
    await until(() => seen.length >= 3);
    expect(seen.map((e) => e.type)).toEqual(['open', 'edge', 'message']);
    expect(JSON.parse(seen[1].data)).toEqual({ rps: 35.2 });
    expect(seen[2]).toMatchObject({ data: 'hi', lastEventId: '9' });
    expect(onmessage).toHaveBeenCalledTimes(1);
    expect(es.lastEventId).toBe('9');
    expect(es.reconnectionTime).toBe(1000);
    es.close();
  });

  it('decodes UTF-8 split across chunks', async () => {
    let body;
    const { es, seen } = source((url, init) => (body = sseResponse({ signal: init.signal })).response);
    await until(() => es.readyState === 1);
    const bytes = new TextEncoder().encode('data: café ✓\n\n');
    for (const b of bytes) body.push(new Uint8Array([b]));
    await until(() => seen.length >= 2);
    expect(seen[1].data).toBe('café ✓');
    es.close();
  });

  it('reports the HTTP status and the edge error on 401, and closes', async () => {
    const onerror = vi.fn();
    const { es, seen } = source(() => errorResponse(401, 'the admin key is not correct'));
    es.onerror = onerror;
    await until(() => seen.length > 0);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ type: 'error', status: 401, message: 'the admin key is not correct', code: 'invalid_api_key' });
    expect(es.readyState).toBe(FetchEventSource.CLOSED);
    expect(es.status).toBe(401);
    expect(onerror).toHaveBeenCalledTimes(1);
    await tick(20);
    expect(seen).toHaveLength(1); // no reconnect by itself
  });

  it('tells a network error (status null) from an HTTP one', async () => {
    const { es, seen } = source(() => {
      throw new TypeError('Failed to fetch');
    });
    await until(() => seen.length > 0);
    expect(seen[0]).toMatchObject({ type: 'error', status: null });
    expect(seen[0].message).toMatch(/network error: Failed to fetch/);
    expect(es.readyState).toBe(2);
  });

  it('fails on a non-SSE content type, and when the stream ends or breaks', async () => {
    const html = source((url, init) => sseResponse({ contentType: 'text/html', signal: init.signal }).response);
    await until(() => html.seen.length > 0);
    expect(html.seen[0]).toMatchObject({ type: 'error', status: 200 });
    expect(html.seen[0].message).toMatch(/not an event stream/);

    let body;
    const ended = source((url, init) => (body = sseResponse({ signal: init.signal })).response);
    await until(() => ended.es.readyState === 1);
    body.push('data: a\n\ndata: cut');
    body.end();
    await until(() => ended.seen.some((e) => e.type === 'error'));
    expect(ended.seen.map((e) => e.type)).toEqual(['open', 'message', 'error']);
    expect(ended.seen[2].message).toBe('the stream ended');
    expect(ended.es.readyState).toBe(2);

    const broken = source((url, init) => (body = sseResponse({ signal: init.signal })).response);
    await until(() => broken.es.readyState === 1);
    body.fail(new TypeError('network changed'));
    await until(() => broken.seen.some((e) => e.type === 'error'));
    expect(broken.seen.at(-1)).toMatchObject({ status: null });
    expect(broken.seen.at(-1).message).toMatch(/connection lost/);
  });

  it('aborts the fetch on close, while connecting or reading, without an error event', async () => {
    // Pending request: the fetch is aborted and nothing is dispatched.
    const pending = source(
      (url, init) =>
        new Promise((resolve, reject) => init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))),
    );
    await tick();
    pending.es.close();
    expect(pending.fetch.calls[0].signal.aborted).toBe(true);
    expect(pending.es.readyState).toBe(2);
    await tick(10);
    expect(pending.seen).toEqual([]);

    // Open stream: the body is aborted, later data is not dispatched.
    let body;
    const open = source((url, init) => (body = sseResponse({ signal: init.signal })).response);
    await until(() => open.es.readyState === 1);
    open.es.close();
    expect(open.fetch.calls[0].signal.aborted).toBe(true);
    await tick(10);
    expect(() => body.push('data: late\n\n')).toThrow(); // the stream is gone
    expect(open.seen.map((e) => e.type)).toEqual(['open']);
  });

  it('uses globalThis.fetch by default', async () => {
    const fetch = makeFetch(() => errorResponse(403, 'no admin key set', 'admin_key_not_set', 'permission_error'));
    vi.stubGlobal('fetch', fetch);
    const es = new FetchEventSource('/x');
    const errors = [];
    es.addEventListener('error', (e) => errors.push(e));
    await until(() => errors.length > 0);
    expect(errors[0]).toMatchObject({ status: 403, code: 'admin_key_not_set' });
    expect(fetch.calls[0].headers.authorization).toBeUndefined();
  });
});

describe('createAigwStream over FetchEventSource', () => {
  it('stops retrying on 401, shows unauthorized, and recovers on reconnect with a key', async () => {
    let key = null;
    let body;
    const fetch = makeFetch((url, init, call) => {
      if (call.headers.authorization !== 'Bearer good-key-0123456789') return errorResponse(401, key ? 'the admin key is not correct' : 'this route needs the admin key');
      body = sseResponse({ signal: init.signal });
      return body.response;
    });
    const client = createAigwStream('/v1/aigw/events', {
      EventSourceImpl: FetchEventSource,
      eventSourceInit: () => ({ fetch, headers: key ? { Authorization: `Bearer ${key}` } : {} }),
      flushMs: 0, staleMs: 0, jitter: 0, backoffInitialMs: 5,
    });
    client.start();
    await until(() => client.getState().connection.status === 'unauthorized');
    expect(client.getState().connection).toMatchObject({ httpStatus: 401, lastError: 'this route needs the admin key', retryAt: null });
    await tick(40);
    expect(fetch.calls).toHaveLength(1); // no backoff retries with the same (missing) key

    key = 'wrong-key-0123456789';
    client.reconnect();
    await until(() => fetch.calls.length === 2 && client.getState().connection.status === 'unauthorized');
    expect(client.getState().connection.lastError).toBe('the admin key is not correct');

    key = 'good-key-0123456789';
    client.reconnect();
    await until(() => client.getState().connection.status === 'open');
    body.push(`event: metrics\ndata: ${JSON.stringify(METRICS)}\n\nevent: edge\ndata: ${JSON.stringify({ ...EDGE, cost_usd: 1.5 })}\n\n`);
    await until(() => client.getState().edge !== null);
    expect(client.getState().edge.cost_usd).toBe(1.5);
    expect(client.getState().metrics.models[0].name).toBe('fast-sim');
    expect(client.getState().connection.httpStatus).toBeNull();

    // A dropped stream is retried with backoff as before (not treated as auth).
    body.fail(new TypeError('reset'));
    await until(() => client.getState().connection.status === 'offline');
    expect(client.getState().connection.lastError).toMatch(/connection lost/);
    expect(client.getState().connection.httpStatus).toBeNull(); // a network error, not an HTTP one
    await until(() => fetch.calls.length === 4);
    await until(() => client.getState().connection.status === 'open');
    client.stop();
    expect(fetch.calls[3].signal.aborted).toBe(true);
  });

  it('backs off on other HTTP errors, saying which', async () => {
    const fetch = makeFetch(() => errorResponse(503, 'broker unavailable', 'unavailable', 'server_error'));
    const client = createAigwStream('/v1/aigw/events', {
      EventSourceImpl: FetchEventSource, eventSourceInit: { fetch }, flushMs: 0, staleMs: 0, jitter: 0, backoffInitialMs: 5,
    });
    client.start();
    await until(() => client.getState().connection.status === 'offline');
    expect(client.getState().connection).toMatchObject({ httpStatus: 503, lastError: 'HTTP 503: broker unavailable', failures: 1 });
    await until(() => fetch.calls.length >= 3);
    client.stop();
  });
});
