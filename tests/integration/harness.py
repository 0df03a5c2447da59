"""Start the real aigw binaries on loopback ports for integration tests.

A `System` writes a config file into a temp dir, starts the broker, a pool of
workers and the edge, waits for /readyz, and can kill or restart any process.
`FakeUpstream` runs tests/fakes/fake_upstream.py and reads its connection log.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AIGW_BUILD_DIR", ROOT / "build"))
BIN = BUILD / "bin"
FAKEUP = ROOT / "tests" / "fakes" / "fake_upstream.py"


#  Until the broker has started and reported its ports, the config names a port no
#  broker binds (9, privileged, outside the ephemeral range): an edge started alone
#  then sees no broker rather than some other test's.
NO_BROKER = "tcp://127.0.0.1:9"
BOUND = re.compile(rb"frontend tcp://127\.0\.0\.1:(\d+), backend tcp://127\.0\.0\.1:(\d+), "
                   rb"metrics tcp://127\.0\.0\.1:(\d+)")


def wait_until(pred, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        val = pred()
        if val:
            return val
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Http:
    """Tiny JSON-over-HTTP client on one keep-alive connection."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                headers: dict | None = None):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        try:
            js = json.loads(payload) if payload else None
        except ValueError:
            js = None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, js, payload

    def chat(self, model: str, content: str = "Hello", **extra):
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        body.update(extra)
        return self.request("POST", "/v1/chat/completions", body)

    def close(self):
        self.conn.close()


class FakeUpstream:
    def __init__(self, tmpdir: Path):
        self.log_path = tmpdir / "fakeup.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKEUP), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "wb"), text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"fake upstream failed to start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.http = Http("127.0.0.1", self.port)

    def script(self, table: dict):
        status, _, js, raw = self.http.request("PUT", "/_control/script", table)
        assert status == 200, raw

    def reset(self):
        self.http.request("POST", "/_control/reset", {})

    def log(self) -> dict:
        status, _, js, _ = self.http.request("GET", "/_control/log")
        assert status == 200
        return js

    def requests_for(self, model: str) -> list[dict]:
        return [r for r in self.log()["requests"] if r["model"] == model]

    def wait(self, timeout: float = 10.0, **at_least: int) -> dict:
        """Wait until every counter of the log ("requests", "connections",
        "closed_connections", or an outcome such as "stalled_closed") is at least its
        value: the fake answers when its log changes. Returns the counters."""
        status, _, js, raw = self.http.request(
            "POST", "/_control/wait", {"at_least": at_least, "timeout_ms": timeout * 1000})
        assert status == 200, raw
        if not js["ok"]:
            raise TimeoutError(f"fake upstream counters {js['stats']} never reached {at_least}")
        return js["stats"]

    def stop(self):
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class System:
    """Broker + workers + edge on fresh loopback ports with a generated config."""

    def __init__(self, tmpdir: Path, models: str, groups: str = "", workers: int = 2,
                 capacity: int = 16, heartbeat_ms: int = 200, liveness: int = 3,
                 extra_broker: str = "", extra_edge: str = ""):
        self.tmp = tmpdir
        #  Ports: the broker binds "*" and reports what it got (see start_broker), as
        #  the edge does for its HTTP port (see start_edge). No free-port race.
        self.front = self.back = self.metrics = 0
        self.http_port = 0
        self.cfg = tmpdir / "aigw.conf"
        self.cfg.write_text(
            "broker\n"
            f"    frontend = {NO_BROKER}\n"
            f"    backend = {NO_BROKER}\n"
            f"    metrics = {NO_BROKER}\n"
            f"    heartbeat_ms = {heartbeat_ms}\n"
            f"    liveness = {liveness}\n"
            f"{extra_broker}"
            "edge\n"
            "    listen = 127.0.0.1:0\n"
            "    max_body = 65536\n"
            f"{extra_edge}"
            "worker\n"
            f"    capacity = {capacity}\n"
            f"models\n{models}"
            + (f"groups\n{groups}" if groups else ""))
        self.procs: dict[str, subprocess.Popen] = {}
        self.nworkers = workers
        self.extra_ports: dict[int, tuple[int, int, int]] = {}
        self.http = None
        self.auth_headers: dict[str, str] = {}  # sent by the readiness probes (edge/auth = on)

    def _start(self, name: str, argv: list[str]):
        logf = open(self.tmp / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)

    def start_broker(self):
        """Start the broker. The first time, it binds wildcard ports and logs the ones
        it got; they are then written into the config, so the workers, the edge, the
        agent and a restarted broker all use them (as a deployment's fixed ports)."""
        log = self.tmp / "broker.log"
        offset = log.stat().st_size if log.exists() else 0
        argv = [str(BIN / "aigw-broker"), "--config", str(self.cfg)]
        if not self.front:
            argv += ["--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                     "--metrics", "tcp://127.0.0.1:*"]
        self._start("broker", argv)
        if self.front:
            return

        def bound():
            self.check_alive()
            with open(log, "rb") as f:
                f.seek(offset)
                return BOUND.search(f.read())
        m = wait_until(bound, 20, what="the broker's bound endpoints")
        self.front, self.back, self.metrics = (int(m.group(i)) for i in (1, 2, 3))
        text = self.cfg.read_text()
        for key, port in (("frontend", self.front), ("backend", self.back),
                          ("metrics", self.metrics)):
            text = text.replace(f"    {key} = {NO_BROKER}\n",
                                f"    {key} = tcp://127.0.0.1:{port}\n", 1)
        self.cfg.write_text(text)

    def start_extra_broker(self, i: int):
        """Start broker number i (1, 2, ...) besides the first, on ports of its own:
        wildcards the first time (read from its log), the same ports after a restart.
        Call add_brokers_to_config once they are up so the edge and workers use all."""
        name = f"broker{i}"
        log = self.tmp / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        ports = self.extra_ports.get(i)
        eps = [f"tcp://127.0.0.1:{p}" for p in ports] if ports else ["tcp://127.0.0.1:*"] * 3
        self._start(name, [str(BIN / "aigw-broker"), "--config", str(self.cfg),
                           "--frontend", eps[0], "--backend", eps[1], "--metrics", eps[2]])
        if ports:
            return

        def bound():
            self.check_alive()
            with open(log, "rb") as f:
                f.seek(offset)
                return BOUND.search(f.read())
        m = wait_until(bound, 20, what=f"{name}'s bound endpoints")
        self.extra_ports[i] = tuple(int(m.group(k)) for k in (1, 2, 3))

    def add_brokers_to_config(self):
        """edge/broker and worker/broker list every broker started so far."""
        fronts = [self.front] + [p[0] for _, p in sorted(self.extra_ports.items())]
        backs = [self.back] + [p[1] for _, p in sorted(self.extra_ports.items())]
        text = self.cfg.read_text()
        text = re.sub(r"(?m)^    broker = .*\n", "", text)
        for section, ports in (("edge", fronts), ("worker", backs)):
            eps = ", ".join(f"tcp://127.0.0.1:{p}" for p in ports)
            text = re.sub(rf"(?m)^{section}\n", f"{section}\n    broker = {eps}\n", text,
                          count=1)
        self.cfg.write_text(text)

    def edge_metrics(self) -> dict[str, float]:
        """The edge's /metrics samples without labels, by name."""
        c = Http("127.0.0.1", self.http_port, timeout=5)
        status, _, _, raw = c.request("GET", "/metrics", headers=self.auth_headers)
        c.close()
        assert status == 200, raw
        out = {}
        for line in raw.decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
                out[parts[0]] = float(parts[1])
        return out

    def start_worker(self, i: int, models: str | None = None):
        argv = [str(BIN / "aigw-worker"), "--config", str(self.cfg), "--id", f"w{i}"]
        if models:
            argv += ["--models", models]
        self._start(f"worker{i}", argv)

    def start_edge(self):
        """Start the edge on a port it picks itself (no free-port race with other
        sockets) and read the port from its "listening on" log line."""
        self.http_port = start_named_edge(self, "edge")

    def start(self, wait_workers: int | None = None):
        self.start_broker()
        for i in range(self.nworkers):
            self.start_worker(i)
        self.start_edge()
        self.http = Http("127.0.0.1", self.http_port)
        self.wait_ready(wait_workers if wait_workers is not None else self.nworkers)
        return self

    def client(self) -> Http:
        return Http("127.0.0.1", self.http_port)

    def ready(self) -> dict | None:
        try:
            c = Http("127.0.0.1", self.http_port, timeout=2)
            status, _, js, _ = c.request("GET", "/readyz")
            c.close()
            return js if status == 200 else None
        except OSError:
            return None

    def live_workers(self) -> int:
        try:
            c = Http("127.0.0.1", self.http_port, timeout=2)
            status, _, js, _ = c.request("GET", "/v1/models", headers=self.auth_headers)
            c.close()
        except OSError:
            return 0
        if status != 200 or not js:
            return 0
        return max([m.get("aigw", {}).get("workers", 0) for m in js.get("data", [])] or [0])

    def wait_ready(self, workers: int = 1, timeout: float = 15.0):
        def ok():
            self.check_alive()
            return self.ready() is not None and self.live_workers() >= workers
        wait_until(ok, timeout, what=f"edge ready with {workers} workers")

    def check_alive(self):
        for name, p in self.procs.items():
            if p.poll() is not None and not getattr(p, "_expected_exit", False):
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.logs(name)}")

    def kill(self, name: str, sig=signal.SIGKILL):
        p = self.procs[name]
        p._expected_exit = True
        p.send_signal(sig)
        p.wait(10)

    def logs(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self):
        if self.http:
            self.http.close()
        for name, p in self.procs.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_named_edge(system: System, name: str, config: Path | None = None) -> int:
    """Start one more aigw-edge beside system's own ("edge"), as process `name` with
    its own log, on a port it picks itself; config defaults to the system's file.
    Returns its HTTP port (read from the "listening on" log line). system.kill(name)
    and system.logs(name) work on it; system.stop() stops it."""
    log = system.tmp / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0
    system._start(name, [str(BIN / "aigw-edge"), "--config", str(config or system.cfg)])

    def port():
        system.check_alive()
        with open(log, "rb") as f:
            f.seek(offset)
            m = re.search(rb"listening on https?://[^ ]*:(\d+) ", f.read())
        return int(m.group(1)) if m else 0
    return wait_until(port, 20, what=f"{name}'s listening port")
