"""Per-key limits shared by two edges through one Redis (limits/backend = unix:...):
rpm and max_parallel counted across both edges, the admin view showing the shared
counters, Redis AUTH without the password leaking, and each limits/on_failure mode
while Redis is down (counter, gauge, one log line per outage), then Redis back."""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from harness import Http, start_named_edge, wait_until

ADMIN = "admin-" + "s" * 26
AH = {"Authorization": f"Bearer {ADMIN}"}
REDIS_PW = "redis-pw-" + "q" * 20
MODELS = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n"
    "        text = \"one two three\"\n        input_price = 1\n        output_price = 2\n"
    "    hold-sim\n        provider = sim\n        latency_ms = 4000\n        text = \"held\"\n"
)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


class Redis:
    """A redis-server on a unix socket only (--port 0: no TCP port to race for)."""

    def __init__(self, password: str = ""):
        self.dir = Path(tempfile.mkdtemp(prefix="aigw-redis-"))  # short: sun_path limit
        self.sock = self.dir / "redis.sock"
        self.password = password
        self.proc: subprocess.Popen | None = None

    def start(self):
        argv = ["redis-server", "--port", "0", "--unixsocket", str(self.sock),
                "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir)]
        if self.password:
            argv += ["--requirepass", self.password]
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.ping, 10, what="redis-server answering PING")

    def ping(self) -> bool:
        assert self.proc and self.proc.poll() is None, "redis-server exited"
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.sock))
                cmd = b"PING\r\n"
                if self.password:
                    cmd = f"AUTH {self.password}\r\n".encode() + cmd
                s.sendall(cmd)
                data = b""
                while b"PONG" not in data and b"-" not in data:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    data += chunk
                return b"+PONG" in data
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis():
    r = Redis(password=REDIS_PW)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def shared(make_system, monkeypatch, tmp_path, redis):
    """make(on_failure): broker, workers and edge "edge" with auth on, one loop thread,
    limits in the test's Redis."""
    monkeypatch.setenv("AIGW_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("AIGW_TEST_REDIS_PW", REDIS_PW)

    def make(on_failure: str):
        s = make_system(models=MODELS, capacity=64,
                        extra_edge=f"    auth = on\n    keys_db = {tmp_path / 'keys.db'}\n"
                                   "    threads = 1\n")
        s.cfg.write_text(s.cfg.read_text() + (
            "limits\n"
            f"    backend = \"unix:{redis.sock}\"\n"
            "    redis_password_env = AIGW_TEST_REDIS_PW\n"
            "    redis_timeout_ms = 200\n"
            f"    on_failure = {on_failure}\n"
            "    prefix = \"itest:\"\n"))
        s.auth_headers = AH
        s.start()
        return s
    return make


def call(port: int, method: str, path: str, body=None, headers=None):
    c = Http("127.0.0.1", port)
    try:
        return c.request(method, path, body, headers=headers or {})
    finally:
        c.close()


def create_key(port: int, **fields) -> str:
    status, _, js, _ = call(port, "POST", "/v1/aigw/keys", fields, AH)
    assert status == 201, js
    return js["key"]


def chat(port: int, key: str, model: str = "fast-sim"):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return call(port, "POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {key}"})


def view(port: int, name: str) -> dict:
    status, _, js, _ = call(port, "GET", f"/v1/aigw/keys/{name}", headers=AH)
    assert status == 200, js
    return js


def metrics(port: int) -> dict[str, float]:
    status, _, _, raw = call(port, "GET", "/metrics", headers=AH)
    assert status == 200
    out = {}
    for line in raw.decode().splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            out[parts[0]] = float(parts[1])
    return out


def hdr(headers: dict, name: str):
    return {k.lower(): v for k, v in headers.items()}.get(name)


def test_rpm_and_parallel_shared_across_edges(shared):
    s = shared("local")
    e1 = s.http_port
    key = create_key(e1, name="team", rpm=6)
    held = create_key(e1, name="held", max_parallel=2)
    e2 = start_named_edge(s, "edge2")          # loads both keys from the same database
    wait_until(lambda: call(e2, "GET", "/readyz")[0] == 200, 15, what="edge2 ready")

    remaining = []
    for i in range(6):
        status, headers, js, _ = chat(e1 if i % 2 == 0 else e2, key)
        assert status == 200, js
        remaining.append(int(hdr(headers, "x-ratelimit-remaining-requests")))
    assert remaining == [5, 4, 3, 2, 1, 0]     # one window across both edges
    for port in (e1, e2):
        status, headers, js, _ = chat(port, key)
        assert status == 429, js
        assert js["error"]["code"] == "rate_limit_exceeded"
        assert int(hdr(headers, "retry-after")) >= 1
    v = view(e2, "team")
    assert v["requests_last_minute"] == 6

    #  max_parallel = 2: one request in flight on each edge fills it for both
    results = []
    threads = [threading.Thread(target=lambda p=p: results.append(chat(p, held, "hold-sim")[0]))
               for p in (e1, e2)]
    for t in threads:
        t.start()
    wait_until(lambda: view(e1, "held")["in_flight"] == 2, 10, what="two shared slots taken")
    for port in (e1, e2):
        status, _, js, _ = chat(port, held)
        assert status == 429, js
        assert "max_parallel" in js["error"]["message"]
    for t in threads:
        t.join(30)
    assert results == [200, 200]
    assert view(e2, "held")["in_flight"] == 0
    assert chat(e2, held)[0] == 200

    #  No secret in logs or metrics
    text = s.logs("edge") + s.logs("edge2")
    raw = call(e1, "GET", "/metrics", headers=AH)[3].decode()
    for secret in (key, held, REDIS_PW, ADMIN):
        assert secret not in text and secret not in raw
    assert metrics(e1)["aigw_limits_backend_up"] == 1
    assert metrics(e1)["aigw_limits_backend_errors_total"] == 0


def outage_lines(s) -> tuple[int, int]:
    log = s.logs("edge")
    return log.count("applying limits/on_failure"), log.count("answers again after an outage")


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
def test_redis_down_then_back(shared, redis, mode):
    s = shared(mode)
    e1 = s.http_port
    key = create_key(e1, name="team", rpm=3)
    assert chat(e1, key)[0] == 200                          # shared: 1 of 3
    redis.kill()

    if mode == "closed":
        for _ in range(3):
            status, headers, js, _ = chat(e1, key)
            assert status == 503, js
            assert js["error"]["code"] == "limits_unavailable"
            assert hdr(headers, "retry-after") == "1"
            assert key not in js["error"]["message"]
    elif mode == "open":
        for _ in range(5):                                  # past rpm: nothing limits
            status, headers, js, _ = chat(e1, key)
            assert status == 200, js
            assert hdr(headers, "x-ratelimit-limit-requests") is None
    else:                                                   # this edge's own counters
        assert [chat(e1, key)[0] for _ in range(3)] == [200, 200, 429]

    m = metrics(e1)
    assert m["aigw_limits_backend_up"] == 0
    assert m["aigw_limits_backend_errors_total"] >= 1
    if mode == "closed":
        assert m["aigw_limits_unavailable_total"] == 3
    assert outage_lines(s) == (1, 0)                        # logged once for the outage

    redis.start()                                           # empty: no persistence
    #  The admin view asks Redis (after the ~500 ms retry delay) and shows shared figures
    wait_until(lambda: view(e1, "team").get("requests_last_minute") == 0, 15,
               what="the edge back on Redis")
    assert metrics(e1)["aigw_limits_backend_up"] == 1
    assert outage_lines(s) == (1, 1)
    assert [chat(e1, key)[0] for _ in range(4)] == [200, 200, 200, 429]
    assert REDIS_PW not in s.logs("edge")
