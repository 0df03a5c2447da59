// A scripted fetch() for the SSE-over-fetch tests: each call is recorded with its URL,
// headers and abort signal, and answered by a handler; sseResponse() gives a response
// whose body the test feeds chunk by chunk.
const encoder = new TextEncoder();

//  A 200 text/event-stream response (or `status` / `contentType`) with a body the test
//  drives: push(text | Uint8Array), end(), fail(err). `cancelled` turns true when the
//  reader cancels; an abort of `signal` errors the body like a real fetch does.
export function sseResponse({ status = 200, contentType = 'text/event-stream', signal } = {}) {
  let ctl;
  const r = {
    cancelled: false,
    push(chunk) {
      ctl.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
    },
    end() {
      ctl.close();
    },
    fail(err = new TypeError('network error')) {
      ctl.error(err);
    },
  };
  const body = new ReadableStream({
    start(c) {
      ctl = c;
    },
    cancel() {
      r.cancelled = true;
    },
  });
  signal?.addEventListener('abort', () => {
    try {
      ctl.error(new DOMException('The operation was aborted.', 'AbortError'));
    } catch {
      /* already closed */
    }
  });
  r.response = { status, ok: status >= 200 && status < 300, headers: new Headers({ 'content-type': contentType }), body, text: async () => '' };
  return r;
}

//  An error response with an OpenAI-style JSON body, as the edge sends.
export function errorResponse(status, message, code = 'invalid_api_key', type = 'invalid_request_error') {
  const text = JSON.stringify({ error: { message, type, param: null, code } });
  return { status, ok: false, headers: new Headers({ 'content-type': 'application/json' }), body: null, text: async () => text };
}

//  fetch stand-in: handler(url, init, call) returns a response (or a promise, or throws).
//  calls[] holds {url, init, headers (lower-case keys), signal}.
export function makeFetch(handler) {
  const calls = [];
  const fn = async (url, init = {}) => {
    const headers = {};
    for (const [k, v] of Object.entries(init.headers || {})) headers[k.toLowerCase()] = v;
    const call = { url: String(url), init, headers, signal: init.signal };
    calls.push(call);
    return handler(String(url), init, call);
  };
  fn.calls = calls;
  return fn;
}

//  Resolves after pending promise callbacks and a macrotask have run.
export const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

//  Waits until `pred()` is truthy (polling), or throws after `timeout` ms.
export async function until(pred, timeout = 1000) {
  const end = Date.now() + timeout;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await tick(5);
  }
}
