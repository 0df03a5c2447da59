"""Tests for the scriptable fake LLM upstream (stdlib + pytest only)."""

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_upstream.py")
TIMEOUT = 5.0


def start_server(*extra):
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--host", "127.0.0.1", "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    if not ready:
        proc.kill()
        raise RuntimeError("fake upstream did not start")
    line = proc.stdout.readline().decode()
    assert line.startswith("READY "), line
    return proc, int(line.split()[1])


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


class Client:
    def __init__(self, port):
        self.port = port

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            data = json.dumps(body).encode() if body is not None else None
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None):
        st, _, raw = self.request(method, path, body, headers)
        return st, json.loads(raw)

    def script(self, table):
        st, _ = self.json("PUT", "/_control/script", table)
        assert st == 200

    def log(self):
        st, out = self.json("GET", "/_control/log")
        assert st == 200
        return out

    def wait(self, timeout=TIMEOUT, **at_least):
        """Wait (POST /_control/wait: the server answers when its log changes) until
        every counter is at least its value; returns the log then."""
        st, out = self.json("POST", "/_control/wait",
                            {"at_least": at_least, "timeout_ms": timeout * 1000})
        assert st == 200, out
        log = self.log()
        assert out["ok"], "counters not reached: %r, log %r" % (out["stats"], log)
        return log


@pytest.fixture(scope="module")
def server():
    proc, port = start_server()
    yield proc, port
    assert stop_server(proc) == 0


@pytest.fixture
def cli(server):
    c = Client(server[1])
    c.script({})
    st, _ = c.json("POST", "/_control/reset")
    assert st == 200
    return c


def conn_of(log, req):
    return [c for c in log["connections"] if c["id"] == req["conn_id"]][0]


def chat(model, stream=False, **kw):
    b = {"model": model, "messages": [{"role": "user", "content": "say hello please"}]}
    if stream:
        b["stream"] = True
    b.update(kw)
    return b


def raw_request(body, path="/v1/chat/completions", extra=""):
    data = json.dumps(body).encode()
    return (("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n%s\r\n" % (path, len(data), extra)).encode() + data)


def read_until_closed(sock, limit=1 << 20):
    out = b""
    while len(out) < limit:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    return out


def sse_events(raw):
    return [ln[6:] for ln in raw.decode().split("\n") if ln.startswith("data: ")]


# ---------------------------------------------------------------------------


def test_normal_completion(cli):
    st, out = cli.json("POST", "/v1/chat/completions", chat("gpt-test"))
    assert st == 200
    assert out["object"] == "chat.completion"
    assert out["model"] == "gpt-test"
    assert out["id"]
    assert isinstance(out["created"], int)
    ch = out["choices"][0]
    assert ch["message"] == {"role": "assistant", "content": "Hello from gpt-test"}
    assert ch["finish_reason"] == "stop"
    u = out["usage"]
    assert u["completion_tokens"] == 3
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    log = cli.log()
    assert len(log["requests"]) == 1  # control calls are not logged
    r = log["requests"][0]
    assert r["outcome"] == "completed" and r["status"] == 200
    assert r["model"] == "gpt-test" and r["stream"] is False
    assert r["body"]["messages"][0]["content"] == "say hello please"
    assert r["headers_seen"]["authorization"] is False
    assert r["started_ns"] <= r["first_byte_ns"] <= r["finished_ns"]
    # also the short path
    st, out = cli.json("POST", "/chat/completions", chat("gpt-test"))
    assert st == 200 and out["object"] == "chat.completion"


def test_scripted_text_and_default_entry(cli):
    cli.script({"a": {"text": "alpha beta"}, "*": {"text": "star"}})
    assert cli.json("POST", "/v1/chat/completions", chat("a"))[1][
        "choices"][0]["message"]["content"] == "alpha beta"
    assert cli.json("POST", "/v1/chat/completions", chat("zzz"))[1][
        "choices"][0]["message"]["content"] == "star"


def test_scripted_500(cli):
    cli.script({"bad": {"status": 500}, "rl": {"status": 429, "headers": {"Retry-After": "1"}}})
    st, out = cli.json("POST", "/v1/chat/completions", chat("bad"))
    assert st == 500
    assert isinstance(out["error"]["message"], str) and out["error"]["type"]
    st, hdrs, raw = cli.request("POST", "/v1/chat/completions", chat("rl"))
    assert st == 429 and hdrs.get("Retry-After") == "1"
    assert "error" in json.loads(raw)
    reqs = cli.log()["requests"]
    assert [r["status"] for r in reqs] == [500, 429]
    assert all(r["outcome"] == "completed" for r in reqs)


def test_scripted_error_code_and_retry_after(cli):
    cli.script({"long": {"status": 400, "error_code": "context_length_exceeded",
                         "error_message": "too long"},
                "rl": {"status": 429, "retry_after": "3", "error_code": "rate_limit_error"}})
    st, out = cli.json("POST", "/v1/chat/completions", chat("long"))
    assert st == 400
    assert out["error"]["code"] == "context_length_exceeded"
    assert out["error"]["message"] == "too long"
    assert out["error"]["type"] == "invalid_request_error"
    st, hdrs, raw = cli.request("POST", "/v1/messages", chat("rl", max_tokens=10))
    assert st == 429 and hdrs.get("Retry-After") == "3"
    assert json.loads(raw) == {"type": "error", "error": {
        "type": "rate_limit_error", "message": "scripted error 429 from fake upstream"}}
    st, hdrs, raw = cli.request("POST", "/api/chat", chat("rl"))
    assert st == 429 and hdrs.get("Retry-After") == "3"
    assert json.loads(raw) == {"error": "scripted error 429 from fake upstream"}
    # without error_code the OpenAI code stays null
    cli.script({"bad": {"status": 500}})
    st, out = cli.json("POST", "/v1/chat/completions", chat("bad"))
    assert st == 500 and out["error"]["code"] is None
    st, _ = cli.json("PUT", "/_control/script", {"x": {"retry_after": "1\r\nX-Evil: 1"}})
    assert st == 400
    st, _ = cli.json("PUT", "/_control/script", {"x": {"error_code": 5}})
    assert st == 400


def test_fail_first(cli):
    cli.script({"flaky": {"status": 503, "fail_first": 2, "retry_after": "4",
                          "error_message": "warming up", "text": "finally"},
                "*": {"status": 500, "fail_first": 1}})
    got = [cli.request("POST", "/v1/chat/completions", chat("flaky")) for _ in range(4)]
    assert [g[0] for g in got] == [503, 503, 200, 200]
    assert json.loads(got[0][2])["error"]["message"] == "warming up"
    assert got[1][1].get("Retry-After") == "4"
    assert "Retry-After" not in got[2][1]      # done failing: no Retry-After either
    assert json.loads(got[3][2])["choices"][0]["message"]["content"] == "finally"
    # a stream fails before its first chunk too, then streams normally
    cli.json("PATCH", "/_control/script", {"s": {"status": 503, "fail_first": 1}})
    st, _, raw = cli.request("POST", "/v1/chat/completions", chat("s", stream=True))
    assert st == 503 and "error" in json.loads(raw)
    st, _, raw = cli.request("POST", "/v1/chat/completions", chat("s", stream=True))
    assert st == 200 and sse_events(raw)[-1] == "[DONE]"
    # the count is per entry: "*" counts every model it serves, across APIs
    assert cli.request("POST", "/v1/messages", chat("a", max_tokens=5))[0] == 500
    assert cli.request("POST", "/v1/chat/completions", chat("b"))[0] == 200
    # the log shows what each request got
    assert [r["status"] for r in cli.log()["requests"]] == [503, 503, 200, 200, 503, 200,
                                                            500, 200]
    # PATCH replacing an entry starts its count again; the others keep theirs
    cli.json("PATCH", "/_control/script", {"flaky": {"status": 502, "fail_first": 1}})
    assert cli.request("POST", "/v1/chat/completions", chat("flaky"))[0] == 502
    assert cli.request("POST", "/v1/chat/completions", chat("flaky"))[0] == 200
    assert cli.request("POST", "/v1/chat/completions", chat("c"))[0] == 200
    # PUT replaces the table: every count starts again; GET shows no counter
    cli.script({"flaky": {"status": 500, "fail_first": 1}})
    assert cli.request("POST", "/v1/chat/completions", chat("flaky"))[0] == 500
    assert cli.json("GET", "/_control/script")[1] == {"flaky": {"status": 500, "fail_first": 1}}
    cli.script({"flaky": {"status": 500, "fail_first": 1}})
    assert cli.request("POST", "/v1/chat/completions", chat("flaky"))[0] == 500
    assert cli.request("POST", "/v1/chat/completions", chat("flaky"))[0] == 200
    # validated like the other fields
    for bad in ({"status": 500, "fail_first": "1"}, {"status": 500, "fail_first": True},
                {"status": 500, "fail_first": 1.5}, {"status": 500, "fail_first": 0},
                {"fail_first": 1}, {"status": 200, "fail_first": 1}):
        st, out = cli.json("PUT", "/_control/script", {"m": bad})
        assert st == 400 and out["error"]["message"], bad
    assert cli.json("GET", "/_control/script")[1] == {"flaky": {"status": 500, "fail_first": 1}}


def test_latency(cli):
    cli.script({"slow": {"latency_ms": 200}})
    t0 = time.monotonic()
    st, out = cli.json("POST", "/v1/chat/completions", chat("slow"))
    dt = time.monotonic() - t0
    assert st == 200
    assert dt >= 0.2                    # a lower bound holds under load; an upper one need not
    r = cli.log()["requests"][0]
    assert r["first_byte_ns"] - r["started_ns"] >= 200_000_000


def test_stream_done_and_usage(cli):
    cli.script({"s": {"text": "one two three", "token_interval_ms": 5}})
    c = cli.conn()
    try:
        c.request("POST", "/v1/chat/completions",
                  body=json.dumps(chat("s", True, stream_options={"include_usage": True})),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Type").startswith("text/event-stream")
        events = sse_events(r.read())
    finally:
        c.close()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch["choices"][0]["delta"].get("content", "")
                   for ch in chunks if ch["choices"])
    assert text == "one two three"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finals = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
    assert finals[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    r = cli.log()["requests"][0]
    assert r["stream"] is True and r["outcome"] == "completed"


def test_stream_without_usage(cli):
    st, _, raw = cli.request("POST", "/v1/chat/completions", chat("m", True))
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    assert all(json.loads(e)["choices"] for e in events[:-1])


def test_client_disconnect_during_latency(cli):
    cli.script({"slow": {"latency_ms": 5000}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("slow")))
    cli.wait(requests=1)
    t_close = time.monotonic_ns()
    s.close()
    # client_closed, not completed: seen during the 5 s latency, not after it
    log = cli.wait(client_closed=1)
    r = log["requests"][0]
    assert r["outcome"] == "client_closed"
    conn = conn_of(log, r)
    assert conn["closed_ns"] is not None and conn["closed_by"] == "client"
    assert conn["closed_ns"] >= t_close
    assert r["finished_ns"] >= t_close
    assert r["first_byte_ns"] is None


def test_client_disconnect_between_stream_chunks(cli):
    cli.script({"s": {"text": "a b c d e f g h", "token_interval_ms": 1000}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("s", True)))
    got = b""
    while b'"content":"a"' not in got:
        got += s.recv(65536)
    t_close = time.monotonic_ns()
    s.close()
    log = cli.wait(client_closed=1)
    r = log["requests"][0]
    assert r["outcome"] == "client_closed"
    assert conn_of(log, r)["closed_ns"] >= t_close


def test_stall_then_client_close(cli):
    cli.script({"st": {"stall": True}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("st", True)))
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(1)  # nothing at all is sent
    t_close = time.monotonic_ns()
    s.close()
    log = cli.wait(stalled_closed=1)
    r = log["requests"][0]
    assert r["outcome"] == "stalled_closed"
    assert conn_of(log, r)["closed_ns"] >= t_close


def test_cut_after_chunks(cli):
    cli.script({"cut": {"text": "a b c d e", "cut_after_chunks": 2}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("cut", True)))
    raw = read_until_closed(s)
    s.close()
    assert b'"content":" b"' in raw and b'"content":" c"' not in raw
    assert b"[DONE]" not in raw and not raw.endswith(b"0\r\n\r\n")
    log = cli.wait(cut=1)
    assert log["requests"][0]["outcome"] == "cut"
    assert conn_of(log, log["requests"][0])["closed_by"] == "server"


def test_keep_alive_two_requests(cli):
    c = cli.conn()
    try:
        for _ in range(2):
            c.request("POST", "/v1/chat/completions", body=json.dumps(chat("k")),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            assert r.status == 200
            assert json.loads(r.read())["model"] == "k"
    finally:
        c.close()
    log = cli.wait(requests=2, closed_connections=1)
    reqs = log["requests"]
    assert reqs[0]["conn_id"] == reqs[1]["conn_id"]
    assert conn_of(log, reqs[0])["closed_by"] == "client"


def test_pipelined_bytes_during_latency_not_lost(cli):
    cli.script({"slow": {"latency_ms": 300}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("slow")))
    cli.wait(requests=1)  # the second request arrives while the first one waits
    s.sendall(raw_request(chat("fast"), extra="Connection: close\r\n"))
    raw = read_until_closed(s)
    s.close()
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert raw.index(b'"model":"slow"') < raw.index(b'"model":"fast"')
    reqs = cli.wait(completed=2)["requests"]
    assert [r["outcome"] for r in reqs] == ["completed", "completed"]


def test_connection_close_header(cli):
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("x"), extra="Connection: close\r\n"))
    raw = read_until_closed(s)
    s.close()
    assert b"Connection: close" in raw and raw.count(b"HTTP/1.1 200") == 1


def test_body_too_large(cli):
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: %d\r\n\r\n" % (9 * 1024 * 1024))
    raw = read_until_closed(s)
    s.close()
    assert raw.startswith(b"HTTP/1.1 413")


def test_garbage_and_body_bytes(cli):
    cli.script({"g": {"garbage": True}, "big": {"body_bytes": 100000}})
    st, _, raw = cli.request("POST", "/v1/chat/completions", chat("g"))
    assert st == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    st, out = cli.json("POST", "/v1/chat/completions", chat("big"))
    assert st == 200 and len(out["choices"][0]["message"]["content"]) == 100000


def test_control_patch_merges(cli):
    cli.script({"a": {"status": 500}, "b": {"status": 503}})
    st, out = cli.json("PATCH", "/_control/script", {"b": None, "c": {"text": "hi"}})
    assert st == 200
    st, table = cli.json("GET", "/_control/script")
    assert table == {"a": {"status": 500}, "c": {"text": "hi"}}


def test_control_rejects_bad_script(cli):
    for bad in ([1], {"m": 5}, {"m": {"latncy_ms": 5}}, {"m": {"status": "500"}},
                {"m": {"stall": 1}}):
        st, out = cli.json("PUT", "/_control/script", bad)
        assert st == 400 and out["error"]["message"]
    st, _, _ = cli.request("PUT", "/_control/script", headers={}, body=None)
    assert st == 200


def test_anthropic_messages(cli):
    st, out = cli.json("POST", "/v1/messages", chat("claude-x", max_tokens=10))
    assert st == 200 and out["type"] == "message"
    assert out["content"][0]["text"] == "Hello from claude-x"
    assert out["usage"]["output_tokens"] == 3
    st, _, raw = cli.request("POST", "/v1/messages", chat("claude-x", True))
    kinds = [ln[7:] for ln in raw.decode().split("\n") if ln.startswith("event: ")]
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(json.loads(d)["delta"]["text"] for d in sse_events(raw)
                   if json.loads(d)["type"] == "content_block_delta")
    assert text == "Hello from claude-x"


def test_ollama_chat(cli):
    st, _, raw = cli.request("POST", "/api/chat", chat("llama3"))
    lines = [json.loads(ln) for ln in raw.decode().splitlines() if ln]
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 3
    assert "".join(ln["message"]["content"] for ln in lines) == "Hello from llama3"
    st, out = cli.json("POST", "/api/chat", chat("llama3", stream=False) | {"stream": False})
    assert out["done"] is True and out["message"]["content"] == "Hello from llama3"


def test_require_key():
    proc, port = start_server("--require-key", "sekret")
    try:
        c = Client(port)
        st, out = c.json("POST", "/v1/chat/completions", chat("m"))
        assert st == 401 and out["error"]["code"] == "invalid_api_key"
        st, out = c.json("POST", "/v1/chat/completions", chat("m"),
                         {"Authorization": "Bearer sekret"})
        assert st == 200
        st, out = c.json("POST", "/v1/messages", chat("m"), {"x-api-key": "nope"})
        assert st == 401 and out["type"] == "error"
        st, out = c.json("POST", "/v1/messages", chat("m"), {"x-api-key": "sekret"})
        assert st == 200
        reqs = c.log()["requests"]
        assert [r["headers_seen"]["authorization"] for r in reqs[:2]] == [False, True]
    finally:
        assert stop_server(proc) == 0


def test_script_file_and_sigint(tmp_path):
    f = tmp_path / "script.json"
    f.write_text(json.dumps({"*": {"text": "from file"}}))
    proc, port = start_server("--script", str(f))
    try:
        st, out = Client(port).json("POST", "/v1/chat/completions", chat("any"))
        assert out["choices"][0]["message"]["content"] == "from file"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0


# ---------------------------------------------------------------------------
# Verbatim replies, shaped bodies, the request's head, waiting on counters


def read_response(sock):
    """One HTTP/1.1 response on sock: (head bytes, body bytes); a chunked body is
    returned as its list of chunks."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    if b"Transfer-Encoding: chunked" not in head:
        n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        while len(rest) < n:
            rest += sock.recv(65536)
        return head, rest
    chunks = []
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            rest += sock.recv(65536)
        if size == 0:
            return head, chunks
        chunks.append(rest[:size])
        rest = rest[size + 2:]


def test_verbatim_body_any_status(cli):
    body = '{"error":{"message":"boom","type":"server_error"}}'
    cli.script({"b": {"status": 500, "body": body, "headers": {"retry-after": "3"}},
                "ok": {"body": "<html>not json</html>"}})
    st, hdrs, raw = cli.request("POST", "/v1/chat/completions", chat("b"))
    assert st == 500 and raw == body.encode() and hdrs.get("retry-after") == "3"
    st, hdrs, raw = cli.request("POST", "/v1/messages", chat("ok"))
    assert st == 200 and raw == b"<html>not json</html>"
    assert hdrs["Content-Type"] == "application/json"


def test_stream_body_pieces(cli):
    pieces = ["data: {\"a\":1}\n\ndata: {\"b\"", ":2}\r\n\r\n: ping\r\n\r\n", "data: [DONE]\n\n"]
    cli.script({"s": {"body": '{"whole":true}', "stream_body": pieces, "token_interval_ms": 3}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("s", True)))
    head, chunks = read_response(s)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert chunks == [p.encode() for p in pieces]      # each piece is one HTTP chunk
    s.sendall(raw_request(chat("s")))                   # not streaming: the body
    head, body = read_response(s)
    assert body == b'{"whole":true}'
    s.close()
    # Ollama streams by default, as NDJSON
    cli.script({"o": {"stream_body": ['{"a":', '1}\n']}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("o"), path="/api/chat"))
    head, chunks = read_response(s)
    s.close()
    assert b"application/x-ndjson" in head and chunks == [b'{"a":', b'1}\n']


def test_stream_body_stall_and_cut_after_all(cli):
    cli.script({"nofin": {"stream_body": ["data: x\n\n", "data: [DONE]\n\n"],
                          "stall_after_chunks": 2},
                "cut": {"stream_body": ["data: x\n\n", "data: y\n\n"], "cut_after_chunks": 5}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("nofin", True)))
    got = b""
    while b"[DONE]" not in got:
        got += s.recv(65536)
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(1)  # every piece, then no terminator: the body never ends
    s.close()
    log = cli.wait(stalled_closed=1)
    assert log["requests"][0]["outcome"] == "stalled_closed"
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("cut", True)))
    raw = read_until_closed(s)
    s.close()
    assert b"data: y" in raw and not raw.endswith(b"0\r\n\r\n")
    assert cli.wait(cut=1)["requests"][1]["outcome"] == "cut"


def test_close_delimited(cli):
    cli.script({"big": {"body_bytes": 5000, "close_delimited": True}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("big")))
    raw = read_until_closed(s)
    s.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Length" not in head and b"chunked" not in head
    assert b"Connection: close" in head
    assert json.loads(body)["choices"][0]["message"]["content"] == "x" * 5000
    log = cli.wait(completed=1, closed_connections=1)
    assert conn_of(log, log["requests"][0])["closed_by"] == "server"


def test_stall_after_bytes(cli):
    cli.script({"part": {"body": '{"choices":[]}', "stall_after_bytes": 5}})
    s = socket.create_connection(("127.0.0.1", cli.port), timeout=TIMEOUT)
    s.sendall(raw_request(chat("part")))
    got = b""
    while not got.endswith(b'{"cho'):
        got += s.recv(65536)
    assert b"Content-Length: 14\r\n" in got
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(1)  # the rest never comes
    s.close()
    assert cli.wait(stalled_closed=1)["requests"][0]["outcome"] == "stalled_closed"


def test_log_head_and_body_text(cli):
    body = '{"model":"m","stream":true,"stream_options":{"include_usage":true}}'
    c = cli.conn()
    try:
        c.request("POST", "/v1/chat/completions", body=body,
                  headers={"Content-Type": "application/json", "X-Test": "yes"})
        c.getresponse().read()
    finally:
        c.close()
    r = cli.log()["requests"][0]
    assert r["head"].startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert "\r\nX-Test: yes" in r["head"] and "\r\n\r\n" not in r["head"]
    assert r["body_text"] == body          # as sent, byte for byte
    assert r["body"]["stream_options"] == {"include_usage": True}


def test_wait_and_stats(cli):
    st, out = cli.json("GET", "/_control/stats")
    assert st == 200 and out["requests"] == 0 and out["connections"] == 0
    # Answers at once when reached, after timeout_ms (ok false) when not
    st, out = cli.json("POST", "/_control/wait", {"at_least": {"requests": 0}})
    assert st == 200 and out["ok"] is True
    st, out = cli.json("POST", "/_control/wait", {"at_least": {"requests": 1}, "timeout_ms": 50})
    assert st == 200 and out["ok"] is False and out["stats"]["requests"] == 0
    for bad in ({"at_least": {"nope": 1}}, {"at_least": {"requests": "1"}}, [1],
                {"at_least": {}, "timeout_ms": "5"}):
        st, out = cli.json("POST", "/_control/wait", bad)
        assert st == 400 and out["error"]["message"], bad
    # A wait in progress is woken by the request it waits for
    waiter = cli.conn()
    waiter.request("POST", "/_control/wait",
                   body=json.dumps({"at_least": {"requests": 1, "completed": 1}}),
                   headers={"Content-Type": "application/json"})
    assert cli.json("POST", "/v1/chat/completions", chat("m"))[0] == 200
    out = json.loads(waiter.getresponse().read())
    waiter.close()
    assert out["ok"] is True and out["stats"]["completed"] == 1
    assert out["stats"]["connections"] == 1            # control connections do not count


def test_exit_on_stdin_eof():
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--port", "0", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"READY ")
    proc.stdin.close()                  # as when the parent holding the pipe dies
    assert proc.wait(timeout=10) == 0
