#!/usr/bin/env python3
"""Scriptable fake LLM upstream for aigw integration tests and benchmarks.

Speaks the OpenAI Chat Completions, Anthropic Messages and Ollama /api/chat wire
formats over plain HTTP/1.1 (asyncio streams, stdlib only). Behaviour per request is
chosen by the request's "model" through a script table; every connection and request
is recorded (CLOCK_MONOTONIC nanoseconds) so a test can prove when a client went away.
See README.md next to this file for the CLI, script fields and control API.
"""

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import sys
import time
import traceback

MAX_BODY = 8 * 1024 * 1024
MAX_HEAD = 64 * 1024
READ_SIZE = 65536
# Stop reading ahead (pipelined bytes) while waiting once this much is buffered.
MAX_BUFFERED = MAX_BODY + MAX_HEAD

mono = time.monotonic_ns
_enc = json.JSONEncoder(separators=(",", ":"))
dumps = _enc.encode

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
    422: "Unprocessable Entity", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 529: "Overloaded",
}

OPENAI_ERR_TYPES = {
    400: "invalid_request_error", 401: "invalid_request_error",
    403: "permission_error", 404: "invalid_request_error",
    413: "invalid_request_error", 429: "rate_limit_error",
}
ANTHROPIC_ERR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}

GARBAGE = b"<html><body>502 this is not JSON {{{ ]]]</body></html>\n"

WORD_RE = re.compile(r"\s*\S+")

OPENAI_PATHS = ("/v1/chat/completions", "/chat/completions")
ANTHROPIC_PATHS = ("/v1/messages",)
OLLAMA_PATHS = ("/api/chat",)


_NUM = (int, float)
SCRIPT_FIELDS = {
    "latency_ms": _NUM, "status": int, "text": str, "token_interval_ms": _NUM,
    "stall": bool, "cut_after_chunks": int, "stall_after_chunks": int,
    "garbage": bool, "body_bytes": int, "headers": dict, "error_message": str,
    "error_type": str, "error_code": str, "retry_after": str, "fail_first": int,
    "body": str, "stream_body": list, "close_delimited": bool, "stall_after_bytes": int,
    "echo": bool,
}

# Counters that POST /_control/wait can wait for (outcomes as in the request log).
OUTCOMES = ("completed", "client_closed", "cut", "stalled_closed", "aborted")
COUNTERS = ("connections", "closed_connections", "requests") + OUTCOMES

# Futures of the /_control/wait requests in progress: notify() wakes them all whenever
# a connection or request record changes, and each checks its condition again.
WAITERS = set()


def notify():
    for f in WAITERS:
        if not f.done():
            f.set_result(None)


def check_script(table, allow_null=False):
    """Raise ValueError unless `table` is a valid script table."""
    if not isinstance(table, dict):
        raise ValueError("script must be a JSON object {model: entry}")
    for model, e in table.items():
        if e is None and allow_null:
            continue
        if not isinstance(e, dict):
            raise ValueError("entry %r must be an object" % model)
        for k, v in e.items():
            want = SCRIPT_FIELDS.get(k)
            if want is None:
                raise ValueError("entry %r: unknown field %r (known: %s)"
                                 % (model, k, ", ".join(sorted(SCRIPT_FIELDS))))
            if v is not None and (not isinstance(v, want)
                                  or (want is not bool and isinstance(v, bool))):
                raise ValueError("entry %r: field %r has the wrong type" % (model, k))
        ra = e.get("retry_after")
        if ra is not None and ("\r" in ra or "\n" in ra):
            raise ValueError("entry %r: retry_after must be one header line" % model)
        st = e.get("status")
        if st is not None and not 100 <= st <= 599:
            raise ValueError("entry %r: status out of range" % model)
        ff = e.get("fail_first")
        if ff is not None:
            if ff < 1:
                raise ValueError("entry %r: fail_first must be >= 1" % model)
            if st is None or st == 200:
                raise ValueError("entry %r: fail_first needs a status to fail with" % model)
        sb = e.get("stream_body")
        if sb is not None and not all(isinstance(p, str) and p for p in sb):
            raise ValueError("entry %r: stream_body must be a list of non-empty strings" % model)
        sab = e.get("stall_after_bytes")
        if sab is not None and sab < 0:
            raise ValueError("entry %r: stall_after_bytes must be >= 0" % model)


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class State:
    def __init__(self, script, require_key, log_max):
        self.script = script
        # requests served so far per script key whose entry has fail_first; a key's
        # count is dropped when PUT or PATCH replaces (or deletes) its entry
        self.fail_counts = {}
        self.require_key = require_key
        self.conns = collections.deque(maxlen=log_max)
        self.reqs = collections.deque(maxlen=log_max)
        self.next_conn = 1
        self.next_req = 1
        self.tasks = set()
        # ids of connections that so far carried only control requests:
        # they are left out of the log
        self.ctl_conns = set()

    def lookup(self, model):
        s = self.script
        e = s.get(model) if isinstance(model, str) else None
        key = model
        if e is None:
            e, key = s.get("*"), "*"
        e = e or {}
        ff = e.get("fail_first")
        if ff is not None:
            n = self.fail_counts.get(key, 0)
            self.fail_counts[key] = n + 1
            if n >= ff:
                # done failing: as if status (and its retry_after) were not set
                e = {k: v for k, v in e.items() if k not in ("status", "retry_after")}
        return e


def split_words(text):
    words = WORD_RE.findall(text)
    if not words:
        return [text] if text else []
    tail = len(text) - sum(len(w) for w in words)
    if tail:
        words[-1] += text[len(text) - tail:]
    return words


def count_prompt_tokens(data):
    n = 0

    def add(c):
        nonlocal n
        if isinstance(c, str):
            n += len(c.split())
        elif isinstance(c, list):
            for part in c:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    n += len(part["text"].split())

    msgs = data.get("messages")
    if isinstance(msgs, list):
        for m in msgs:
            if isinstance(m, dict):
                add(m.get("content"))
    add(data.get("system"))
    add(data.get("prompt"))
    return max(n, 1)


def chunk(b):
    return b"%x\r\n%s\r\n" % (len(b), b)


def head_bytes(status, ctype, length, keep, extra=None):
    """A response head. length None: chunked; -1: no length, the body ends at the close."""
    h = "HTTP/1.1 %d %s\r\nServer: fakeup\r\nContent-Type: %s\r\n" % (
        status, REASONS.get(status, "Status"), ctype)
    if length is None:
        h += "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
    elif length >= 0:
        h += "Content-Length: %d\r\n" % length
    if not keep:
        h += "Connection: close\r\n"
    if extra:
        for k, v in extra.items():
            h += "%s: %s\r\n" % (k, v)
    return (h + "\r\n").encode("latin-1")


class Conn:
    __slots__ = ("state", "reader", "writer", "transport", "buf", "eof",
                 "read_task", "rec", "cur")

    def __init__(self, state, reader, writer):
        self.state = state
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.buf = bytearray()
        self.eof = False
        self.read_task = None
        self.cur = None  # request record being served
        peer = writer.get_extra_info("peername")
        if isinstance(peer, tuple):
            peer = "%s:%s" % (peer[0], peer[1])
        self.rec = {"id": state.next_conn, "opened_ns": mono(), "closed_ns": None,
                    "closed_by": None, "peer": peer}
        state.next_conn += 1
        state.conns.append(self.rec)
        notify()

    # ---- reading -----------------------------------------------------------

    def _mark_eof(self):
        self.eof = True
        if self.rec["closed_ns"] is None:
            self.rec["closed_ns"] = mono()
            self.rec["closed_by"] = "client"
            notify()

    async def fill(self):
        """Read more bytes into buf. False on EOF / reset."""
        if self.eof:
            return False
        t = self.read_task
        try:
            if t is not None:
                self.read_task = None
                data = await t
            else:
                data = await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self._mark_eof()
            return False
        self.buf += data
        return True

    async def wait(self, delay):
        """Sleep `delay` seconds (None = forever) while watching the socket.

        Returns True as soon as the client closes the connection (EOF/reset).
        Bytes that arrive meanwhile (pipelined requests) are kept in buf.
        """
        if self.eof:
            return True
        if delay is not None and delay <= 0:
            return False
        loop = asyncio.get_running_loop()
        deadline = None if delay is None else loop.time() + delay
        while True:
            timeout = None
            if deadline is not None:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    return False
            if len(self.buf) >= MAX_BUFFERED:
                # Do not read ahead without bound; just sleep.
                if timeout is None:
                    await asyncio.Event().wait()  # until cancelled at shutdown
                else:
                    await asyncio.sleep(timeout)
                return False
            t = self.read_task
            if t is None:
                t = self.read_task = loop.create_task(self.reader.read(READ_SIZE))
            done, _ = await asyncio.wait((t,), timeout=timeout)
            if not done:
                return False  # keep the pending read for next time
            self.read_task = None
            try:
                data = t.result()
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self._mark_eof()
                return True
            self.buf += data

    async def read_request(self):
        """Return (method, path, headers, body, keep, head) or None on clean EOF."""
        buf = self.buf
        while True:
            # tolerate stray CRLFs between requests
            while buf[:2] == b"\r\n":
                del buf[:2]
            idx = buf.find(b"\r\n\r\n")
            if idx >= 0:
                break
            if len(buf) > MAX_HEAD:
                raise HttpError(431, "request head too large")
            if not await self.fill():
                return None
        head = bytes(buf[:idx])
        del buf[:idx + 4]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise HttpError(400, "bad request line")
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            k, sep, v = line.partition(b":")
            if not sep:
                raise HttpError(400, "bad header line")
            headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        conn_hdr = headers.get("connection", "").lower()
        if version == b"HTTP/1.1":
            keep = "close" not in conn_hdr
        else:
            keep = "keep-alive" in conn_hdr
        te = headers.get("transfer-encoding")
        if te and "chunked" in te.lower():
            if headers.get("expect", "").lower() == "100-continue":
                self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await self._read_chunked()
            if body is None:
                return None
        else:
            cl = headers.get("content-length")
            try:
                n = int(cl) if cl else 0
            except ValueError:
                raise HttpError(400, "bad content-length")
            if n < 0:
                raise HttpError(400, "bad content-length")
            if n > MAX_BODY:
                raise HttpError(413, "request body too large (max %d bytes)" % MAX_BODY)
            if n and len(buf) < n and headers.get("expect", "").lower() == "100-continue":
                self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            while len(buf) < n:
                if not await self.fill():
                    return None
            body = bytes(buf[:n])
            del buf[:n]
        path = target.decode("latin-1").split("?", 1)[0]
        return method.decode("latin-1"), path, headers, body, keep, head

    async def _read_chunked(self):
        buf = self.buf
        out = bytearray()
        while True:
            while True:
                i = buf.find(b"\r\n")
                if i >= 0:
                    break
                if len(buf) > MAX_HEAD:
                    raise HttpError(400, "bad chunk")
                if not await self.fill():
                    return None
            try:
                size = int(bytes(buf[:i]).split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "bad chunk size")
            del buf[:i + 2]
            if size == 0:
                # trailers until empty line
                while True:
                    while True:
                        i = buf.find(b"\r\n")
                        if i >= 0:
                            break
                        if len(buf) > MAX_HEAD:
                            raise HttpError(400, "bad trailer")
                        if not await self.fill():
                            return None
                    line = bytes(buf[:i])
                    del buf[:i + 2]
                    if not line:
                        return bytes(out)
            if len(out) + size > MAX_BODY:
                raise HttpError(413, "request body too large (max %d bytes)" % MAX_BODY)
            while len(buf) < size + 2:
                if not await self.fill():
                    return None
            out += buf[:size]
            del buf[:size + 2]

    async def discard(self, secs):
        """After an early error reply: read and drop input until EOF or `secs`,
        so that closing does not reset the connection before the client read it."""
        loop = asyncio.get_running_loop()
        end = loop.time() + secs
        t = self.read_task
        self.read_task = None
        while True:
            rem = end - loop.time()
            if rem <= 0:
                if t is not None:
                    t.cancel()
                return
            if t is None:
                t = loop.create_task(self.reader.read(READ_SIZE))
            done, _ = await asyncio.wait((t,), timeout=rem)
            if not done:
                continue
            try:
                data = t.result()
            except (ConnectionError, OSError):
                data = b""
            t = None
            if not data:
                self._mark_eof()
                return

    # ---- writing / closing --------------------------------------------------

    def close(self, by="server"):
        if self.rec["closed_ns"] is None:
            self.rec["closed_ns"] = mono()
            self.rec["closed_by"] = by
            notify()
        t = self.read_task
        if t is not None:
            self.read_task = None
            t.cancel()
        try:
            self.transport.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Response bodies per API


def error_body(api, status, message, etype=None, code=None):
    """The API's error JSON. `code`: OpenAI's error.code, Anthropic's error.type
    (it wins over `etype`); Ollama has none."""
    if api == "anthropic":
        etype = code or etype or ANTHROPIC_ERR_TYPES.get(status, "api_error")
        return dumps({"type": "error", "error": {"type": etype, "message": message}})
    if api == "ollama":
        return dumps({"error": message})
    etype = etype or OPENAI_ERR_TYPES.get(status, "server_error")
    return dumps({"error": {"message": message, "type": etype, "param": None,
                            "code": code}})


class Reply:
    """Everything needed to render one LLM reply, independent of API."""
    __slots__ = ("api", "rid", "model", "text", "words", "ptok", "ctok",
                 "created", "include_usage", "t0")

    def __init__(self, api, rid, model, text, ptok, include_usage):
        self.api = api
        self.rid = rid
        self.model = model
        self.text = text
        self.words = split_words(text)
        self.ptok = ptok
        self.ctok = len(self.words)
        self.created = int(time.time())
        self.include_usage = include_usage
        self.t0 = mono()

    # non-streaming -----------------------------------------------------------

    def full(self):
        if self.api == "anthropic":
            return dumps({
                "id": "msg_fake%08d" % self.rid, "type": "message", "role": "assistant",
                "model": self.model, "content": [{"type": "text", "text": self.text}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": self.ptok, "output_tokens": self.ctok}})
        if self.api == "ollama":
            d = self._ollama_final()
            d["message"]["content"] = self.text
            return dumps(d)
        return dumps({
            "id": "chatcmpl-fake%08d" % self.rid, "object": "chat.completion",
            "created": self.created, "model": self.model,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": self.text},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": self.ptok, "completion_tokens": self.ctok,
                      "total_tokens": self.ptok + self.ctok}})

    # streaming ---------------------------------------------------------------

    def ctype(self):
        return "application/x-ndjson" if self.api == "ollama" else "text/event-stream"

    def stream_parts(self):
        """Return (pieces, tail): pieces[i] is the wire text carrying word i
        (the first one also carries any preamble); tail ends the stream."""
        api = self.api
        words = self.words or [""]
        if api == "openai":
            pre = ('data: {"id":"chatcmpl-fake%08d","object":"chat.completion.chunk",'
                   '"created":%d,"model":%s,"choices":[{"index":0,"delta":{'
                   % (self.rid, self.created, dumps(self.model)))
            usage_null = ',"usage":null' if self.include_usage else ""
            pieces = []
            for i, w in enumerate(words):
                role = '"role":"assistant",' if i == 0 else ""
                pieces.append('%s%s"content":%s},"logprobs":null,"finish_reason":null}]%s}\n\n'
                              % (pre, role, dumps(w), usage_null))
            tail = '%s},"logprobs":null,"finish_reason":"stop"}]%s}\n\n' % (pre, usage_null)
            if self.include_usage:
                tail += ('data: {"id":"chatcmpl-fake%08d","object":"chat.completion.chunk",'
                         '"created":%d,"model":%s,"choices":[],"usage":{"prompt_tokens":%d,'
                         '"completion_tokens":%d,"total_tokens":%d}}\n\n'
                         % (self.rid, self.created, dumps(self.model), self.ptok,
                            self.ctok, self.ptok + self.ctok))
            tail += "data: [DONE]\n\n"
            return pieces, tail
        if api == "anthropic":
            start = {"type": "message_start", "message": {
                "id": "msg_fake%08d" % self.rid, "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": self.ptok, "output_tokens": 1}}}
            preamble = ("event: message_start\ndata: %s\n\n"
                        "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                        "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
                        % dumps(start))
            pieces = []
            for i, w in enumerate(words):
                p = ('event: content_block_delta\ndata: {"type":"content_block_delta",'
                     '"index":0,"delta":{"type":"text_delta","text":%s}}\n\n' % dumps(w))
                pieces.append(preamble + p if i == 0 else p)
            tail = ('event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
                    'event: message_delta\ndata: {"type":"message_delta","delta":'
                    '{"stop_reason":"end_turn","stop_sequence":null},'
                    '"usage":{"output_tokens":%d}}\n\n'
                    'event: message_stop\ndata: {"type":"message_stop"}\n\n' % self.ctok)
            return pieces, tail
        # ollama
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(self.created))
        pre = '{"model":%s,"created_at":"%s","message":{"role":"assistant","content":' % (
            dumps(self.model), ts)
        pieces = ['%s%s},"done":false}\n' % (pre, dumps(w)) for w in words]
        return pieces, dumps(self._ollama_final()) + "\n"

    def _ollama_final(self):
        dur = max(mono() - self.t0, 1)
        return {"model": self.model,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                            time.gmtime(self.created)),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "stop", "done": True, "total_duration": dur,
                "load_duration": 0, "prompt_eval_count": self.ptok,
                "prompt_eval_duration": dur // 2, "eval_count": self.ctok,
                "eval_duration": dur // 2}


# ---------------------------------------------------------------------------
# Request handling


def finish(rec, outcome, status):
    rec["finished_ns"] = mono()
    rec["outcome"] = outcome
    rec["status"] = status
    notify()


def send(conn, rec, data):
    if rec is not None and rec["first_byte_ns"] is None:
        rec["first_byte_ns"] = mono()
    conn.writer.write(data)


async def serve_llm(conn, api, method, headers, body, keep, head):
    """Serve one LLM request. Returns True if the connection may be reused."""
    state = conn.state
    rec = {"id": state.next_req, "conn_id": conn.rec["id"], "api": api, "model": None,
           "stream": False, "started_ns": mono(), "first_byte_ns": None,
           "first_chunk_ns": None, "finished_ns": None, "outcome": None, "status": None,
           "auth": "authorization" in headers, "xkey": "x-api-key" in headers,
           "body": body, "head": head}
    # NB: records hold only atomic values (raw head and body bytes, not the parsed
    # dict) so CPython's GC untracks them: a long log then costs no GC time.
    state.next_req += 1
    state.reqs.append(rec)
    conn.cur = rec
    if state.ctl_conns:
        state.ctl_conns.discard(rec["conn_id"])
    notify()
    writer = conn.writer

    def simple(status, payload, ctype="application/json", extra=None):
        b = payload.encode() if isinstance(payload, str) else payload
        send(conn, rec, head_bytes(status, ctype, len(b), keep, extra) + b)
        finish(rec, "completed", status)

    if method != "POST":
        simple(405, error_body(api, 405, "method not allowed"))
        return keep
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as e:
        simple(400, error_body(api, 400, "invalid JSON body: %s" % e))
        return keep
    model = data.get("model")
    rec["model"] = model
    if api == "ollama":
        stream = data.get("stream", True) is not False
    else:
        stream = data.get("stream") is True
    rec["stream"] = stream

    key = state.require_key
    if key is not None:
        if api == "openai" and headers.get("authorization") != "Bearer " + key:
            simple(401, dumps({"error": {
                "message": "Incorrect API key provided.", "type": "invalid_request_error",
                "param": None, "code": "invalid_api_key"}}))
            return keep
        if api == "anthropic" and headers.get("x-api-key") != key:
            simple(401, error_body(api, 401, "invalid x-api-key"))
            return keep

    e = state.lookup(model)
    latency = (e.get("latency_ms") or 0) / 1000.0
    status = int(e.get("status") or 200)
    extra = dict(e.get("headers") or {})
    if e.get("retry_after") is not None:
        extra["Retry-After"] = e["retry_after"]

    if e.get("stall"):
        await conn.wait(None)
        finish(rec, "stalled_closed", None)
        return False

    model_s = model if isinstance(model, str) else str(model)
    if status != 200 or e.get("garbage") or not stream:
        if latency and await conn.wait(latency):
            finish(rec, "client_closed", None)
            return False
        ctype = "application/json"
        if e.get("body") is not None:
            payload = e["body"]
        elif status != 200:
            msg = e.get("error_message") or "scripted error %d from fake upstream" % status
            payload = error_body(api, status, msg, e.get("error_type"), e.get("error_code"))
        elif e.get("garbage"):
            payload = GARBAGE
            ctype = "text/event-stream" if stream else "application/json"
        else:
            text = _reply_text(e, model_s, data)
            r = Reply(api, rec["id"], model_s, text, count_prompt_tokens(data), False)
            payload = r.full()
        return await _reply_whole(conn, rec, e, status, ctype, payload, keep, extra)

    # ---- streaming ----
    text = _reply_text(e, model_s, data)
    opts = data.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    r = Reply(api, rec["id"], model_s, text, count_prompt_tokens(data), include_usage)
    if e.get("stream_body") is not None:
        pieces, tail = list(e["stream_body"]), None     # verbatim: no generated tail
    else:
        pieces, tail = r.stream_parts()
    send(conn, rec, head_bytes(200, r.ctype(), None, keep, extra))
    await writer.drain()
    if latency and await conn.wait(latency):
        finish(rec, "client_closed", 200)
        return False
    interval = (e.get("token_interval_ms") or 0) / 1000.0
    cut = e.get("cut_after_chunks")
    stall_after = e.get("stall_after_chunks")
    n = len(pieces)
    if cut is not None:
        n = min(n, int(cut))
    if stall_after is not None:
        n = min(n, int(stall_after))
    if interval <= 0:
        # hot path: one write
        if n:
            rec["first_chunk_ns"] = mono()
        out = b"".join(chunk(p.encode()) for p in pieces[:n])
        writer.write(out)
    else:
        for i in range(n):
            if i and await conn.wait(interval):
                finish(rec, "client_closed", 200)
                return False
            if i == 0:
                rec["first_chunk_ns"] = mono()
            writer.write(chunk(pieces[i].encode()))
            await writer.drain()
            if conn.eof:
                finish(rec, "client_closed", 200)
                return False
    # A verbatim stream_body has no tail: a cut or a stall after all of it still
    # happens (instead of the terminator)
    if cut is not None and (int(cut) < len(pieces) or tail is None):
        await writer.drain()
        finish(rec, "cut", 200)
        conn.close("server")
        return False
    if stall_after is not None and (int(stall_after) < len(pieces) or tail is None):
        await writer.drain()
        await conn.wait(None)
        finish(rec, "stalled_closed", 200)
        return False
    writer.write((chunk(tail.encode()) if tail else b"") + b"0\r\n\r\n")
    await writer.drain()
    finish(rec, "completed", 200)
    return keep


async def _reply_whole(conn, rec, e, status, ctype, payload, keep, extra):
    """A whole (not chunked) reply; close_delimited and stall_after_bytes shape it.
    Returns True if the connection may be reused."""
    b = payload.encode() if isinstance(payload, str) else payload
    writer = conn.writer
    if e.get("close_delimited"):
        send(conn, rec, head_bytes(status, ctype, -1, False, extra) + b)
        await writer.drain()
        finish(rec, "completed", status)
        conn.close("server")
        return False
    sab = e.get("stall_after_bytes")
    if sab is not None:
        send(conn, rec, head_bytes(status, ctype, len(b), keep, extra) + b[:sab])
        await writer.drain()
        await conn.wait(None)
        finish(rec, "stalled_closed", status)
        return False
    send(conn, rec, head_bytes(status, ctype, len(b), keep, extra) + b)
    finish(rec, "completed", status)
    await writer.drain()
    return keep


def _last_user_text(data):
    """The text of the request's last user message ("" if none)."""
    msgs = data.get("messages")
    for m in reversed(msgs if isinstance(msgs, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p["text"] for p in c
                                if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _reply_text(e, model, data):
    if e.get("echo"):
        return "echo: " + _last_user_text(data)
    bb = e.get("body_bytes")
    if bb is not None:
        return "x" * int(bb)
    t = e.get("text")
    return t if isinstance(t, str) else "Hello from %s" % model


def log_view(r):
    d = dict(r)
    d["headers_seen"] = {"authorization": d.pop("auth"), "x-api-key": d.pop("xkey")}
    d["head"] = d["head"].decode("latin-1")
    b = d["body"]
    d["body_text"] = b.decode("utf-8", "replace")
    try:
        d["body"] = json.loads(b)
    except ValueError:
        d["body"] = None
    return d


def stats(state):
    """The counters of the log: connections (not control-only) and those of them that
    are closed, requests, and requests per outcome."""
    ctl = state.ctl_conns
    out = dict.fromkeys(COUNTERS, 0)
    for c in state.conns:
        if c["id"] not in ctl:
            out["connections"] += 1
            out["closed_connections"] += c["closed_ns"] is not None
    out["requests"] = len(state.reqs)
    for r in state.reqs:
        o = r["outcome"]
        if o is not None:
            out[o] = out.get(o, 0) + 1
    return out


def _wait_spec(body):
    """The body of POST /_control/wait -> (at_least dict, timeout seconds)."""
    req = json.loads(body) if body else {}
    if not isinstance(req, dict):
        raise ValueError("the body must be an object")
    want = req.get("at_least") or {}
    tmo = req.get("timeout_ms", 5000)
    if not isinstance(want, dict) or not isinstance(tmo, _NUM) or isinstance(tmo, bool):
        raise ValueError("at_least must be an object, timeout_ms a number")
    for k, v in want.items():
        if k not in COUNTERS:
            raise ValueError("unknown counter %r (known: %s)" % (k, ", ".join(COUNTERS)))
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError("counter %r: the value must be an integer" % k)
    return want, max(float(tmo), 0.0) / 1000.0


async def serve_wait(conn, body, keep):
    """POST /_control/wait: answer once every counter in at_least has reached its
    value, or when timeout_ms has passed; {"ok": reached, "stats": counters}."""
    state = conn.state
    if conn.cur is None:
        state.ctl_conns.add(conn.rec["id"])
    status = 200
    try:
        want, tmo = _wait_spec(body)
    except (ValueError, UnicodeDecodeError) as ex:
        status, out = 400, {"error": {"message": str(ex), "type": "invalid_request_error"}}
    else:
        loop = asyncio.get_running_loop()
        end = loop.time() + tmo
        while True:
            st = stats(state)
            ok = all(st[k] >= v for k, v in want.items())
            rem = end - loop.time()
            if ok or rem <= 0:
                break
            fut = loop.create_future()
            WAITERS.add(fut)
            try:
                await asyncio.wait_for(fut, rem)
            except asyncio.TimeoutError:
                pass
            finally:
                WAITERS.discard(fut)
        out = {"ok": ok, "stats": st}
    b = dumps(out).encode()
    conn.writer.write(head_bytes(status, "application/json", len(b), keep) + b)
    await conn.writer.drain()
    return keep


def serve_control(conn, method, path, body, keep):
    state = conn.state
    if conn.cur is None:
        state.ctl_conns.add(conn.rec["id"])
    status = 200
    if path == "/_control/log" and method == "GET":
        ctl = state.ctl_conns
        out = {"now_ns": mono(),
               "connections": [c for c in state.conns if c["id"] not in ctl],
               "requests": [log_view(r) for r in state.reqs]}
    elif path == "/_control/script" and method == "GET":
        out = state.script
    elif path == "/_control/script" and method in ("PUT", "PATCH", "POST"):
        try:
            new = json.loads(body) if body else {}
            check_script(new, allow_null=True)
        except (ValueError, UnicodeDecodeError) as ex:
            status, out = 400, {"error": {"message": str(ex), "type": "invalid_request_error"}}
        else:
            if method == "PATCH":
                table = dict(state.script)
                for k, v in new.items():
                    state.fail_counts.pop(k, None)
                    if v is None:
                        table.pop(k, None)
                    else:
                        table[k] = v
            else:
                table = {k: v for k, v in new.items() if v is not None}
                state.fail_counts.clear()
            state.script = table
            out = {"ok": True, "script": table}
    elif path == "/_control/stats" and method == "GET":
        out = stats(state)
    elif path == "/_control/reset" and method == "POST":
        open_conns = [c for c in state.conns if c["closed_ns"] is None]
        state.conns.clear()
        state.conns.extend(open_conns)
        state.ctl_conns = {c["id"] for c in open_conns} & state.ctl_conns
        state.reqs.clear()
        notify()
        out = {"ok": True}
    elif path == "/_control/health":
        out = {"ok": True}
    else:
        status, out = 404, {"error": {"message": "unknown control endpoint %s %s"
                                      % (method, path), "type": "invalid_request_error"}}
    b = dumps(out).encode()
    conn.writer.write(head_bytes(status, "application/json", len(b), keep) + b)
    return keep


async def handle(state, reader, writer):
    task = asyncio.current_task()
    state.tasks.add(task)
    conn = Conn(state, reader, writer)
    try:
        while True:
            try:
                req = await conn.read_request()
            except HttpError as ex:
                b = error_body("openai", ex.status, ex.message).encode()
                writer.write(head_bytes(ex.status, "application/json", len(b), False) + b)
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
                await conn.discard(2.0)
                break
            if req is None:
                break
            method, path, headers, body, keep, head = req
            if path == "/_control/wait" and method == "POST":
                keep = await serve_wait(conn, body, keep)
            elif path.startswith("/_control/"):
                keep = serve_control(conn, method, path, body, keep)
                await writer.drain()
            elif path in OPENAI_PATHS:
                keep = await serve_llm(conn, "openai", method, headers, body, keep, head)
            elif path in ANTHROPIC_PATHS:
                keep = await serve_llm(conn, "anthropic", method, headers, body, keep, head)
            elif path in OLLAMA_PATHS:
                keep = await serve_llm(conn, "ollama", method, headers, body, keep, head)
            elif path == "/v1/models" and method == "GET":
                data = [{"id": k, "object": "model", "created": 0, "owned_by": "fakeup"}
                        for k in state.script if k != "*"]
                b = dumps({"object": "list", "data": data}).encode()
                writer.write(head_bytes(200, "application/json", len(b), keep) + b)
                await writer.drain()
            else:
                b = error_body("openai", 404, "no route for %s %s" % (method, path)).encode()
                writer.write(head_bytes(404, "application/json", len(b), keep) + b)
                await writer.drain()
            if not keep or conn.eof:
                break
    except (ConnectionError, OSError):
        conn._mark_eof()  # write failed: the client went away
    except asyncio.CancelledError:
        pass
    except Exception:  # a bug: report it, drop this connection, keep serving
        traceback.print_exc()
    finally:
        rec = conn.cur
        if rec is not None and rec["outcome"] is None:
            finish(rec, "client_closed" if conn.eof else "aborted", None)
        conn.close("server")
        state.tasks.discard(task)


async def amain(args):
    script = {}
    if args.script:
        with open(args.script) as f:
            script = json.load(f)
        try:
            check_script(script)
        except ValueError as ex:
            raise SystemExit("--script %s: %s" % (args.script, ex))
    state = State(script, args.require_key, args.log_max)
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(
        lambda r, w: handle(state, r, w), args.host, args.port,
        backlog=4096, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_on_stdin_eof:
        fd = sys.stdin.fileno()

        def on_stdin():
            if not os.read(fd, 4096):
                loop.remove_reader(fd)
                stop.set()
        loop.add_reader(fd, on_stdin)
    await stop.wait()
    server.close()
    tasks = list(state.tasks)
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2)


def main(argv=None):
    p = argparse.ArgumentParser(description="Scriptable fake LLM upstream")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--script", help="JSON file: {model_name|'*': entry, ...}")
    p.add_argument("--require-key", default=None,
                   help="require 'Authorization: Bearer KEY' (OpenAI) / 'x-api-key: KEY' "
                        "(Anthropic)")
    p.add_argument("--log-max", type=int, default=100000,
                   help="keep at most this many connection and request records")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="exit when stdin reaches EOF (the parent that holds the pipe died)")
    args = p.parse_args(argv)
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
