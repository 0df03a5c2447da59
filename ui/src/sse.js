// Server-Sent Events over fetch(): a text/event-stream parser and an EventSource look-alike
// that can send request headers (EventSource cannot), so the dashboard can present the
// admin key as `Authorization: Bearer …` when the edge runs with edge/auth = on.
//
// Differences from the browser's EventSource, on purpose:
//  - it never reconnects by itself: every failure (HTTP status other than 200, a body that
//    is not text/event-stream, a network error, the stream ending) moves it to CLOSED and
//    fires one `error` event, and the stream client (src/stream.js) decides when to retry;
//  - the `error` event carries `status` (the HTTP status, or null for a network error),
//    `message` (the edge's OpenAI-style error.message when there is one) and `code`;
//    `source.status` keeps the last HTTP status too.

const LINE_END = /\r\n|\r|\n/g;
const DIGITS = /^[0-9]+$/;
const MAX_ERROR_BODY = 4096;
const MAX_MESSAGE = 300;

//  An incremental text/event-stream parser (the WHATWG "interpreting an event stream"
//  rules). push(text) takes decoded text in chunks of any size: lines and events may be
//  split anywhere, CRLF included. onEvent({type, data, lastEventId}) is called for each
//  complete event; onRetry(ms) for a valid `retry:` field. An event without a `data:` line
//  is not dispatched, and neither is an unterminated one at the end of the stream.
export function createSseParser({ onEvent, onRetry } = {}) {
  let buf = '';
  let first = true;
  let skipLF = false; // the previous chunk ended with CR: a LF opening the next one belongs to it
  let type = '';
  let data = '';
  let hasData = false;
  let idBuffer = '';
  let lastEventId = '';

  function dispatch() {
    lastEventId = idBuffer;
    if (hasData) {
      const ev = { type: type || 'message', data: data.endsWith('\n') ? data.slice(0, -1) : data, lastEventId };
      type = '';
      data = '';
      hasData = false;
      onEvent?.(ev);
    } else {
      type = '';
    }
  }

  function line(l) {
    if (l === '') return dispatch();
    if (l.charCodeAt(0) === 58) return; // ':' comment (keep-alive)
    const colon = l.indexOf(':');
    let field = l;
    let value = '';
    if (colon >= 0) {
      field = l.slice(0, colon);
      value = l.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    if (field === 'event') type = value;
    else if (field === 'data') {
      data += value + '\n';
      hasData = true;
    } else if (field === 'id') {
      if (!value.includes('\0')) idBuffer = value;
    } else if (field === 'retry') {
      if (DIGITS.test(value)) onRetry?.(Number(value));
    }
    // any other field is ignored
  }

  return {
    push(text) {
      if (!text) return;
      let s = String(text);
      if (first) {
        first = false;
        if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
      }
      if (skipLF) {
        skipLF = false;
        if (s.charCodeAt(0) === 10) s = s.slice(1);
      }
      buf += s;
      let start = 0;
      LINE_END.lastIndex = 0;
      let m;
      while ((m = LINE_END.exec(buf)) !== null) {
        if (m[0] === '\r' && m.index === buf.length - 1) skipLF = true;
        line(buf.slice(start, m.index));
        start = m.index + m[0].length;
      }
      buf = buf.slice(start);
    },
    //  The text of an unterminated line still waiting for its end (for tests).
    get pending() {
      return buf;
    },
    get lastEventId() {
      return lastEventId;
    },
  };
}

//  The OpenAI-style error.message of an error response, else its text, shortened.
async function errorMessage(res) {
  let text = '';
  try {
    text = String(await res.text()).slice(0, MAX_ERROR_BODY);
  } catch {
    return { message: null, code: null };
  }
  try {
    const body = JSON.parse(text);
    const e = body && typeof body === 'object' ? body.error : null;
    if (e && typeof e === 'object') {
      return {
        message: typeof e.message === 'string' ? e.message.slice(0, MAX_MESSAGE) : null,
        code: typeof e.code === 'string' ? e.code : null,
      };
    }
  } catch {
    /* not JSON */
  }
  return { message: text.trim().slice(0, MAX_MESSAGE) || null, code: null };
}

function headerOf(res, name) {
  const h = res?.headers;
  if (!h) return null;
  if (typeof h.get === 'function') return h.get(name);
  const k = Object.keys(h).find((x) => x.toLowerCase() === name);
  return k ? h[k] : null;
}

function report(err) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
  else setTimeout(() => {
    throw err;
  });
}

//  An EventSource-compatible class over fetch() + ReadableStream.
//  new FetchEventSource(url, {headers, withCredentials, fetch}): `headers` is an object
//  (or a function returning one, called once per connection); `fetch` replaces
//  globalThis.fetch (tests).
export class FetchEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  constructor(url, init = {}) {
    this.url = String(url);
    this.withCredentials = !!init?.withCredentials;
    this.readyState = FetchEventSource.CONNECTING;
    this.status = null;
    this.lastEventId = '';
    this.reconnectionTime = null; // the last `retry:` the server sent (not acted on)
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this._listeners = new Map();
    this._ctl = typeof AbortController === 'function' ? new AbortController() : null;
    const fetchImpl = init?.fetch || globalThis.fetch;
    const extra = typeof init?.headers === 'function' ? init.headers() : init?.headers;
    const headers = { Accept: 'text/event-stream', ...(extra || {}) };
    this._run(fetchImpl, headers);
  }

  get CONNECTING() {
    return 0;
  }

  get OPEN() {
    return 1;
  }

  get CLOSED() {
    return 2;
  }

  addEventListener(type, fn) {
    if (typeof fn !== 'function' && typeof fn?.handleEvent !== 'function') return;
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
  }

  removeEventListener(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  dispatchEvent(ev) {
    for (const fn of [...(this._listeners.get(ev.type) || [])]) {
      try {
        if (typeof fn === 'function') fn.call(this, ev);
        else fn.handleEvent(ev);
      } catch (err) {
        report(err);
      }
    }
    const prop = this[`on${ev.type}`];
    if ((ev.type === 'open' || ev.type === 'message' || ev.type === 'error') && typeof prop === 'function') {
      try {
        prop.call(this, ev);
      } catch (err) {
        report(err);
      }
    }
    return true;
  }

  //  Stops for good: aborts the request (or the body being read). No event is fired.
  close() {
    if (this.readyState === FetchEventSource.CLOSED && this._closed) return;
    this._closed = true;
    this.readyState = FetchEventSource.CLOSED;
    try {
      this._ctl?.abort();
    } catch {
      /* already aborted */
    }
  }

  _fail(status, message, code = null) {
    if (this._closed) return;
    this._closed = true;
    this.readyState = FetchEventSource.CLOSED;
    try {
      this._ctl?.abort();
    } catch {
      /* already aborted */
    }
    this.dispatchEvent({ type: 'error', target: this, status, message, code });
  }

  async _run(fetchImpl, headers) {
    let res;
    try {
      if (typeof fetchImpl !== 'function') throw new Error('fetch() is not available');
      res = await fetchImpl(this.url, {
        method: 'GET',
        headers,
        cache: 'no-store',
        credentials: this.withCredentials ? 'include' : 'same-origin',
        signal: this._ctl?.signal,
      });
    } catch (err) {
      if (!this._closed) this._fail(null, `network error${err?.message ? `: ${err.message}` : ''}`);
      return;
    }
    if (this._closed) return cancelBody(res);
    this.status = res.status;
    if (res.status !== 200) {
      const { message, code } = await errorMessage(res);
      return this._fail(res.status, message || `HTTP ${res.status}`, code);
    }
    const type = headerOf(res, 'content-type') || '';
    if (!/^text\/event-stream\b/i.test(type)) {
      cancelBody(res);
      return this._fail(res.status, `not an event stream (${type || 'no content type'})`);
    }
    if (!res.body || typeof res.body.getReader !== 'function') return this._fail(res.status, 'response has no readable body');

    const reader = res.body.getReader();
    const decoder = new TextDecoder('utf-8');
    const parser = createSseParser({
      onEvent: (ev) => {
        if (this._closed) return;
        this.lastEventId = ev.lastEventId;
        this.dispatchEvent({ type: ev.type, data: ev.data, lastEventId: ev.lastEventId, origin: originOf(this.url), target: this });
      },
      onRetry: (ms) => {
        this.reconnectionTime = ms;
      },
    });
    this.readyState = FetchEventSource.OPEN;
    this.dispatchEvent({ type: 'open', target: this });
    try {
      for (;;) {
        if (this._closed) break;
        const { done, value } = await reader.read();
        if (this._closed) break;
        if (done) {
          parser.push(decoder.decode());
          this._fail(res.status, 'the stream ended');
          break;
        }
        parser.push(typeof value === 'string' ? value : decoder.decode(value, { stream: true }));
      }
    } catch (err) {
      if (!this._closed) this._fail(null, `connection lost${err?.message ? `: ${err.message}` : ''}`);
    } finally {
      if (this._closed) reader.cancel?.().catch?.(() => {});
    }
  }
}

function cancelBody(res) {
  try {
    res?.body?.cancel?.().catch?.(() => {});
  } catch {
    /* nothing to cancel */
  }
}

function originOf(url) {
  try {
    return new URL(url, globalThis.location?.href).origin;
  } catch {
    return '';
  }
}
