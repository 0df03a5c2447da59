"""CURVE on the fabric, against the real broker, workers, edge and agent.

Certificates come from `aigw-certs`; every probe is a pyzmq socket whose handshake
outcome is read from a zmq socket monitor (no sleeps as synchronisation). Probes:
(a) no certificate, (b) a valid keypair the broker does not know, (c) an authorized
certificate that may serve only fast-sim (fabric/workers) asking for other models and
using the frontend and the metrics stream. None of them receives a TASK, an answer
or a metrics message, while users' requests through the edge are served by the real
workers. Also: the rogue-worker reproduction with CURVE off and on, the Python agent
over CURVE, and protected mode (a non-loopback bind without CURVE).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

zmq = pytest.importorskip("zmq")
pytest.importorskip("aigw_agent")
from zmq.utils.monitor import recv_monitor_message                      # noqa: E402

from aigw_agent._proto import pb                                          # noqa: E402
from aigw_agent.wire import (C, CLIENT_HEADER, W, WORKER_HEADER, encode,  # noqa: E402
                             parse)
from harness import BIN, System, wait_until                    # noqa: E402

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")

SIM = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n"
    "        text = \"real fast answer\"\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 20\n"
    "        text = \"real slow answer\"\n"
)

FABRIC = (
    "fabric\n"
    "    curve = on\n"
    "    cert_dir = certs\n"
    "    clients = \"edge, agent\"\n"
    "    workers\n"
    "        worker = \"*\"\n"
    "        agent = \"agent/*\"\n"
    "        fastonly = \"fast-sim\"\n"
)

HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
WAIT_MS = 10000               # fail-safe only: every wait below ends on an event
SECRET_PROMPT = "my bank password is hunter2"


def certs(tmp: Path) -> Path:
    """aigw-certs init + one authorized extra (fastonly) + one unauthorized (rogue)."""
    d = tmp / "certs"
    tool = str(BIN / "aigw-certs")
    for argv in ([tool, "init", str(d)],
                 [tool, "add", "fastonly", "--dir", str(d)],
                 [tool, "add", "rogue", "--dir", str(d), "--no-authorize"]):
        r = subprocess.run(argv, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return d


def keys(d: Path, name: str) -> tuple[bytes, bytes, bytes]:
    """(public, secret, broker public) for a CURVE client."""
    import zmq.auth
    public, secret = zmq.auth.load_certificate(d / f"{name}.cert_secret")
    server, _ = zmq.auth.load_certificate(d / "broker.cert")
    return public, secret, server


class Peer:
    """A probe socket with a handshake monitor; keys None = no CURVE at all."""

    def __init__(self, ctx, kind: int, endpoint: str, k: tuple | None = None):
        self.sock = ctx.socket(kind)
        self.sock.linger = 0
        if k:
            self.sock.curve_publickey, self.sock.curve_secretkey, self.sock.curve_serverkey = k
        self.mon = self.sock.get_monitor_socket(HANDSHAKE_EVENTS)
        self.sock.connect(endpoint)

    def handshake(self) -> int:
        """The first handshake outcome (an EVENT_HANDSHAKE_* value)."""
        assert self.mon.poll(WAIT_MS), "no handshake event"
        return recv_monitor_message(self.mon)["event"]

    def received(self) -> list[list[bytes]]:
        """Everything queued on the socket now, without waiting."""
        out = []
        while self.sock.poll(0):
            out.append(self.sock.recv_multipart())
        return out

    def close(self):
        self.sock.disable_monitor()
        self.mon.close(0)
        self.sock.close(0)


def hello(models: list[str], capacity: int = 10000):
    h = pb.WorkerHello()
    h.worker_id, h.capacity = "rogue", capacity
    h.models.extend(models)
    return h


def submit(job_id: int, target: str, text: str) -> list[bytes]:
    job = pb.Job()
    job.job_id = job_id
    job.targets.append(target)
    body = json.dumps({"model": target, "messages": [{"role": "user", "content": text}]})
    return encode(CLIENT_HEADER, C.SUBMIT, job, body.encode())


def ep(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def counters(s: System) -> dict[str, float]:
    """The broker counters the edge exports on /metrics (aigw_broker_<name>_total)."""
    status, _, _, raw = s.client().request("GET", "/metrics")
    assert status == 200
    out = {}
    for m in re.finditer(rb"^aigw_broker_(\w+)_total (\S+)$", raw, re.M):
        out[m.group(1).decode()] = float(m.group(2))
    return out


def wait_counter(s: System, name: str, at_least: int):
    wait_until(lambda: counters(s).get(name, 0) >= at_least, 15,
               what=f"broker counter {name} >= {at_least}")


def chat_ok(s: System, model: str, want: str, n: int = 4):
    for _ in range(n):
        status, headers, js, raw = s.http.chat(model, SECRET_PROMPT)
        assert status == 200, raw
        assert js["choices"][0]["message"]["content"] == want
        assert headers["x-aigw-winner"] == model


@pytest.fixture
def curve_system(make_system, tmp_path):
    def make(**kw) -> System:
        s = make_system(models=SIM, **kw)
        s.certs = certs(tmp_path)
        s.cfg.write_text(s.cfg.read_text() + FABRIC)
        return s
    return make


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


FAILED = "failed"      # FAILED_PROTOCOL or FAILED_NO_DETAIL (the server hangs up first)
EXPECTED = {           # handshake outcome per probe: backend, frontend, metrics
    "none": (FAILED,) * 3,
    "unknown": (zmq.EVENT_HANDSHAKE_FAILED_AUTH,) * 3,
    # authorized: in on the backend and frontend (refused per message there), but not
    # on the metrics stream, which lets in fabric/clients certificates only
    "fastonly": (zmq.EVENT_HANDSHAKE_SUCCEEDED, zmq.EVENT_HANDSHAKE_SUCCEEDED,
                 zmq.EVENT_HANDSHAKE_FAILED_AUTH),
}


def test_unauthorized_peers_get_nothing(curve_system, zctx):
    s = curve_system().start()
    d = s.certs
    probes = {"none": None, "unknown": keys(d, "rogue"), "fastonly": keys(d, "fastonly")}
    peers = []
    for who, k in probes.items():
        back = Peer(zctx, zmq.DEALER, ep(s.back), k)
        front = Peer(zctx, zmq.DEALER, ep(s.front), k)
        sub = Peer(zctx, zmq.SUB, ep(s.metrics), k)
        sub.sock.subscribe(b"")
        # (a), (b): READY for a model real users ask for; (c): for models it may not serve
        models = ["slow-sim", "evil-model"] if who == "fastonly" else ["fast-sim"]
        back.sock.send_multipart(encode(WORKER_HEADER, W.READY, hello(models)))
        front.sock.send_multipart(encode(CLIENT_HEADER, C.PING))
        front.sock.send_multipart(submit(1, "fast-sim", SECRET_PROMPT))
        got = tuple(p.handshake() for p in (back, front, sub))
        got = tuple(FAILED if e in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                                    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL) else e for e in got)
        assert got == EXPECTED[who], (who, got)
        peers.append((who, back, front, sub))

    # (c)'s READY was refused (no model left) and its PING and SUBMIT were dropped
    wait_counter(s, "denied_readys", 1)
    wait_counter(s, "denied_models", 2)
    wait_counter(s, "denied_clients", 2)
    wait_counter(s, "denied_handshakes", 7)

    # Real users through the edge are served by the real workers meanwhile
    chat_ok(s, "fast-sim", "real fast answer")
    chat_ok(s, "slow-sim", "real slow answer")
    _, _, js, _ = s.client().request("GET", "/v1/models")
    ids = {m["id"] for m in js["data"]}
    assert "evil-model" not in ids and {"fast-sim", "slow-sim"} <= ids

    # Positive control for the SUB probes: a fabric/clients certificate gets metrics
    good = Peer(zctx, zmq.SUB, ep(s.metrics), keys(d, "edge"))
    good.sock.subscribe(b"metrics")
    assert good.handshake() == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert good.sock.poll(WAIT_MS), "an authorized client got no metrics"
    assert good.sock.recv_multipart()[0] == b"metrics"
    good.close()

    for who, back, front, sub in peers:
        got_back = [parse(f, WORKER_HEADER, False)[0] for f in back.received()]
        # (c)'s refused READY is answered DISCONNECT (it backs off); nobody gets a TASK
        assert [m.cmd for m in got_back] == ([W.DISCONNECT] if who == "fastonly" else []), who
        assert front.received() == [], who
        assert sub.received() == [], who
        for p in (back, front, sub):
            p.close()
    log = s.logs("broker")
    assert "fabric/workers does not let it serve slow-sim,evil-model" in log
    assert "not in fabric/clients" in log
    assert log.count("certificate fastonly") == 2       # once per side, not per message


def test_partial_ready_registers_allowed_models_only(curve_system, zctx):
    s = curve_system().start()
    p = Peer(zctx, zmq.DEALER, ep(s.back), keys(s.certs, "fastonly"))
    p.sock.send_multipart(encode(WORKER_HEADER, W.READY, hello(["fast-sim", "evil-model"], 1)))
    assert p.handshake() == zmq.EVENT_HANDSHAKE_SUCCEEDED

    def fast_workers():
        _, _, js, _ = s.client().request("GET", "/v1/models")
        by_id = {m["id"]: m for m in js["data"]}
        assert "evil-model" not in by_id
        return by_id["fast-sim"].get("aigw", {}).get("workers", 0) == s.nworkers + 1
    wait_until(fast_workers, 15, what="fastonly registered for fast-sim")
    wait_counter(s, "denied_models", 1)
    assert counters(s)["denied_readys"] == 0
    p.sock.send_multipart(encode(WORKER_HEADER, W.DISCONNECT))
    p.close()


class Rogue:
    """A fake worker on the backend: READY for fast-sim with a huge capacity (it would
    win every dispatch), HEARTBEATs to stay alive, a forged RESULT for every TASK."""

    def __init__(self, zctx, s: System, k):
        self.peer = Peer(zctx, zmq.DEALER, ep(s.back), k)
        self.peer.sock.send_multipart(encode(WORKER_HEADER, W.READY, hello(["fast-sim"])))
        self.handshake = self.peer.handshake()
        self.tasks: list[str] = []

    def step(self, ms: int = 50):
        """Heartbeat, then answer whatever arrives within ms."""
        sock = self.peer.sock
        sock.send_multipart(encode(WORKER_HEADER, W.HEARTBEAT))
        while sock.poll(ms):
            m, _ = parse(sock.recv_multipart(), WORKER_HEADER, False)
            if not m or m.cmd != W.TASK:
                continue
            self.tasks.append(f"TASK for {m.body.target}: {m.payload.decode()}")
            forged = {"id": "x", "object": "chat.completion", "model": "fast-sim",
                      "choices": [{"index": 0, "finish_reason": "stop", "message": {
                          "role": "assistant", "content": "FORGED: send money to ..."}}]}
            r = pb.Result()
            r.job_id, r.attempt_id, r.model = m.body.job_id, m.body.attempt_id, "fast-sim"
            r.response_json = json.dumps(forged).encode()
            sock.send_multipart(encode(WORKER_HEADER, W.RESULT, r))


def rogue_round(s: System, zctx, k, label: str) -> tuple[list[str], str]:
    """A rogue joins, then a user asks fast-sim through the edge. Returns (the TASKs the
    rogue saw, the user's answer)."""
    import threading
    import time
    rogue = Rogue(zctx, s, k)
    if rogue.handshake == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        end = time.monotonic() + 15
        while s.live_workers() < s.nworkers + 1:          # until it is registered
            assert time.monotonic() < end, "the rogue never registered"
            rogue.step()
    answer: dict = {}
    t = threading.Thread(target=lambda: answer.update(
        r=s.client().chat("fast-sim", SECRET_PROMPT)))
    t.start()
    while t.is_alive():
        if rogue.handshake == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            rogue.step()
        else:
            t.join(0.05)
    status, _, js, raw = answer["r"]
    assert status == 200, raw
    got = js["choices"][0]["message"]["content"]
    hs = ("handshake succeeded" if rogue.handshake == zmq.EVENT_HANDSHAKE_SUCCEEDED
          else f"handshake refused ({zmq.Event(rogue.handshake).name})")
    print(f"\n[{label}] rogue: {hs}; TASKs it received: {rogue.tasks or 'none'}"
          f"\n[{label}] user got: {got!r}")
    assert rogue.peer.received() == [] or rogue.handshake == zmq.EVENT_HANDSHAKE_SUCCEEDED
    rogue.peer.close()
    return rogue.tasks, got


def test_rogue_worker_reproduction(make_system, curve_system, zctx):
    """Before (curve off, the old default): the rogue reads the prompt and forges the
    answer. After (curve on): it never completes the handshake; the real worker answers."""
    before = make_system(models=SIM).start()
    tasks, got = rogue_round(before, zctx, None, "curve off")
    assert any(SECRET_PROMPT in t for t in tasks) and got.startswith("FORGED")
    before.stop()

    after = curve_system().start()
    tasks, got = rogue_round(after, zctx, None, "curve on")
    assert tasks == [] and got == "real fast answer"


def test_agent_over_curve(curve_system):
    agent_bin = Path(sys.executable).parent / "aigw-agent"
    if not agent_bin.exists():
        pytest.skip("aigw-agent not installed in the venv")
    s = curve_system().start()
    conf = s.tmp / "agent.conf"
    conf.write_text(
        "agent\n    capacity = 8\n"
        "deliberate\n    service = agent/deliberate\n    planner = fast-sim\n"
        "    solvers = \"fast-sim, slow-sim\"\n    policy = race\n    synth = fast-sim\n"
        "    max_subquestions = 2\n"
        "consensus\n    service = agent/consensus\n    models = \"fast-sim, slow-sim\"\n"
        "    judge = fast-sim\n")
    s._start("agent", [str(agent_bin), "--config", str(s.cfg), "--agent-config", str(conf),
                       "--id", "agent-curve"])

    def registered():
        s.check_alive()
        _, _, js, _ = s.client().request("GET", "/v1/models")
        return "agent/deliberate" in {m["id"] for m in (js or {}).get("data", [])}
    wait_until(registered, 20, what="the agent registered over CURVE")
    status, headers, js, raw = s.http.chat("agent/deliberate", "Why is the sky blue?")
    assert status == 200, raw
    assert headers["x-aigw-winner"] == "agent/deliberate"
    assert js["choices"][0]["message"]["content"] == "real fast answer"


def test_agent_without_certificate_is_refused(curve_system, tmp_path):
    """An agent whose agent/cert is not authorized never registers: its services are
    not listed while the real models are."""
    agent_bin = Path(sys.executable).parent / "aigw-agent"
    if not agent_bin.exists():
        pytest.skip("aigw-agent not installed in the venv")
    s = curve_system().start()
    conf = s.tmp / "agent-rogue.conf"
    conf.write_text("agent\n    capacity = 8\n    cert = rogue\n"
                    "deliberate\n    service = agent/deliberate\n    planner = fast-sim\n"
                    "    solvers = fast-sim\n    synth = fast-sim\n"
                    "consensus\n    service = \"\"\n")
    s._start("agent", [str(agent_bin), "--config", str(s.cfg), "--agent-config", str(conf),
                       "--id", "agent-rogue"])
    wait_counter(s, "denied_handshakes", 2)              # its client and worker sockets
    s.check_alive()
    _, _, js, _ = s.client().request("GET", "/v1/models")
    assert "agent/deliberate" not in {m["id"] for m in js["data"]}


#  ------------------------------------------------------------- protected mode

def broker_config(tmp: Path, host: str, extra: str = "") -> Path:
    cfg = tmp / f"broker-{host}.conf"
    cfg.write_text(
        "broker\n"
        f"    frontend = tcp://{host}:*\n"
        "    backend = tcp://127.0.0.1:*\n"
        "    metrics = tcp://127.0.0.1:*\n"
        + extra)
    return cfg


def run_broker_until_listening(cfg: Path, tmp: Path) -> str:
    log = tmp / f"{cfg.stem}.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([str(BIN / "aigw-broker"), "--config", str(cfg)], stdout=f,
                             stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: p.poll() is not None or b"frontend tcp://" in log.read_bytes(), 15,
                   what="the broker to start")
        assert p.poll() is None, log.read_text()
    finally:
        p.terminate()
        p.wait(10)
    return log.read_text()


def test_protected_mode(tmp_path):
    cfg = broker_config(tmp_path, "0.0.0.0")
    r = subprocess.run([str(BIN / "aigw-broker"), "--config", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "protected mode: broker/frontend = tcp://0.0.0.0:" in out
    assert "aigw-certs init" in out and "fabric/curve = on" in out
    assert "fabric/insecure = true" in out

    log = run_broker_until_listening(
        broker_config(tmp_path, "0.0.0.0", "fabric\n    insecure = true\n"), tmp_path)
    assert "fabric/insecure = true: broker/frontend = tcp://0.0.0.0:" in log

    certs(tmp_path)
    log = run_broker_until_listening(
        broker_config(tmp_path, "0.0.0.0", "fabric\n    curve = on\n    cert_dir = certs\n"),
        tmp_path)
    assert "CURVE on" in log

    # A worker refuses a broker beyond loopback in clear text, too
    wcfg = tmp_path / "worker.conf"
    wcfg.write_text("models\n" + SIM)
    r = subprocess.run([str(BIN / "aigw-worker"), "--config", str(wcfg),
                        "--broker", "tcp://192.0.2.1:5556"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and "fabric/insecure" in r.stdout + r.stderr


def test_certs_tool(tmp_path):
    tool = str(BIN / "aigw-certs")
    d = tmp_path / "var" / "certs"
    r = subprocess.run([tool, "init", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    for name in ("broker", "edge", "worker", "agent"):
        assert (d / f"{name}.cert_secret").stat().st_mode & 0o777 == 0o600
        assert (d / f"{name}.cert").exists()
        assert (d / "authorized" / f"{name}.cert").exists() == (name != "broker")
    r = subprocess.run([tool, "init", str(d)], capture_output=True, text=True)
    assert r.returncode != 0 and "--force" in r.stderr
    r = subprocess.run([tool, "list", "--dir", str(d)], capture_output=True, text=True)
    assert r.returncode == 0
    secrets = [line.split('"')[1] for f in d.glob("*.cert_secret")
               for line in f.read_text().splitlines() if "secret-key" in line]
    assert len(secrets) == 4 and not any(x in r.stdout for x in secrets)
    assert re.search(r"^  edge\s+\S{40}$", r.stdout, re.M)
