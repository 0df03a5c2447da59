"""The edge serving HTTPS itself (edge/tls_cert, edge/tls_key): chat, a stream, a client
hang-up over TLS, plain HTTP refused on the TLS port, and a bad key file refused at start."""
from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess

import pytest

from harness import BIN, System, wait_until

MODELS = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n        text = \"over tls\"\n"
    "    drip-sim\n        provider = sim\n        latency_ms = 5\n        tokens_per_s = 20\n"
    "        text = \"a b c d e f g h i j k l m n o p q r s t u v w x y z\"\n"
)


@pytest.fixture
def cert(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def https(port: int, ca, timeout: float = 10.0) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=str(ca))
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)


def start_tls(make_system, crt, key) -> System:
    s = make_system(models=MODELS, extra_edge=f"    tls_cert = {crt}\n    tls_key = {key}\n")
    s.start_broker()
    for i in range(s.nworkers):
        s.start_worker(i)
    s.start_edge()

    def ready():
        try:
            c = https(s.http_port, crt, timeout=2)
            c.request("GET", "/readyz")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False
    wait_until(ready, 20, what="the TLS edge to be ready")
    return s


def chat(model: str, **extra) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    body.update(extra)
    return json.dumps(body).encode()


def test_chat_and_stream_over_tls(make_system, cert):
    crt, key = cert
    s = start_tls(make_system, crt, key)
    c = https(s.http_port, crt)
    c.request("POST", "/v1/chat/completions", body=chat("fast-sim"),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    js = json.loads(r.read())
    assert r.status == 200
    assert js["choices"][0]["message"]["content"] == "over tls"
    assert r.getheader("x-aigw-winner") == "fast-sim"
    # Same connection (keep-alive over TLS), now a stream
    c.request("POST", "/v1/chat/completions", body=chat("drip-sim", stream=True),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("content-type").startswith("text/event-stream")
    text = r.read().decode()
    assert text.rstrip().endswith("data: [DONE]")
    pieces = [json.loads(l[6:]) for l in text.splitlines()
              if l.startswith("data: {") and '"choices":[{' in l.replace(" ", "")]
    content = "".join(p["choices"][0]["delta"].get("content", "") for p in pieces)
    assert content == "a b c d e f g h i j k l m n o p q r s t u v w x y z"
    c.close()


def test_hangup_over_tls_cancels(make_system, cert):
    crt, key = cert
    s = start_tls(make_system, crt, key)
    ctx = ssl.create_default_context(cafile=str(crt))
    raw = socket.create_connection(("127.0.0.1", s.http_port))
    tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    body = chat("drip-sim", stream=True)
    tls.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert tls.recv(64).startswith(b"HTTP/1.1 200")
    tls.close()

    def cancelled():
        c = https(s.http_port, crt)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return any(l.startswith("aigw_edge_http_requests_total{")
                   and 'code="499"' in l and not l.endswith(" 0") for l in text.splitlines())
    wait_until(cancelled, 10, what="the stream to be counted as a client hang-up (499)")


def test_plain_http_on_tls_port_gets_no_answer(make_system, cert):
    crt, key = cert
    s = start_tls(make_system, crt, key)
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    try:
        while True:
            b = sock.recv(4096)
            if not b:
                break
            data += b
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    assert b'"status":"ok"' not in data


def test_bad_key_file_refused_at_start(tmp_path, cert):
    crt, _ = cert
    cfg = tmp_path / "bad.conf"
    cfg.write_text(f"edge\n    listen = 127.0.0.1:0\n    tls_cert = {crt}\n"
                   f"    tls_key = {tmp_path / 'missing.pem'}\n")
    p = subprocess.run([str(BIN / "aigw-edge"), "--config", str(cfg)], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0
    assert "tls_key" in p.stderr
