"""Edge capacity figures: many held requests, many long streams, slowloris. Not a test.

Starts its own aigw system (broker, workers, edge from $BUILD/bin) on fresh loopback
ports in a temp dir, once per scenario, and drives it from one asyncio loop with a
minimal HTTP/1.1 client (raw asyncio streams, one TCP connection per request, client
source addresses spread over 127.0.0.2, 127.0.0.3, ... so neither ephemeral ports nor
per-IP limits decide the result). Latency probes run in a separate process (blocking
sockets, one keep-alive connection from 127.0.0.1, paced the same before and under
load) so the load loop's own work does not show up in them.

  hold       N concurrent non-streaming requests to a sim model that answers after
             exactly --hold-ms; while they are held: edge RSS, 50 probes to a fast model
  streams    N concurrent streams, each lasting --hold-ms with a chunk every
             1/--stream-tps s; completed streams, chunks, RSS, probes
  slowloris  S sockets sending request headers 1 byte per second for --slow-s; 50 probes
             before and 50 during; how the edge treated the slow sockets

Every wait is bounded; failures (refused, timed out, reset, non-200) are counted and
printed, never raised. Usage: scripts/edge_load --help
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import http.client
import ipaddress
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEW_EDGE_KEYS = ("max_connections", "max_per_ip", "max_jobs")
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
FAST, HOLD, STREAM = "fast-sim", "hold-sim", "stream-sim"
LIVE: set = set()           # systems still running (stopped again in main's finally)
CHILD_PIDS: set = set()     # probe processes still running
PROBE_GAP = 0.1             # s between probe starts (hold, streams), idle and loaded alike


# ---------------------------------------------------------------------------- helpers

def log(msg: str):
    print(f"\033[1;34m[edge_load]\033[0m {msg}", file=sys.stderr, flush=True)


def pct(xs, p):
    """Percentile with linear interpolation (numpy's default); nan when empty."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt(v, nd=2):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def hist_str(c: Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])) or "none"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source_ip(i: int, per_ip: int) -> str:
    """127.0.0.2 for the first per_ip connections, then 127.0.0.3, ..."""
    return str(ipaddress.IPv4Address(0x7F000002 + i // per_ip))


def proc_status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process in seconds (nan if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def proc_fds(pid: int):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def read_sysctl(name: str) -> str:
    try:
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().split("\n")[0].replace("\t", "-")
    except OSError:
        return "?"


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def chat_request(model: str, stream: bool = False, host: str = "127.0.0.1") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    data = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\nAccept: */*\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def parse_head(head: bytes):
    """Status line + headers -> (status, {lower name: value})."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(None, 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    hdrs = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            hdrs[k.strip().lower()] = v.strip()
    return status, hdrs


def errname(e: BaseException) -> str:
    n = getattr(e, "errno", None)
    if n and n in errno.errorcode:
        return errno.errorcode[n]
    return type(e).__name__


# ---------------------------------------------------------------------------- probe child

def probe_child(host: str, port: int, model: str):
    """Separate process: reads {"count","budget","timeout"} lines, runs sequential probes
    on one keep-alive connection from 127.0.0.1, prints one JSON line per command."""
    req = chat_request(model)
    for line in sys.stdin:
        cmd = json.loads(line)
        print(json.dumps(run_probes(host, port, req, cmd["count"], cmd["budget"], cmd["timeout"],
                                    cmd.get("gap", 0.0))), flush=True)


def _recv_response(sock: socket.socket, deadline: float):
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed" if not buf else "closed mid-headers")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    status, hdrs = parse_head(head)
    n = int(hdrs.get("content-length", "0") or 0)
    while len(body) < n:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed mid-body")
        body += d
    return status, hdrs, body


def run_probes(host: str, port: int, req: bytes, count: int, budget: float, timeout: float,
               gap: float = 0.0) -> dict:
    """count sequential requests, the k-th not before start + k * gap, none after budget."""
    t_start = time.monotonic()
    end = t_start + budget
    lat, errors, connects, connect_ms, samples = [], Counter(), 0, [], {}
    sock = None
    consecutive = 0
    for k in range(count):
        if gap > 0:
            time.sleep(max(0.0, t_start + k * gap - time.monotonic()))
        if time.monotonic() >= end:
            errors["not_run (budget)"] += count - len(lat) - sum(errors.values())
            break
        for attempt in (0, 1):
            try:
                if sock is None:
                    sock = socket.socket()
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.bind(("127.0.0.1", 0))
                    sock.settimeout(max(0.5, min(timeout, end - time.monotonic())))
                    t0 = time.perf_counter()
                    sock.connect((host, port))
                    connect_ms.append((time.perf_counter() - t0) * 1000)
                    connects += 1
                    fresh = True
                else:
                    fresh = False
                t0 = time.perf_counter()
                sock.sendall(req)
                # wait up to timeout, but not (much) past the budget
                now = time.monotonic()
                status, hdrs, body = _recv_response(sock, min(now + timeout, max(end, now + 0.5)))
                ms = (time.perf_counter() - t0) * 1000
                if status == 200:
                    lat.append(ms)
                    consecutive = 0
                else:
                    errors[f"http {status}"] += 1
                    samples.setdefault(str(status), body[:160].decode("utf-8", "replace"))
                if hdrs.get("connection", "").lower() == "close":
                    sock.close()
                    sock = None
                break
            except EOFError as e:
                sock.close()
                sock = None
                if str(e) == "closed" and not fresh and attempt == 0:
                    continue        # an idle keep-alive connection the server closed: retry once
                errors[f"eof ({e})"] += 1
                consecutive += 1
                break
            except (socket.timeout, TimeoutError):
                errors["timeout"] += 1
                consecutive += 1
                if sock:
                    sock.close()
                sock = None
                break
            except OSError as e:
                errors[f"error {errname(e)}"] += 1
                consecutive += 1
                if sock:
                    sock.close()
                sock = None
                break
        if consecutive >= 3:
            left = count - len(lat) - sum(errors.values())
            if left > 0:
                errors["not_run (3 failures in a row)"] += left
            break
    if sock:
        sock.close()
    return {"lat_ms": lat, "errors": dict(errors), "connects": connects, "connect_ms": connect_ms,
            "elapsed_s": time.monotonic() - t_start, "samples": samples}


class Prober:
    """The parent side of the probe child (asyncio subprocess, no fds inherited)."""

    def __init__(self, proc):
        self.proc = proc

    @classmethod
    async def start(cls, port: int, model: str):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--_probe-child", "127.0.0.1", str(port), model,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        CHILD_PIDS.add(proc.pid)
        return cls(proc)

    async def run(self, count: int, budget: float, timeout: float, gap: float = 0.0) -> dict:
        self.proc.stdin.write(json.dumps({"count": count, "budget": budget, "timeout": timeout,
                                          "gap": gap}).encode() + b"\n")
        await self.proc.stdin.drain()
        try:
            async with asyncio.timeout(budget + timeout + 10):
                line = await self.proc.stdout.readline()
        except TimeoutError:
            line = b""
        if not line:
            return {"lat_ms": [], "errors": {"probe process gave no answer": count}, "connects": 0,
                    "connect_ms": [], "elapsed_s": budget}
        return json.loads(line)

    def stop(self):
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        CHILD_PIDS.discard(self.proc.pid)


def probe_summary(r: dict | None) -> str:
    if not r:
        return "not run"
    lat = r["lat_ms"]
    n = len(lat) + sum(r["errors"].values())
    s = (f"{len(lat)}/{n} ok in {r['elapsed_s']:.2f} s: p50 {fmt(pct(lat, 50))} p99 {fmt(pct(lat, 99))} "
         f"max {fmt(max(lat) if lat else None)} ms")
    if r["connect_ms"]:
        s += f"; {r['connects']} connect(s), first {r['connect_ms'][0]:.2f} ms"
    if r["errors"]:
        s += f"; failed: {hist_str(Counter(r['errors']))}"
    for code, body in r.get("samples", {}).items():
        s += f"\n                  first {code} body: {body.strip()}"
    return s


# ---------------------------------------------------------------------------- async HTTP

class AsyncHttp:
    """Keep-alive GET client on the load loop (for /metrics); reconnects after errors."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    def close(self):
        if self.writer:
            self.writer.close()
        self.reader = self.writer = None

    async def get(self, path: str, timeout: float):
        try:
            async with asyncio.timeout(timeout):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(
                        "127.0.0.1", self.port, local_addr=("127.0.0.1", 0))
                self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                head = await self.reader.readuntil(b"\r\n\r\n")
                status, hdrs = parse_head(head)
                body = await self.reader.readexactly(int(hdrs.get("content-length", "0") or 0))
                if hdrs.get("connection", "").lower() == "close":
                    self.close()
                return status, body
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return None, b""


def parse_metrics(text: str) -> dict:
    want = {"aigw_edge_http_requests_in_flight": "edge", "aigw_broker_jobs_in_flight": "broker"}
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, rest = line.partition(" ")
        try:
            val = float(rest.split()[0])
        except (IndexError, ValueError):
            continue
        base = name.split("{", 1)[0]
        if base in want:
            out[want[base]] = val
        elif base == "aigw_model_in_flight":
            out["model:" + name.split('model="', 1)[-1].split('"', 1)[0]] = val
    return out


class Monitor:
    """Samples edge RSS (every 0.2 s) and /metrics (every 0.5 s, 1.5 s timeout each)."""

    def __init__(self, edge_pid: int, port: int, model: str, self_count: float):
        self.pid, self.model, self.self_count = edge_pid, model, self_count
        self.http = AsyncHttp(port)
        self.rss_max = 0
        self.threads_max = 0
        self.edge_peak = self.model_peak = self.broker_peak = 0.0
        self.metrics_ok = self.metrics_failed = 0
        self.target = None          # held count to wait for
        self.reached_at = None      # monotonic time the target was reached
        self.reached = asyncio.Event()
        self.tasks = []

    def held(self, m: dict) -> float:
        return max(m.get("edge", 0) - self.self_count, m.get("model:" + self.model, 0))

    async def _rss(self):
        while True:
            st = proc_status(self.pid)
            self.rss_max = max(self.rss_max, st.get("VmRSS", 0))
            self.threads_max = max(self.threads_max, st.get("Threads", 0))
            await asyncio.sleep(0.2)

    async def _lag(self):
        # how late the load loop wakes up: its own saturation shows here, not in the probes
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            self.lag_max_ms = max(self.lag_max_ms, (time.monotonic() - t - 0.05) * 1000)

    async def _metrics(self):
        while True:
            t0 = time.monotonic()
            status, body = await self.http.get("/metrics", 1.5)
            if status == 200:
                self.metrics_ok += 1
                m = parse_metrics(body.decode("utf-8", "replace"))
                self.edge_peak = max(self.edge_peak, m.get("edge", 0) - self.self_count)
                self.model_peak = max(self.model_peak, m.get("model:" + self.model, 0))
                self.broker_peak = max(self.broker_peak, m.get("broker", 0))
                if self.target is not None and not self.reached.is_set() and self.held(m) >= self.target:
                    self.reached_at = time.monotonic()
                    self.reached.set()
            else:
                self.metrics_failed += 1
            await asyncio.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))

    def start(self):
        self.lag_max_ms = 0.0
        self.t_start, self.edge_cpu0, self.self_cpu0 = time.monotonic(), proc_cpu_s(self.pid), self_cpu_s()
        self.tasks = [asyncio.ensure_future(self._rss()), asyncio.ensure_future(self._metrics()),
                      asyncio.ensure_future(self._lag())]

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.http.close()
        self.cpu = {"wall_s": time.monotonic() - self.t_start,
                    "edge_cpu_s": proc_cpu_s(self.pid) - self.edge_cpu0,
                    "client_cpu_s": self_cpu_s() - self.self_cpu0, "client_lag_max_ms": self.lag_max_ms}


def cpu_line(c: dict) -> str:
    return (f"  cpu: edge {c['edge_cpu_s']:.2f} s, load client {c['client_cpu_s']:.2f} s over {c['wall_s']:.1f} s wall;"
            f" load client loop lag max {c['client_lag_max_ms']:.0f} ms")


# ---------------------------------------------------------------------------- the system

class System:
    """Broker + workers + edge with a generated config; one per scenario."""

    def __init__(self, args, tmp: Path, tag: str):
        self.args, self.tmp, self.tag = args, tmp, tag
        self.bin = Path(args.build) / "bin"
        self.procs: dict[str, subprocess.Popen] = {}
        self.front, self.back, self.metrics, self.port = (free_port() for _ in range(4))
        self.edge_keys = False
        self.warmup_failed = Counter()      # chat answers other than 200 before ready

    def config(self, edge_keys: bool, for_edge: bool = True) -> str:
        a = self.args
        need = max(a.n, a.slow) + 2000
        capacity = max(64, math.ceil(need / a.workers))
        deadline = a.hold_ms + int(a.margin_s * 1000) + 10000
        words = max(1, round(a.hold_ms * a.stream_tps / 1000))
        text = " ".join(["tok"] * words)
        edge = f"    listen = 127.0.0.1:{self.port}\n"
        if a.edge_threads and for_edge:
            edge += f"    threads = {a.edge_threads}\n"
        if edge_keys:
            lim = max(20000, a.n + a.slow + 1000)
            edge += "".join(f"    {k} = {lim}\n" for k in NEW_EDGE_KEYS)
        return (
            "broker\n"
            f"    frontend = tcp://127.0.0.1:{self.front}\n"
            f"    backend = tcp://127.0.0.1:{self.back}\n"
            f"    metrics = tcp://127.0.0.1:{self.metrics}\n"
            f"    queue_limit = {need}\n"
            f"    deadline_ms = {deadline}\n"
            f"    max_deadline_ms = {max(600000, deadline)}\n"
            f"edge\n{edge}"
            "worker\n"
            f"    capacity = {capacity}\n"
            "models\n"
            f"    {FAST}\n        provider = sim\n        latency_ms = 1\n        jitter = 0\n"
            f"    {HOLD}\n        provider = sim\n        latency_ms = {a.hold_ms}\n        jitter = 0\n"
            f"    {STREAM}\n        provider = sim\n        latency_ms = {round(1000 / a.stream_tps)}\n"
            f"        jitter = 0\n        tokens_per_s = {a.stream_tps}\n        text = \"{text}\"\n")

    def _start(self, name: str, argv: list[str]):
        LIVE.add(self)
        logf = open(self.tmp / f"{self.tag}-{name}.log", "ab")
        # own session: a Ctrl-C in the terminal reaches only this script, which stops them
        self.procs[name] = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()

    def logs(self, name: str, tail: int = 2000) -> str:
        p = self.tmp / f"{self.tag}-{name}.log"
        return p.read_text(errors="replace")[-tail:] if p.exists() else ""

    def _ready(self, workers: int) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            if r.status != 200:
                c.close()
                return False
            c.request("GET", "/v1/models")
            r = c.getresponse()
            js = json.loads(r.read() or b"{}")
            c.close()
            live = max([m.get("aigw", {}).get("workers", 0) for m in js.get("data", [])] or [0])
            return live >= workers
        except (OSError, ValueError, http.client.HTTPException):
            return False

    def _chat_ok(self) -> bool:
        """Requests to the fast model on 32 fresh connections all answer 200: readiness as
        clients see it (an edge with several event loops may have a loop whose broker link
        is not up yet while /readyz, answered by another loop, already says ready)."""
        body = json.dumps({"model": FAST, "messages": [{"role": "user", "content": "hi"}]})
        for _ in range(32):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                c.close()
            except (OSError, http.client.HTTPException):
                self.warmup_failed["error"] += 1
                return False
            if r.status != 200:
                self.warmup_failed[str(r.status)] += 1
                return False
        return True

    def start(self, edge_keys_mode: str):
        base = self.tmp / f"{self.tag}-aigw.conf"
        base.write_text(self.config(False, for_edge=False))     # broker and workers
        self._start("broker", [str(self.bin / "aigw-broker"), "--config", str(base)])
        for i in range(self.args.workers):
            self._start(f"worker{i}", [str(self.bin / "aigw-worker"), "--config", str(base),
                                       "--id", f"load-w{i}"])
        tries = {"auto": [True, False], "yes": [True], "no": [False]}[edge_keys_mode]
        for keys in tries:
            cfg = self.tmp / f"{self.tag}-edge.conf"
            cfg.write_text(self.config(keys))
            self._start("edge", [str(self.bin / "aigw-edge"), "--config", str(cfg)])
            end = time.monotonic() + 20
            while time.monotonic() < end:
                for name, p in self.procs.items():
                    if p.poll() is not None and name != "edge":
                        raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.logs(name)}")
                e = self.procs["edge"]
                if e.poll() is not None:
                    break
                if self._ready(self.args.workers) and self._chat_ok():
                    self.edge_keys = keys
                    return
                time.sleep(0.05)
            e = self.procs["edge"]
            if e.poll() is None:
                raise RuntimeError(f"edge not ready after 20 s:\n{self.logs('edge')}")
            if keys and e.returncode == 2 and "unknown key" in self.logs("edge") and len(tries) > 1:
                continue    # the old edge: start it again without the new keys
            raise RuntimeError(f"edge exited with {e.returncode}:\n{self.logs('edge')}")

    @property
    def edge_pid(self) -> int:
        return self.procs["edge"].pid

    def stop(self):
        live = {n: p for n, p in self.procs.items() if p.poll() is None}
        for p in live.values():
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        second = False
        for name, p in live.items():
            while p.poll() is None and time.monotonic() < end:
                if name == "edge" and not second and time.monotonic() > end - 4:
                    p.send_signal(signal.SIGTERM)   # a second signal ends the edge's drain
                    second = True
                time.sleep(0.05)
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs.clear()
        LIVE.discard(self)


# ---------------------------------------------------------------------------- load

class Load:
    """Results of N one-request connections (non-streaming or streaming)."""
    CONNECTING, SENT, HEADERS, DONE = 0, 1, 2, 3

    def __init__(self, n: int):
        self.n = n
        self.stage = bytearray(n)
        self.outcome = Counter()
        self.connected = self.sent = 0
        self.t_connected_all = self.t_sent_all = None
        self.answer_times = []      # seconds from send to full answer
        self.chunks = 0
        self.all_sent = asyncio.Event()

    def _mark(self, t0):
        if self.connected + self.outcome["_pre"] >= self.n and self.t_connected_all is None:
            self.t_connected_all = time.monotonic() - t0

    def failed_before_send(self, i: int, what: str, t0: float):
        self.outcome[what] += 1
        self.outcome["_pre"] += 1
        self.stage[i] = self.DONE
        self._mark(t0)
        self._sent_check(t0)

    def _sent_check(self, t0):
        if self.sent + self.outcome["_pre"] >= self.n:
            if self.t_sent_all is None:
                self.t_sent_all = time.monotonic() - t0
            self.all_sent.set()


async def one_request(i: int, ld: Load, req: bytes, port: int, src: str, sem: asyncio.Semaphore,
                      connect_timeout: float, stream: bool, t0: float):
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    except OSError:
        pass
    writer = None
    try:
        async with sem:
            try:
                sock.bind((src, 0))
                async with asyncio.timeout(connect_timeout):
                    await loop.sock_connect(sock, ("127.0.0.1", port))
            except TimeoutError:
                sock.close()
                ld.failed_before_send(i, "connect timeout", t0)
                return
            except OSError as e:
                sock.close()
                ld.failed_before_send(i, f"connect {errname(e)}", t0)
                return
        ld.connected += 1
        ld._mark(t0)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(req)
        t_send = time.monotonic()
        ld.sent += 1
        ld.stage[i] = Load.SENT
        ld._sent_check(t0)
        head = await reader.readuntil(b"\r\n\r\n")
        ld.stage[i] = Load.HEADERS
        status, hdrs = parse_head(head)
        if not stream or status != 200 or "content-length" in hdrs:
            if "content-length" in hdrs:
                await reader.readexactly(int(hdrs["content-length"]))
            elif "chunked" in hdrs.get("transfer-encoding", "").lower():
                body = b""
                while not body.endswith(b"0\r\n\r\n"):
                    d = await reader.read(65536)
                    if not d:
                        raise asyncio.IncompleteReadError(body, None)
                    body = body[-16:] + d
            ld.outcome["200" if status == 200 and not stream else f"http {status}"] += 1
        else:
            # SSE over chunked framing: count events without parsing (a tail carries
            # patterns split across reads); end after [DONE] and the last chunk
            tail = b""
            done = error = False
            chunks = 0
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf = tail + data
                chunks += buf.count(b"data: ") - tail.count(b"data: ")
                if not done and b"data: [DONE]" in buf:
                    done = True
                if not error and b"event: error" in buf:
                    error = True
                if (done or error) and buf.endswith(b"0\r\n\r\n"):
                    break
                tail = buf[-15:]
            ld.chunks += chunks - (1 if done else 0)
            ld.outcome["done" if done else "error event" if error else "closed before [DONE]"] += 1
        ld.answer_times.append(time.monotonic() - t_send)
    except asyncio.IncompleteReadError as e:
        ld.outcome["closed before answer" if not e.partial else "closed mid-answer"] += 1
    except (asyncio.LimitOverrunError, ValueError):
        ld.outcome["bad response"] += 1
    except OSError as e:
        ld.outcome[f"error {errname(e)}"] += 1
    except Exception as e:     # noqa: BLE001 - counted, never raised: this is a measurement
        ld.outcome[f"client error {type(e).__name__}"] += 1
    finally:
        ld.stage[i] = Load.DONE
        if writer is not None:
            writer.close()
        elif sock.fileno() >= 0:
            sock.close()


async def scenario_load(args, sysm: System, stream: bool) -> dict:
    name = "streams" if stream else "hold"
    model = STREAM if stream else HOLD
    n = args.n
    hold_s = args.hold_ms / 1000
    res = {"scenario": name, "n": n}
    prober = await Prober.start(sysm.port, FAST)
    try:
        # idle figures first: the edge's own in-flight count, RSS, a probe baseline
        h = AsyncHttp(sysm.port)
        status, body = await h.get("/metrics", 3)
        h.close()
        self_count = parse_metrics(body.decode()).get("edge", 0) if status == 200 else 0
        res["rss_idle_kb"] = proc_status(sysm.edge_pid).get("VmRSS", 0)
        res["probe_idle"] = await prober.run(args.probes, 15, args.probe_timeout, PROBE_GAP)

        mon = Monitor(sysm.edge_pid, sysm.port, model, self_count)
        mon.target = n
        mon.start()
        ld = Load(n)
        sem = asyncio.Semaphore(args.connect_batch)
        req = chat_request(model, stream)
        gc.disable()
        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(one_request(i, ld, req, sysm.port, source_ip(i, args.per_ip), sem,
                                                   args.connect_timeout, stream, t0))
                 for i in range(n)]
        # every request sent (or failed before it could be), bounded
        try:
            async with asyncio.timeout(hold_s + args.margin_s):
                await ld.all_sent.wait()
        except TimeoutError:
            pass
        t_sent = time.monotonic()
        # the edge holds all N (edge gauge or broker per-model count), bounded: give up at
        # 60 % of the hold time (at least 1 s after the last send) so probes still run
        # while the requests are held
        try:
            async with asyncio.timeout(max(1.0, t0 + 0.6 * hold_s - time.monotonic())):
                await mon.reached.wait()
        except TimeoutError:
            pass
        res["reached_s"] = (mon.reached_at - t0) if mon.reached_at else None
        st = proc_status(sysm.edge_pid)
        res["at_peak"] = {"rss_kb": st.get("VmRSS"), "threads": st.get("Threads"), "fds": proc_fds(sysm.edge_pid),
                          "held_client_view": sum(1 for s in ld.stage if s in (Load.SENT, Load.HEADERS))}
        # probes while held: end before the first held answer is due
        window = t0 + hold_s - time.monotonic() - 0.5
        res["probe_window_s"] = window
        # paced like the idle ones (half the window at most) so they sample the held period
        gap = min(PROBE_GAP, max(0.0, window / 2) / args.probes)
        res["probe_load"] = await prober.run(args.probes, max(1.0, window), args.probe_timeout, gap)
        res["probe_in_window"] = time.monotonic() < t0 + hold_s
        # every answer, bounded by hold + margin after the last send
        pending = [t for t in tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, t_sent + hold_s + args.margin_s - time.monotonic()))
        left = Counter()
        for t, s in zip(tasks, ld.stage):
            if not t.done():
                left[{Load.CONNECTING: "no answer (still connecting)", Load.SENT: "no answer (no headers)",
                      Load.HEADERS: "no answer (headers, body not finished)"}.get(s, "no answer")] += 1
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gc.enable()
        ld.outcome.update(left)
        ld.outcome.pop("_pre", None)
        await mon.stop()
        res.update(connected=ld.connected, sent=ld.sent, t_connected_all=ld.t_connected_all,
                   t_sent_all=ld.t_sent_all, outcome=dict(ld.outcome), chunks=ld.chunks,
                   answer_min=min(ld.answer_times, default=None), answer_max=max(ld.answer_times, default=None),
                   answer_p50=pct(ld.answer_times, 50),
                   rss_max_kb=max(mon.rss_max, res["at_peak"]["rss_kb"] or 0), threads_max=mon.threads_max,
                   edge_peak=mon.edge_peak, model_peak=mon.model_peak, broker_peak=mon.broker_peak,
                   metrics_ok=mon.metrics_ok, metrics_failed=mon.metrics_failed, cpu=mon.cpu,
                   words=max(1, round(args.hold_ms * args.stream_tps / 1000)))
        return res
    finally:
        gc.enable()
        prober.stop()


# ---------------------------------------------------------------------------- slowloris

async def slow_socket(i: int, port: int, src: str, sem, st: dict, socks: list, connect_timeout: float, t0: float):
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    except OSError:
        pass
    async with sem:
        try:
            sock.bind((src, 0))
            async with asyncio.timeout(connect_timeout):
                await loop.sock_connect(sock, ("127.0.0.1", port))
        except TimeoutError:
            sock.close()
            st["connect"][i] = "connect timeout"
            return
        except OSError as e:
            sock.close()
            st["connect"][i] = f"connect {errname(e)}"
            return
    t_conn = time.monotonic()
    st["connect"][i] = "ok"
    reader, writer = await asyncio.open_connection(sock=sock)
    socks[i] = writer
    first = b""
    try:
        while True:
            d = await reader.read(4096)
            if not d:
                st["closed"][i] = ("eof", time.monotonic() - t_conn, first)
                return
            if not first:
                st["answered"][i] = time.monotonic() - t_conn
            if len(first) < 200:
                first += d[:200 - len(first)]
    except OSError as e:
        st["closed"][i] = (errname(e), time.monotonic() - t_conn, first)
    finally:
        socks[i] = None
        writer.close()


def slow_bytes(n: int) -> bytes:
    head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    pad = max(16, n - len(head) + 16)
    return (head + "X-Pad: " + "a" * pad + "\r\n").encode()


async def scenario_slowloris(args, sysm: System) -> dict:
    S = args.slow
    res = {"scenario": "slowloris", "n": S}
    prober = await Prober.start(sysm.port, FAST)
    tasks = []
    try:
        # probes are paced over most of the run (so they also see the edge closing slow
        # sockets); the ones before are paced the same, since pacing alone changes latency
        gap = max(0.0, args.slow_s - 3) / args.probes
        res["rss_idle_kb"] = proc_status(sysm.edge_pid).get("VmRSS", 0)
        res["probe_idle"] = await prober.run(args.probes, args.probes * gap + 15, args.probe_timeout, gap)
        mon = Monitor(sysm.edge_pid, sysm.port, FAST, 0)
        mon.start()
        st = {"connect": [None] * S, "closed": [None] * S, "answered": [None] * S}
        socks = [None] * S
        payload = slow_bytes(int(args.slow_s) + 5)
        sem = asyncio.Semaphore(args.connect_batch)
        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(slow_socket(i, sysm.port, source_ip(i, args.per_ip), sem, st, socks,
                                                   args.connect_timeout, t0)) for i in range(S)]
        pos = [0] * S
        t_end = t0 + args.slow_s

        async def drip():
            # one byte per open socket per second; the first byte as soon as it connects
            while True:
                for i, w in enumerate(socks):
                    if w is not None and pos[i] < len(payload) and not w.is_closing():
                        w.write(payload[pos[i]:pos[i] + 1])
                        pos[i] += 1
                await asyncio.sleep(1.0)

        dripper = asyncio.ensure_future(drip())
        # every slow socket connected (or failed), then 2 s of dripping; but the probes
        # start at 40 % of the run time at the latest (connects may go on meanwhile)
        t_probe = t0 + 0.4 * args.slow_s
        while time.monotonic() < t_probe and sum(1 for c in st["connect"] if c is not None) < S:
            await asyncio.sleep(0.1)
        settled = sum(1 for c in st["connect"] if c is not None) >= S
        res["t_connected_all"] = time.monotonic() - t0 if settled else None
        await asyncio.sleep(min(2.0, max(0.0, t_probe - time.monotonic())))
        res["open_at_probe"] = sum(1 for w in socks if w is not None)
        res["probe_start_s"] = time.monotonic() - t0
        left = t_end - time.monotonic()
        res["probe_load"] = await prober.run(args.probes, max(3.0, left), args.probe_timeout,
                                             min(gap, max(0.0, left - 0.5) / args.probes))
        res["probe_gap_ms"] = gap * 1000
        res["probe_end_s"] = time.monotonic() - t0
        while time.monotonic() < t_end:
            await asyncio.sleep(0.2)
        dripper.cancel()
        res["open_at_end"] = sum(1 for w in socks if w is not None)
        res["bytes_sent_max"] = max(pos, default=0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(dripper, *tasks, return_exceptions=True)
        await mon.stop()
        res["rss_max_kb"] = mon.rss_max
        res["cpu"] = mon.cpu
        res["threads_max"] = mon.threads_max
        res["connect"] = dict(Counter(c or "still connecting at the end" for c in st["connect"]))
        closed = [c for c in st["closed"] if c]
        kinds = Counter()
        for how, _, first in closed:
            line = first.split(b"\r\n", 1)[0].decode("latin-1", "replace") if first else "(no bytes)"
            body = first.partition(b"\r\n\r\n")[2][:60].decode("latin-1", "replace")
            kinds[f"{how}: {line}" + (f" | {body}" if body else "")] += 1
        res["closed"] = len(closed)
        res["closed_kinds"] = dict(kinds)
        times = [c[1] for c in closed]
        res["closed_times"] = (min(times), pct(times, 50), max(times)) if times else None
        ans = [a for a in st["answered"] if a is not None]
        res["answered"] = len(ans)
        res["answered_times"] = (min(ans), pct(ans, 50), max(ans)) if ans else None
        return res
    finally:
        for t in tasks:
            t.cancel()
        prober.stop()


# ---------------------------------------------------------------------------- report

def print_load(r: dict, args):
    n = r["n"]
    held = max(r["edge_peak"], r["model_peak"])
    what = (f"streams to {STREAM} ({r['words']} words at {args.stream_tps}/s, ~{args.hold_ms} ms each)"
            if r["scenario"] == "streams" else f"requests to {HOLD} (answers after {args.hold_ms} ms)")
    print(f"\n== {r['scenario']}: {n} concurrent {what}")
    print(f"  client: connected {r['connected']}/{n}" + (f" in {r['t_connected_all']:.2f} s" if r["t_connected_all"] else "")
          + f", sent {r['sent']}" + (f" in {r['t_sent_all']:.2f} s" if r["t_sent_all"] else "")
          + f" (batches of {args.connect_batch}, {args.per_ip} per source address)")
    reached = f"all {n} held {r['reached_s']:.2f} s after the first connect" if r["reached_s"] else f"{n} never held at once"
    print(f"  edge:   {reached}; peak in flight: edge gauge {held_fmt(r['edge_peak'])}, model {held_fmt(r['model_peak'])},"
          f" broker jobs {held_fmt(r['broker_peak'])} (/metrics polls ok {r['metrics_ok']}, failed {r['metrics_failed']})")
    ap = r["at_peak"]
    print(f"          at the peak: {ap['held_client_view']} waiting on the client side, edge fds {ap['fds']}, threads {ap['threads']}")
    if r["scenario"] == "streams":
        ok = r["outcome"].get("done", 0)
        print(f"  answers: completed streams {ok}/{n}, chunks {r['chunks']} (expected {n * (r['words'] + 2)}:"
              f" {r['words']} words + finish + summary each)")
    else:
        ok = r["outcome"].get("200", 0)
        print(f"  answers: 200 {ok}/{n}")
    other = {k: v for k, v in r["outcome"].items() if k not in ("200", "done")}
    print(f"           other: {hist_str(Counter(other))}")
    if r["answer_min"] is not None:
        print(f"           answer time after send: min {r['answer_min']:.2f} p50 {r['answer_p50']:.2f} max {r['answer_max']:.2f} s")
    rss_idle, rss_max = r["rss_idle_kb"] / 1024, r["rss_max_kb"] / 1024
    per = (r["rss_max_kb"] - r["rss_idle_kb"]) / held if held >= 1 else float("nan")
    print(f"  edge RSS: idle {rss_idle:.1f} MB, max {rss_max:.1f} MB ({fmt(per, 1)} KB per held request), threads max {r['threads_max']}")
    print(cpu_line(r["cpu"]))
    print(f"  probes (one every {PROBE_GAP * 1000:.0f} ms or less, same keep-alive connection):")
    print(f"  probes idle:    {probe_summary(r['probe_idle'])}")
    print(f"  probes loaded:  {probe_summary(r['probe_load'])}"
          + ("" if r["probe_in_window"] else "  [ran past the hold window]"))
    r["_ok"] = ok
    r["_held"] = held


def held_fmt(v):
    return str(int(v)) if v == int(v) else f"{v:.1f}"


def print_slow(r: dict, args):
    S = r["n"]
    print(f"\n== slowloris: {S} sockets sending headers 1 byte/s for {args.slow_s:g} s, probes from 127.0.0.1")
    settled = (f"all settled in {r['t_connected_all']:.2f} s" if r["t_connected_all"] is not None
               else f"not all settled by {0.4 * args.slow_s:.1f} s")
    print(f"  slow sockets at the end: {hist_str(Counter(r['connect']))} ({settled});"
          f" open when probes started {r['open_at_probe']}, at the end {r['open_at_end']}; up to {r['bytes_sent_max']} bytes sent each")
    print(f"  closed by the server: {r['closed']}" + (
        f", after min {r['closed_times'][0]:.2f} p50 {r['closed_times'][1]:.2f} max {r['closed_times'][2]:.2f} s"
        if r["closed_times"] else ""))
    for k, v in sorted(r["closed_kinds"].items(), key=lambda kv: -kv[1]):
        print(f"    {v:>6} × {k}")
    if r["answered"]:
        a = r["answered_times"]
        print(f"  got bytes from the server: {r['answered']}, first after min {a[0]:.2f} p50 {a[1]:.2f} max {a[2]:.2f} s")
    print(f"  edge RSS: idle {r['rss_idle_kb'] / 1024:.1f} MB, max {r['rss_max_kb'] / 1024:.1f} MB, threads max {r['threads_max']}")
    print(cpu_line(r["cpu"]))
    print(f"  probes (one every {r['probe_gap_ms']:.0f} ms, same keep-alive connection):")
    print(f"  probes before: {probe_summary(r['probe_idle'])}")
    print(f"  probes during: {probe_summary(r['probe_load'])}  [{r['probe_start_s']:.1f}..{r['probe_end_s']:.1f} s]")
    b, d = r["probe_idle"]["lat_ms"], r["probe_load"]["lat_ms"]
    if d and b:
        print(f"  added delay: p50 {fmt(pct(d, 50) - pct(b, 50))} ms, p99 {fmt(pct(d, 99) - pct(b, 99))} ms")
    else:
        print("  added delay: n/a (no probe succeeded during the slowloris)")


def print_table(rows: list[dict]):
    print()
    print(f"{'run':<10} {'n':>6} {'held':>6} {'ok':>6} {'failed':>6} {'held s':>7} {'RSS MB':>7}"
          f" {'idle p50':>8} {'idle p99':>8} {'load p50':>8} {'load p99':>8} {'load max':>8} {'probes':>7}")
    for r in rows:
        b, d = r["probe_idle"]["lat_ms"], r["probe_load"]["lat_ms"]
        nprobe = len(d) + sum(r["probe_load"]["errors"].values())
        if r["scenario"] == "slowloris":
            held, ok, failed, held_s = r["open_at_probe"], "-", r["n"] - r["connect"].get("ok", 0), r["t_connected_all"]
        else:
            held, ok, failed, held_s = int(r["_held"]), r["_ok"], r["n"] - r["_ok"], r["reached_s"]
        print(f"{r['scenario']:<10} {r['n']:>6} {held:>6} {ok:>6} {failed:>6} {fmt(held_s):>7} {r['rss_max_kb'] / 1024:>7.1f}"
              f" {fmt(pct(b, 50)):>8} {fmt(pct(b, 99)):>8} {fmt(pct(d, 50)):>8} {fmt(pct(d, 99)):>8}"
              f" {fmt(max(d) if d else None):>8} {len(d):>3}/{nprobe:<3}")
    print()
    print("held = peak held at once (hold/streams: edge in-flight gauge or broker per-model count;"
          " slowloris: slow sockets open); held s = seconds from the first connect until all N were held"
          " (slowloris: until all slow sockets settled); idle/load p50/p99/max = probe latency in ms to the"
          " fast sim model from 127.0.0.1 before and under the load; probes = ok/run.")


# ---------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/edge_load", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=("hold", "streams", "slowloris", "all"), default="all")
    p.add_argument("--n", type=int, default=10000, help="concurrent requests / streams (default 10000)")
    p.add_argument("--slow", type=int, default=2000, help="slowloris sockets (default 2000)")
    p.add_argument("--slow-s", type=float, default=15.0, help="slowloris run time in s (default 15)")
    p.add_argument("--hold-ms", type=int, default=20000, help="sim latency / stream length (default 20000)")
    p.add_argument("--stream-tps", type=int, default=1, help="stream words per second (default 1)")
    p.add_argument("--edge-threads", type=int, default=0, help="edge/threads (default: left out)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--build", default=os.environ.get("AIGW_BUILD_DIR", str(ROOT / "build")))
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--new-edge-keys", dest="edge_keys", action="store_const", const="yes",
                      help="always put edge/max_connections, max_per_ip, max_jobs in the config")
    keys.add_argument("--no-new-edge-keys", dest="edge_keys", action="store_const", const="no",
                      help="never (default: try them, fall back if the edge rejects them)")
    p.set_defaults(edge_keys="auto")
    p.add_argument("--per-ip", type=int, default=250, help="client connections per source address (default 250)")
    p.add_argument("--connect-batch", type=int, default=500, help="connects in progress at once (default 500)")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--probes", type=int, default=50)
    p.add_argument("--probe-timeout", type=float, default=5.0, help="per probe, s (default 5)")
    p.add_argument("--margin-s", type=float, default=30.0, help="wait past --hold-ms for answers (default 30)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with configs and logs")
    a = p.parse_args(argv)
    if a.n < 1 or a.slow < 1 or a.workers < 1 or a.hold_ms < 1 or a.stream_tps < 1 or a.per_ip < 1:
        p.error("counts must be positive")
    words = round(a.hold_ms * a.stream_tps / 1000)
    if words * 4 > 500:
        p.error(f"--hold-ms × --stream-tps gives {words} words; the sim text holds at most 125")
    if math.ceil((max(a.n, a.slow) + 2000) / a.workers) > 65536:
        p.error("worker capacity would exceed the broker's 65536 per worker: add --workers")
    return a


async def amain(args, tmp: Path, rows: list):
    scenarios = ["hold", "streams", "slowloris"] if args.scenario == "all" else [args.scenario]
    for sc in scenarios:
        sysm = System(args, tmp, sc)
        try:
            log(f"{sc}: starting broker, {args.workers} worker(s) and edge")
            sysm.start(args.edge_keys)      # blocking: nothing else runs yet
            if sc == "hold" or len(rows) == 0:
                log(f"edge {'accepts' if sysm.edge_keys else 'does not take'} edge/{', '.join(NEW_EDGE_KEYS)}"
                    f"; edge/threads {args.edge_threads or 'left out'}")
            if sysm.warmup_failed:
                log(f"{sc}: before the edge answered 32 chats in a row: {hist_str(sysm.warmup_failed)}")
            log(f"{sc}: running")
            if sc == "slowloris":
                r = await scenario_slowloris(args, sysm)
                print_slow(r, args)
            else:
                r = await scenario_load(args, sysm, sc == "streams")
                print_load(r, args)
            r["edge_keys"] = sysm.edge_keys
            for name, p in sysm.procs.items():
                if p.poll() is not None:
                    print(f"  !! {name} exited with {p.returncode} during the run; log tail:\n{sysm.logs(name, 1500)}")
            rows.append(r)
            sys.stdout.flush()
        finally:
            sysm.stop()


def main(argv):
    if argv[:1] == ["--_probe-child"]:
        try:
            probe_child(argv[1], int(argv[2]), argv[3])
        except (KeyboardInterrupt, BrokenPipeError):
            pass
        return 0
    args = parse_args(argv)
    for b in ("aigw-broker", "aigw-worker", "aigw-edge"):
        if not (Path(args.build) / "bin" / b).exists():
            print(f"edge_load: {Path(args.build) / 'bin' / b} is missing (build first)", file=sys.stderr)
            return 2
    soft, hard = raise_nofile()
    need = max(args.n, args.slow) + 200
    print(f"cores {os.cpu_count()}, RLIMIT_NOFILE {soft}, somaxconn {read_sysctl('net.core.somaxconn')},"
          f" tcp_max_syn_backlog {read_sysctl('net.ipv4.tcp_max_syn_backlog')},"
          f" ports {read_sysctl('net.ipv4.ip_local_port_range')}; build {args.build}; workers {args.workers};"
          f" n {args.n}, slow {args.slow}, hold {args.hold_ms} ms")
    if soft < need:
        print(f"warning: RLIMIT_NOFILE {soft} < {need}: the client (and the edge) will run out of fds", flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)    # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="aigw-edge-load-"))
    rows: list = []
    rc = 0
    try:
        asyncio.run(amain(args, tmp, rows))
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        rc = 130
    except RuntimeError as e:
        print(f"edge_load: {e}", file=sys.stderr)
        rc = 1
    finally:
        if rows:
            print_table(rows)
        for sysm in list(LIVE):
            sysm.stop()
        for pid in list(CHILD_PIDS):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if args.keep:
            print(f"logs and configs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
