"""Graceful shutdown of the real edge binary: SIGTERM lets jobs in flight finish while new
requests get 503 shutting_down; a second signal answers the rest with 503 at once; the
process exits 0 and releases its port (no self-connect needed to stop)."""
from __future__ import annotations

import signal
import socket
import threading

from harness import Http, wait_until

MODELS = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n        text = \"quick\"\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 1500\n        jitter = 0\n"
    "        text = \"finished\"\n"
    "    stuck-sim\n        provider = sim\n        latency_ms = 60000\n        jitter = 0\n"
)


def in_flight(s) -> float:
    status, _, _, raw = Http("127.0.0.1", s.http_port, timeout=5).request("GET", "/metrics")
    for line in raw.decode().splitlines():
        if line.startswith("aigw_edge_jobs_in_flight "):
            return float(line.split()[1])
    return 0.0


def start_call(s, model: str, out: dict):
    def call():
        out["resp"] = Http("127.0.0.1", s.http_port, timeout=60).chat(model)
    t = threading.Thread(target=call)
    t.start()
    wait_until(lambda: in_flight(s) >= 1, 10, what=f"the {model} job to be in flight")
    return t


def test_sigterm_drains_then_exits(make_system):
    s = make_system(models=MODELS).start()
    out: dict = {}
    t = start_call(s, "slow-sim", out)
    edge = s.procs["edge"]
    edge.send_signal(signal.SIGTERM)
    wait_until(lambda: "shutting down" in s.logs("edge"), 10, what="the edge to log the signal")
    # New work is refused with a clear answer while the old job runs on
    status, headers, js, _ = Http("127.0.0.1", s.http_port, timeout=10).chat("fast-sim")
    assert status == 503 and js["error"]["code"] == "shutting_down"
    t.join(30)
    status, _, js, _ = out["resp"]
    assert status == 200 and js["choices"][0]["message"]["content"] == "finished"
    assert edge.wait(20) == 0
    with socket.socket() as probe:                  # nothing listens on the port any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", s.http_port))


def test_second_signal_answers_waiting_jobs_503(make_system):
    s = make_system(models=MODELS).start()
    out: dict = {}
    t = start_call(s, "stuck-sim", out)
    edge = s.procs["edge"]
    edge.send_signal(signal.SIGTERM)
    wait_until(lambda: "waiting up to" in s.logs("edge"), 10, what="the edge to start draining")
    edge.send_signal(signal.SIGTERM)
    t.join(30)
    status, _, js, _ = out["resp"]
    assert status == 503
    assert js["error"]["code"] in ("unavailable", "shutting_down")
    assert edge.wait(20) == 0
