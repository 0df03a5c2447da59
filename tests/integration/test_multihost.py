"""Several hosts in network namespaces (tests/integration/netns.py): two brokers, two
worker hosts, an edge host, and a client host that sends the load. The fabric runs
with CURVE on; the edge listens beyond loopback with edge/auth on.

Under a bounded closed-loop load, each test makes one failure: a broker killed (and,
apart, killed and restarted at once), a worker process killed, a worker host cut off
and brought back, a third worker host added and one removed, 50 ms of one-way delay
between hosts; and apart, a second edge host sharing the first's Redis, through which
one key's rpm must hold for both edges together. For each it counts the requests sent, answered, failed, lost and
duplicated (lost and duplicated must be 0) and prints the time to recover: how much
longer than a normal request the unluckiest request in flight at the failure waited.

Every answer must be its own request's: the fake upstream on each worker host echoes
the prompt (a request id). The times are printed, never asserted; the tests wait for
events (answers counted, the fake upstream's log), bounded by timeouts.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import netns
from harness import BIN, FAKEUP, wait_until

pytestmark = pytest.mark.skipif(netns.available() is not None,
                                reason=str(netns.available()))

ADMIN = "admin-" + "n" * 26
REDIS_PASSWORD = "redis-" + "p" * 26
REDIS_PORT = 6379
LATENCY_MS = 200                # the fake upstream's answer delay
CONCURRENCY = 8                 # closed-loop clients
UPSTREAM_PORT = 18080           # on each worker host's own loopback
EDGE_PORT = 8080
FRONT, BACK, METRICS = 5555, 5556, 5557


def _certs(tmp: Path) -> Path:
    d = tmp / "certs"
    r = subprocess.run([str(BIN / "aigw-certs"), "init", str(d)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return d


class Cluster:
    """The aigw processes on their hosts. brokers: names of broker hosts (b1, b2);
    workers: worker host names; relay: route every fabric connection through a
    DelayRelay in the router (for the delay test)."""

    def __init__(self, tmp: Path, workers=("w1", "w2"), relay: bool = False,
                 liveness: int = 10, extra_edge: str = "", redis: bool = False):
        self.tmp = tmp
        self.net = netns.Net(tmp)
        self.certs = _certs(tmp)
        self.client = self.net.host("cl")
        self.edges = [self.net.host("e1")]
        self.brokers = [self.net.host("b1"), self.net.host("b2")]
        self.workers = [self.net.host(w) for w in workers]
        self.liveness = liveness
        self.extra_edge = extra_edge
        self.redis = redis
        self.key = ""
        self.relay = None
        fronts = [f"{b.addr}:{FRONT}" for b in self.brokers]
        backs = [f"{b.addr}:{BACK}" for b in self.brokers]
        if relay:
            self.relay = self.net.relay(fronts + backs)
            fronts = [self.relay.endpoint(i) for i in range(2)]
            backs = [self.relay.endpoint(2 + i) for i in range(2)]
        self.fronts, self.backs = fronts, backs

    # ---- config and processes ----

    def config(self, host: netns.Host) -> Path:
        b1 = self.brokers[0].addr
        text = (
            "fabric\n"
            "    curve = on\n"
            f"    cert_dir = {self.certs}\n"
            "broker\n"
            f"    frontend = tcp://{b1}:{FRONT}\n"
            f"    backend = tcp://{b1}:{BACK}\n"
            f"    metrics = tcp://{b1}:{METRICS}\n"
            "    heartbeat_ms = 500\n"
            f"    liveness = {self.liveness}\n"
            "edge\n"
            f"    broker = {', '.join('tcp://' + e for e in self.fronts)}\n"
            f"    listen = {host.addr}:{EDGE_PORT}\n"
            "    auth = on\n"
            "    keys_db = keys.db\n"
            f"{self.extra_edge}"
            + (("limits\n"
                f"    backend = redis://{self.edges[0].addr}:{REDIS_PORT}\n"
                "    redis_password_env = AIGW_REDIS_PASSWORD\n"
                "    on_failure = closed\n") if self.redis else "")
            + "worker\n"
            f"    broker = {', '.join('tcp://' + e for e in self.backs)}\n"
            "    capacity = 64\n"
            "models\n"
            "    steady\n"
            "        provider = openai\n"
            f"        base_url = http://127.0.0.1:{UPSTREAM_PORT}/v1\n"
            "        upstream_model = steady\n")
        path = host.dir / "aigw.conf"
        path.write_text(text)
        return path

    def start_broker(self, b: netns.Host) -> None:
        b.popen("broker", [str(BIN / "aigw-broker"), "--config", str(self.config(b)),
                           "--frontend", f"tcp://{b.addr}:{FRONT}",
                           "--backend", f"tcp://{b.addr}:{BACK}",
                           "--metrics", f"tcp://{b.addr}:{METRICS}"])

    def start_worker_host(self, w: netns.Host) -> None:
        script = w.dir / "script.json"
        script.write_text(json.dumps({"steady": {"latency_ms": LATENCY_MS, "echo": True}}))
        p = w.popen("upstream", [sys.executable, str(FAKEUP), "--host", "127.0.0.1",
                                 "--port", str(UPSTREAM_PORT), "--script", str(script)],
                    stdout=subprocess.PIPE)
        line = p.stdout.readline().decode().strip()
        assert line.startswith("READY"), f"fake upstream on {w.name}: {line!r}"
        self.start_worker(w)

    def start_worker(self, w: netns.Host) -> None:
        w.popen("worker", [str(BIN / "aigw-worker"), "--config", str(self.config(w)),
                           "--id", w.name])

    def start_redis(self, e: netns.Host) -> None:
        """Redis on the edge host, on its veth address, with a password (it is reachable
        from the other hosts), no persistence."""
        server = shutil.which("redis-server")
        assert server, "redis-server is not installed (scripts/lib.sh installs it)"
        e.popen("redis", [server, "--bind", e.addr, "--port", str(REDIS_PORT),
                          "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no",
                          "--dir", str(e.dir)])

        def up():
            def ping():
                import socket
                with socket.create_connection((e.addr, REDIS_PORT), timeout=1) as s:
                    s.sendall(f"AUTH {REDIS_PASSWORD}\r\nPING\r\n".encode())
                    return b"PONG" in s.recv(64) or b"PONG" in s.recv(64)
            try:
                return e.call(ping, 5)
            except OSError:
                return False
        wait_until(up, 20, what="redis on the edge host")

    def add_edge(self, name: str) -> netns.Host:
        """One more edge host with a copy of the first edge's key database (its own disk,
        the same keys), started."""
        e = self.net.host(name)
        self.edges.append(e)
        src = sqlite3.connect(self.edges[0].dir / "keys.db")
        dst = sqlite3.connect(e.dir / "keys.db")
        src.backup(dst)
        dst.close()
        src.close()
        os.chmod(e.dir / "keys.db", 0o600)
        self.start_edge(e)
        return e

    def start_edge(self, e: netns.Host) -> None:
        e.popen("edge", [str(BIN / "aigw-edge"), "--config", str(self.config(e))],
                env={"AIGW_ADMIN_KEY": ADMIN, "AIGW_REDIS_PASSWORD": REDIS_PASSWORD})
        wait_until(lambda: self.get(e, "/readyz")[0] == 200, 20,
                   what=f"edge {e.name} ready")

    def start(self) -> "Cluster":
        for b in self.brokers:
            self.start_broker(b)
        for w in self.workers:
            self.start_worker_host(w)
        if self.redis:
            self.start_redis(self.edges[0])
        self.start_edge(self.edges[0])
        self.key = self.create_key(self.edges[0], name="load")
        self.wait_workers(len(self.workers))
        return self

    def close(self) -> None:
        self.net.close()

    # ---- HTTP from the client host ----

    def request(self, edge: netns.Host, method: str, path: str, body=None,
                headers: dict | None = None, timeout: float = 10):
        def call():
            c = http.client.HTTPConnection(edge.addr, EDGE_PORT, timeout=timeout)
            try:
                c.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers={"Content-Type": "application/json", **(headers or {})})
                r = c.getresponse()
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
            finally:
                c.close()
        try:
            return self.client.call(call, timeout + 5)
        except OSError as e:
            return 0, str(e)

    def get(self, edge: netns.Host, path: str, headers: dict | None = None):
        return self.request(edge, "GET", path, headers=headers, timeout=2)

    def admin(self, edge, method, path, body=None):
        return self.request(edge, method, path, body,
                            headers={"Authorization": f"Bearer {ADMIN}"})

    def create_key(self, edge: netns.Host, **fields) -> str:
        status, js = self.admin(edge, "POST", "/v1/aigw/keys", fields)
        assert status == 201, js
        return js["key"]

    def workers_seen(self, edge: netns.Host) -> int:
        status, js = self.get(edge, "/v1/models", {"Authorization": f"Bearer {self.key}"})
        if status != 200:
            return 0
        return max([m.get("aigw", {}).get("workers", 0) for m in js["data"]] or [0])

    def wait_workers(self, n: int, timeout: float = 30) -> None:
        for e in self.edges:
            wait_until(lambda: self.workers_seen(e) >= n, timeout,
                       what=f"{n} workers seen by {e.name}")

    # ---- the fake upstreams ----

    def upstream(self, w: netns.Host, method: str, path: str, body=None, timeout=10):
        def call():
            c = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=timeout + 5)
            try:
                c.request(method, path, body=json.dumps(body) if body is not None else None)
                r = c.getresponse()
                return json.loads(r.read())
            finally:
                c.close()
        return w.call(call, timeout + 10)

    def upstream_requests(self, w: netns.Host) -> int:
        return self.upstream(w, "POST", "/_control/wait",
                             {"at_least": {}, "timeout_ms": 0})["stats"]["requests"]

    def wait_upstream(self, w: netns.Host, requests: int, timeout: float = 30) -> None:
        js = self.upstream(w, "POST", "/_control/wait",
                           {"at_least": {"requests": requests}, "timeout_ms": timeout * 1000},
                           timeout)
        assert js["ok"], f"upstream on {w.name}: {js['stats']}, wanted {requests} requests"

    def executions(self) -> dict[str, int]:
        """Upstream calls per prompt, over every worker host that is still up."""
        out: dict[str, int] = {}
        for w in self.workers:
            if w.procs.get("upstream") is None or w.procs["upstream"].poll() is not None:
                continue
            for r in self.upstream(w, "GET", "/_control/log")["requests"]:
                try:
                    prompt = r["body"]["messages"][-1]["content"]
                except (KeyError, TypeError, IndexError):
                    continue
                out[prompt] = out.get(prompt, 0) + 1
        return out


class Load:
    """A closed loop of CONCURRENCY clients on the client host, each sending chat
    requests (round robin over the edges) until stop() or `limit` requests in all."""

    def __init__(self, c: Cluster, limit: int = 5000, timeout: float = 40):
        self.c, self.limit, self.timeout = c, limit, timeout
        self.records: list[dict] = []
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(CONCURRENCY)]

    def _next(self) -> dict | None:
        with self.lock:
            if self.stopping.is_set() or len(self.records) >= self.limit:
                return None
            rec = {"id": len(self.records), "t0": time.monotonic(), "t1": None,
                   "status": None, "ok": False, "wrong": False}
            self.records.append(rec)
            return rec

    def _run(self, i: int) -> None:
        netns.enter_netns(self.c.client.ns)
        #  Staggered starts spread the clients over the request's time, so a failure
        #  finds requests at every stage (else the closed loop keeps them in step).
        self.stopping.wait(i * LATENCY_MS / CONCURRENCY / 1000)
        conns: dict[str, http.client.HTTPConnection] = {}
        hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {self.c.key}"}
        while (rec := self._next()) is not None:
            edge = self.c.edges[rec["id"] % len(self.c.edges)]
            prompt = f"r{rec['id']}"
            body = json.dumps({"model": "steady",
                               "messages": [{"role": "user", "content": prompt}]})
            try:
                conn = conns.get(edge.name) or http.client.HTTPConnection(
                    edge.addr, EDGE_PORT, timeout=self.timeout)
                conns[edge.name] = conn
                conn.request("POST", "/v1/chat/completions", body=body, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                conns.pop(edge.name, None)
                status, raw = 0, str(e).encode()
            with self.lock:
                rec["t1"] = time.monotonic()
                rec["status"] = status
                if status == 200:
                    try:
                        text = json.loads(raw)["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        text = None
                    rec["ok"] = text == f"echo: {prompt}"
                    rec["wrong"] = not rec["ok"]
                else:
                    rec["error"] = raw[:300].decode(errors="replace")
                self.done.notify_all()

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def answered(self) -> int:
        return sum(1 for r in self.records if r["t1"] is not None)

    def wait(self, n: int, timeout: float = 60) -> None:
        """Until n more requests than now have been answered."""
        with self.lock:
            target = self.answered() + n
            end = time.monotonic() + timeout
            while self.answered() < target:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"load: {self.answered()} answered, wanted {target}")
                self.done.wait(left)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def tally(self, t_fault: float) -> dict:
        """Counts, and the recovery: the longest extra wait (over the median latency
        of the requests answered before the failure) of a request in flight at it."""
        recs = list(self.records)
        before = [r["t1"] - r["t0"] for r in recs if r["t1"] is not None and r["t1"] < t_fault]
        base = statistics.median(before) if before else LATENCY_MS / 1000
        hit = [r for r in recs if r["t0"] <= t_fault and (r["t1"] is None or r["t1"] > t_fault)]
        extra = [r["t1"] - r["t0"] - base for r in hit if r["t1"] is not None]
        return {
            "sent": len(recs),
            "answered": sum(1 for r in recs if r["ok"]),
            "failed": [(r["id"], r["status"], r.get("error")) for r in recs
                       if r["t1"] is not None and r["status"] != 200],
            "lost": sum(1 for r in recs if r["t1"] is None),
            "duplicated": sum(1 for r in recs if r["wrong"]),
            "in_flight": len(hit),
            "recovery_ms": max(0.0, max(extra, default=0.0)) * 1000,
            "base_ms": base * 1000,
        }


def _check(t: dict, what: str) -> None:
    assert t["lost"] == 0, f"{what}: {t['lost']} requests never answered"
    assert t["duplicated"] == 0, f"{what}: {t['duplicated']} answers not their request's"
    assert not t["failed"], f"{what}: failed {t['failed'][:5]}"
    assert t["answered"] == t["sent"]


def _figure(figures, what: str, t: dict, extra: str = "") -> None:
    figures(f"multi-host, {what}: sent {t['sent']}, answered {t['answered']}, lost "
            f"{t['lost']}, duplicated {t['duplicated']}; {t['in_flight']} in flight at the "
            f"failure, recovered in {t['recovery_ms']:.0f} ms (extra wait of the unluckiest, "
            f"over a {t['base_ms']:.0f} ms request){extra}")


@pytest.fixture
def cluster(tmp_path, request):
    made: list[Cluster] = []

    def make(**kw) -> Cluster:
        c = Cluster(tmp_path, **kw)
        made.append(c)
        return c.start()
    yield make
    rep = getattr(request.node, "rep_call", None)
    for c in made:
        if rep is not None and rep.failed:
            for h in c.net.hosts.values():
                for tag in h.procs:
                    print(f"----- {h.name} {tag} -----\n{h.log(tag)[-3000:]}")
        c.close()


def _fault_run(c: Cluster, fault, warm: int = 40, after: int = 80) -> tuple[Load, float]:
    load = Load(c).start()
    try:
        load.wait(warm)
        t_fault = time.monotonic()
        fault()
        load.wait(after)
    finally:
        load.stop()
    return load, t_fault


def test_broker_killed(cluster, figures):
    c = cluster()
    load, t = _fault_run(c, lambda: c.brokers[0].kill("broker"))
    tally = load.tally(t)
    _check(tally, "broker killed")
    execs = c.executions()
    _figure(figures, "broker b1 killed -9 (stays down)", tally,
            f"; upstream calls made again for {sum(1 for n in execs.values() if n > 1)} "
            "requests (resubmitted)")


def test_broker_restarted_fast(cluster, figures):
    c = cluster()
    b1 = c.brokers[0]

    def fault():
        b1.kill("broker")
        c.start_broker(b1)
    load, t = _fault_run(c, fault)
    tally = load.tally(t)
    _check(tally, "broker restarted")
    _figure(figures, "broker b1 killed -9 and restarted at once", tally)


def test_worker_killed(cluster, figures):
    c = cluster()
    load, t = _fault_run(c, lambda: c.workers[0].kill("worker"))
    tally = load.tally(t)
    _check(tally, "worker killed")
    _figure(figures, "worker process on w1 killed -9", tally)


def test_worker_host_cut_off_and_back(cluster, figures):
    c = cluster()
    w1 = c.workers[0]
    load = Load(c).start()
    try:
        load.wait(40)
        t_cut = time.monotonic()
        c.net.cut(w1)
        load.wait(80)                   # served by w2 alone meanwhile
        seen = c.upstream_requests(w1)
        t_heal = time.monotonic()
        c.net.heal(w1)
        c.wait_upstream(w1, seen + 1)   # w1 serves again
        rejoin_ms = (time.monotonic() - t_heal) * 1000
        load.wait(40)
    finally:
        load.stop()
    tally = load.tally(t_cut)
    _check(tally, "worker host cut off")
    _figure(figures, "worker host w1 cut off (all its traffic dropped), then back",
            tally, f"; after the cable is back w1 serves again in {rejoin_ms:.0f} ms")


def test_worker_host_added_and_removed(cluster, figures):
    c = cluster()
    load = Load(c).start()
    try:
        load.wait(40)
        t_add = time.monotonic()
        w3 = c.net.host("w3")
        c.workers.append(w3)
        c.start_worker_host(w3)
        c.wait_upstream(w3, 1)
        join_ms = (time.monotonic() - t_add) * 1000
        load.wait(40)
        t_remove = time.monotonic()
        c.workers[0].kill("worker", signal.SIGTERM)     # w1 leaves (DISCONNECT)
        load.wait(80)
    finally:
        load.stop()
    tally = load.tally(t_remove)
    _check(tally, "worker host removed")
    _figure(figures, "third worker host w3 added, then w1 removed (SIGTERM)", tally,
            f"; w3 took its first request {join_ms:.0f} ms after its host was created")


def test_delay_between_hosts(cluster, figures):
    c = cluster(relay=True)
    load = Load(c).start()
    try:
        load.wait(60)
        t_delay = time.monotonic()
        c.relay.set_delay(50)
        load.wait(60)
        t_end = time.monotonic()
    finally:
        load.stop()
    tally = load.tally(t_delay)
    _check(tally, "delay")
    before = [r["t1"] - r["t0"] for r in load.records if r["t1"] and r["t1"] < t_delay]
    after = [r["t1"] - r["t0"] for r in load.records if r["t0"] > t_delay and r["t1"]
             and r["t1"] <= t_end]
    assert after, "no request ran wholly with the delay on"
    p50b, p50a = statistics.median(before) * 1000, statistics.median(after) * 1000
    figures(f"multi-host, 50 ms one-way delay on the fabric links (edge-broker, "
            f"broker-worker; a userspace relay, this kernel has no netem): sent "
            f"{tally['sent']}, answered {tally['answered']}, lost {tally['lost']}, "
            f"duplicated {tally['duplicated']}; p50 {p50b:.0f} ms before, {p50a:.0f} ms "
            f"with the delay (+{p50a - p50b:.0f} ms: four one-way crossings)")


def test_rpm_holds_across_two_edges(cluster, figures):
    """A second edge host shares the first one's Redis: one key's rpm is one limit for
    both edges, not one per edge."""
    c = cluster(redis=True)
    limit = 30
    key = c.create_key(c.edges[0], name="metered", rpm=limit)
    e2 = c.add_edge("e2")               # a copy of e1's key database: the same keys
    c.wait_workers(2)
    hdrs = {"Authorization": f"Bearer {key}"}
    codes = {c.edges[0].name: [], e2.name: []}
    for i in range(2 * limit):
        e = c.edges[i % 2]
        status, js = c.request(e, "POST", "/v1/chat/completions",
                               {"model": "steady",
                                "messages": [{"role": "user", "content": f"m{i}"}]}, hdrs)
        assert status in (200, 429), js
        codes[e.name].append(status)
    admitted = sum(v.count(200) for v in codes.values())
    per_edge = {n: v.count(200) for n, v in codes.items()}
    assert admitted == limit, per_edge            # one limit for the fleet, not two
    assert all(n > 0 for n in per_edge.values()), per_edge
    #  Both edges refuse from then on, until the window moves
    for e in c.edges:
        status, js = c.request(e, "POST", "/v1/chat/completions",
                               {"model": "steady",
                                "messages": [{"role": "user", "content": "again"}]}, hdrs)
        assert status == 429 and js["error"]["type"] == "requests", js
    figures(f"multi-host, one key (rpm {limit}) through two edge hosts sharing Redis on the "
            f"first: {2 * limit} requests alternating between them, {admitted} admitted "
            f"({per_edge[c.edges[0].name]} on e1, {per_edge[e2.name]} on e2), the rest 429")
