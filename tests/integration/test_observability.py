"""Integration tests of live observability: /metrics (Prometheus), the SSE bridge at
/v1/aigw/events, dropping a stuck browser, and the dashboard end to end in Chromium.

Each test starts the real binaries on fresh loopback ports (harness.System).
"""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import BUILD, ROOT, Http, wait_until

MODELS = (
    "    fast-sim\n        provider = sim\n        latency_ms = 2\n        text = \"fast answer\"\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 60\n        text = \"slow answer\"\n"
)
RACE = "slow-sim,fast-sim"
UI = ROOT / "ui"


# ---------------------------------------------------------------- helpers

def scrape(port: int) -> str:
    c = Http("127.0.0.1", port, timeout=10)
    status, headers, _, raw = c.request("GET", "/metrics")
    c.close()
    assert status == 200, raw
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return raw.decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> dict[tuple, float]:
    """{(name, (("label", "value"), ...)): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        labels = tuple(sorted(LABEL.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(text: str, name: str, **labels) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def promtool_check(text: str):
    res = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                         capture_output=True, timeout=30)
    assert res.returncode == 0, (res.stdout + res.stderr).decode() + "\n---\n" + text[:3000]


def race_load(port: int, n: int, threads: int = 4) -> list[int]:
    """Send n races through the edge from several keep-alive clients; statuses."""
    statuses: list[int] = []
    lock = threading.Lock()

    def run(count):
        c = Http("127.0.0.1", port)
        for _ in range(count):
            status, _, _, _ = c.chat(RACE)
            with lock:
                statuses.append(status)
        c.close()

    ts = [threading.Thread(target=run, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return statuses


class SSE:
    """A raw-socket client of /v1/aigw/events. With read=False it never reads."""

    def __init__(self, port: int, rcvbuf: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"GET /v1/aigw/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Accept: text/event-stream\r\n\r\n")
        self.buf = b""
        self.events: queue.Queue = queue.Queue()
        self.status = None
        self.headers: dict[str, str] = {}

    def read_head(self, timeout: float = 10):
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed before the headers"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip()
                        for k, v in (line.split(":", 1) for line in lines[1:])}
        return self.status

    def start_reader(self):
        threading.Thread(target=self._read_loop, daemon=True).start()

    def _read_loop(self):
        self.sock.settimeout(None)
        while True:
            while b"\n\n" in self.buf:
                block, self.buf = self.buf.split(b"\n\n", 1)
                ev, data = None, []
                for line in block.decode().split("\n"):
                    if line.startswith("event: "):
                        ev = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                if ev:
                    self.events.put((ev, json.loads("\n".join(data))))
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.events.put(("<closed>", None))
                return
            self.buf += chunk

    def next(self, timeout: float = 10):
        return self.events.get(timeout=timeout)

    def wait_for(self, pred, timeout: float = 20):
        """Next event (topic, data) with pred(topic, data) true; events before it are skipped."""
        end = time.monotonic() + timeout
        while True:
            topic, data = self.next(max(0.1, end - time.monotonic()))
            assert topic != "<closed>", "event stream closed"
            if pred(topic, data):
                return topic, data

    def close(self):
        self.sock.close()


@pytest.fixture
def system(make_system):
    return make_system(models=MODELS).start()


def wait_broker_metrics(port: int):
    wait_until(lambda: value(scrape(port), "aigw_broker_up") == 1, 10, 0.1,
               "a broker metrics message at the edge")


# ---------------------------------------------------------------- /metrics

def test_metrics_pass_promtool_under_load(system):
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package prometheus)")
    port = system.http_port
    stop = threading.Event()
    scrapes: list[str] = []

    def scraper():
        while not stop.is_set():
            scrapes.append(scrape(port))
            time.sleep(0.05)

    t = threading.Thread(target=scraper)
    t.start()
    try:
        statuses = race_load(port, 200)
    finally:
        stop.set()
        t.join()
    assert statuses == [200] * 200
    assert len(scrapes) >= 2
    for text in (scrapes[0], scrapes[len(scrapes) // 2], scrapes[-1]):
        promtool_check(text)

    # The broker's per-model series arrive with its next metrics message.
    def broker_caught_up():
        text = scrape(port)
        return text if (value(text, "aigw_broker_jobs_total", outcome="won") or 0) >= 200 else None
    text = wait_until(broker_caught_up, 10, 0.2, "broker metrics counting the races")
    promtool_check(text)
    chat = "/v1/chat/completions"
    assert value(text, "aigw_edge_http_requests_total", route=chat, code="200") == 200
    assert value(text, "aigw_edge_http_request_duration_seconds_count", route=chat) == 200
    assert value(text, "aigw_edge_http_request_duration_seconds_bucket", route=chat, le="+Inf") == 200
    assert value(text, "aigw_edge_overhead_seconds_count") == 200
    assert value(text, "aigw_edge_http_requests_in_flight") >= 1      # the scrape itself
    assert value(text, "aigw_broker_up") == 1
    assert value(text, "aigw_edge_broker_link_up") == 1
    assert value(text, "aigw_model_wins_total", model="fast-sim") >= 190
    assert value(text, "aigw_model_losses_total", model="slow-sim") >= 190
    assert value(text, "aigw_model_errors_total", model="fast-sim") == 0
    assert value(text, "aigw_model_in_flight", model="fast-sim") is not None
    assert value(text, "aigw_model_queued", model="slow-sim") is not None
    assert value(text, "aigw_model_tokens_saved_total", model="slow-sim") is not None
    p50 = value(text, "aigw_model_latency_seconds", model="fast-sim", quantile="0.5")
    assert p50 is not None and 0 < p50 < 1
    assert value(text, "aigw_broker_attempts_total", outcome="cancelled") >= 190
    for w in ("w0", "w1"):
        assert value(text, "aigw_worker_up", worker=w) == 1
        assert value(text, "aigw_worker_capacity", worker=w) == 16
        assert value(text, "aigw_worker_in_flight", worker=w) is not None
    # Buckets are cumulative
    les = [(float(dict(k[1])["le"]), v) for k, v in samples(text).items()
           if k[0] == "aigw_edge_http_request_duration_seconds_bucket" and dict(k[1])["route"] == chat]
    counts = [v for _, v in sorted(les)]
    assert counts == sorted(counts)


def test_metrics_without_broker_stream(make_system):
    """Only the edge runs: edge series are there, the broker is reported down."""
    s = make_system(models=MODELS)
    s.start_edge()
    wait_until(lambda: s.ready() is not None or _healthz(s.http_port), 10, 0.05, "edge up")
    text = scrape(s.http_port)
    assert value(text, "aigw_broker_up") == 0
    assert value(text, "aigw_edge_broker_link_up") == 0
    assert "aigw_model_" not in text
    if shutil.which("promtool"):
        promtool_check(text)


def _healthz(port: int) -> bool:
    try:
        c = Http("127.0.0.1", port, timeout=2)
        status, _, _, _ = c.request("GET", "/healthz")
        c.close()
        return status == 200
    except OSError:
        return False


# ---------------------------------------------------------------- SSE bridge

def test_sse_bridge_relays_metrics_job_worker_and_edge(system):
    port = system.http_port
    wait_broker_metrics(port)
    sse = SSE(port)
    try:
        assert sse.read_head() == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        sse.start_reader()
        # The latest broker metrics come first, at once.
        topic, m = sse.next()
        assert topic == "metrics"
        assert {mo["name"] for mo in m["models"]} >= {"fast-sim", "slow-sim"}
        assert isinstance(m["counters"], dict) and m["broker_id"]
        # A worker joining shows up as a worker event.
        system.start_worker(7, models="fast-sim")
        _, w = sse.wait_for(lambda t, d: t == "worker" and d.get("id") == "w7")
        assert w["event"] == "join" and w["models"] == ["fast-sim"]
        # Races show up as job events with the winner and every attempt.
        c = system.client()
        status, headers, js, _ = c.chat(RACE)
        assert status == 200
        _, job = sse.wait_for(lambda t, d: t == "job")
        assert job["winner"] == "fast-sim" and job["outcome"] == "won"
        assert {a["model"]: a["outcome"] for a in job["attempts"]} == {
            "fast-sim": "won", "slow-sim": "cancelled"}
        assert job["targets"] == ["slow-sim", "fast-sim"]
        # The edge's own event, once a second.
        _, edge = sse.wait_for(lambda t, d: t == "edge" and d["requests_total"] >= 1)
        for key in ("ts_ms", "requests_in_flight", "rps", "errors_total", "error_rate",
                    "latency_ms", "overhead_ms", "broker_up", "workers"):
            assert key in edge, key
        assert edge["broker_up"] is True and edge["workers"] >= 2
        assert edge["latency_ms"]["p50"] > 0
        # Broker metrics keep coming once a second.
        _, m2 = sse.wait_for(lambda t, d: t == "metrics" and d["ts_ms"] > m["ts_ms"])
        fast = next(mo for mo in m2["models"] if mo["name"] == "fast-sim")
        assert fast["wins"] >= 1
        c.close()
    finally:
        sse.close()
    text = scrape(port)
    assert value(text, "aigw_edge_bridge_messages_total", topic="job") >= 1
    assert value(text, "aigw_edge_bridge_messages_total", topic="worker") >= 1


def test_sse_client_limit_503(system):
    """At most 32 event-stream clients (edge OBSERVE_CLIENTS_MAX), then 503."""
    port = system.http_port
    clients = []
    try:
        for _ in range(32):
            s = SSE(port)
            assert s.read_head() == 200
            clients.append(s)
        extra = SSE(port)
        assert extra.read_head() == 503
        extra.close()
        # Chat still works with every stream slot taken.
        assert system.http.chat(RACE)[0] == 200
    finally:
        for s in clients:
            s.close()
    text = scrape(port)
    assert value(text, "aigw_edge_bridge_refused_total") == 1


def test_stuck_browser_dropped_while_chat_keeps_working(system):
    port = system.http_port
    wait_broker_metrics(port)
    stuck = SSE(port, rcvbuf=4096)       # sends the GET, then never reads
    try:
        statuses: list[int] = []
        dropped = 0
        for _ in range(100):             # up to 20,000 races; stops at the drop
            statuses += race_load(port, 200, threads=8)
            dropped = value(scrape(port), "aigw_edge_bridge_dropped_total")
            if dropped:
                break
        assert dropped == 1
        assert statuses and all(s == 200 for s in statuses)
        assert system.http.chat(RACE)[0] == 200
        # The dropped browser's connection gets closed: reading now runs into EOF.
        stuck.sock.settimeout(90)
        while stuck.sock.recv(1 << 16):
            pass
    finally:
        stuck.close()
    wait_until(lambda: value(scrape(port), "aigw_edge_bridge_clients") == 0, 10, 0.1,
               "the dropped client to leave")


# ---------------------------------------------------------------- dashboard

def _chromium() -> str | None:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.path.exists(path) else None


def build_ui():
    npm = shutil.which("npm")
    assert npm, "npm not found"
    if not (UI / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=UI, check=True, timeout=600)
    subprocess.run([npm, "run", "build"], cwd=UI, check=True, timeout=300,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert (UI / "dist" / "index.html").exists()


def test_dashboard_served_and_not_built_page(make_system, tmp_path):
    """document_root without an index.html: / says how to build; API routes unaffected."""
    s = make_system(models=MODELS, extra_edge=f"    document_root = {tmp_path / 'nodist'}\n").start()
    c = s.client()
    status, headers, _, raw = c.request("GET", "/")
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert b"npm run build" in raw
    assert c.request("GET", "/v1/models")[0] == 200
    assert c.request("GET", "/v1/nope")[0] == 404
    (tmp_path / "nodist").mkdir()
    (tmp_path / "nodist" / "index.html").write_text("<p>dash</p>")
    (tmp_path / "nodist" / "app.js").write_text("console.log(1)")
    status, headers, _, raw = c.request("GET", "/")
    assert status == 200 and raw == b"<p>dash</p>" and headers["content-type"].startswith("text/html")
    status, headers, _, raw = c.request("GET", "/app.js")
    assert status == 200 and "javascript" in headers["content-type"]
    c.close()


def test_dashboard_end_to_end(make_system):
    node = shutil.which("node")
    if not node or not _chromium():
        pytest.skip("node or chromium not installed")
    build_ui()
    s = make_system(models=MODELS, extra_edge=f"    document_root = {UI / 'dist'}\n").start()
    stop = threading.Event()
    results: list[int] = []

    def traffic():
        c = s.client()
        while not stop.is_set():
            results.append(c.chat(RACE)[0])
            time.sleep(0.1)
        c.close()

    t = threading.Thread(target=traffic)
    t.start()
    shot = BUILD / "dashboard.png"
    if shot.exists():
        shot.unlink()
    try:
        res = subprocess.run(
            [node, str(UI / "e2e" / "dashboard.e2e.mjs"), "--url", f"http://127.0.0.1:{s.http_port}/",
             "--screenshot", str(shot), "--expect-models", "fast-sim,slow-sim",
             "--expect-winner", "fast-sim", "--timeout", "40000"],
            cwd=UI, capture_output=True, text=True, timeout=110)
    finally:
        stop.set()
        t.join()
    assert res.returncode == 0, res.stdout + res.stderr
    assert shot.exists() and shot.stat().st_size > 10000
    assert results and all(r == 200 for r in results)
