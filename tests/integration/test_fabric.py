"""Integration tests of the fabric core: edge -> broker -> workers -> upstream.

Each test starts the real binaries on fresh loopback ports. Upstream behaviour is
scripted per model on the fake upstream, which records when every connection
opened and closed, so tests can prove that losers were really cancelled.
"""
from __future__ import annotations

import json
import socket
import threading

import pytest

from harness import Http, wait_until

SIM_MODELS = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n        text = \"fast answer\"\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 400\n        text = \"slow answer\"\n"
    "    broken-sim\n        provider = sim\n        latency_ms = 5\n        fail_rate = 1\n"
)
SIM_GROUPS = (
    "    quick\n        policy = race\n        targets = \"slow-sim, fast-sim\"\n"
    "    careful\n        policy = fallback\n        targets = \"broken-sim, fast-sim\"\n"
)


def openai_models(upstream, names):
    return "".join(
        f"    {n}\n        provider = openai\n        base_url = {upstream.url}\n"
        f"        upstream_model = {n}\n" for n in names)


@pytest.fixture
def sim_system(make_system):
    return make_system(models=SIM_MODELS, groups=SIM_GROUPS).start()


def outcomes(js):
    return {a["model"]: a["outcome"] for a in js["aigw"]["attempts"]}


# ---------------------------------------------------------------- sim races

def test_race_comma_list_picks_fast_and_cancels_slow(sim_system):
    status, headers, js, raw = sim_system.http.chat("slow-sim,fast-sim")
    assert status == 200, raw
    assert headers["x-aigw-winner"] == "fast-sim"
    assert js["object"] == "chat.completion"
    assert js["choices"][0]["message"]["content"] == "fast answer"
    assert js["aigw"]["winner"] == "fast-sim"
    # The slow one was still running when fast won: cancelled, not finished
    assert outcomes(js) == {"fast-sim": "won", "slow-sim": "cancelled"}


def test_group_race_and_fallback(sim_system):
    status, headers, js, _ = sim_system.http.chat("quick")
    assert status == 200 and headers["x-aigw-winner"] == "fast-sim"
    status, headers, js, raw = sim_system.http.chat("careful")
    assert status == 200, raw
    assert headers["x-aigw-winner"] == "fast-sim"
    assert outcomes(js) == {"broken-sim": "failed", "fast-sim": "won"}
    attempts = {a["model"]: a for a in js["aigw"]["attempts"]}
    # Fallback: the second target starts only after the first failed.
    assert attempts["fast-sim"]["started_ms"] >= attempts["broken-sim"]["finished_ms"]


def test_aigw_object_overrides_policy(sim_system):
    status, headers, js, raw = sim_system.http.chat(
        "slow-sim", aigw={"policy": "hedge", "targets": ["slow-sim", "fast-sim"],
                          "hedge_delay_ms": 50})
    assert status == 200, raw
    assert headers["x-aigw-winner"] == "fast-sim"
    att = {a["model"]: a for a in js["aigw"]["attempts"]}
    assert att["fast-sim"]["started_ms"] >= 45          # hedged, not raced
    assert att["slow-sim"]["outcome"] == "cancelled"


def test_models_health_ready(sim_system):
    c = sim_system.client()
    status, _, js, _ = c.request("GET", "/healthz")
    assert status == 200
    status, _, js, _ = c.request("GET", "/readyz")
    assert status == 200
    status, _, js, _ = c.request("GET", "/v1/models")
    assert status == 200 and js["object"] == "list"
    ids = {m["id"] for m in js["data"]}
    assert {"fast-sim", "slow-sim", "broken-sim", "quick", "careful"} <= ids
    c.close()


def test_keep_alive_reuses_connection(sim_system):
    c = sim_system.client()
    for _ in range(3):
        status, _, js, _ = c.chat("fast-sim")
        assert status == 200
    sock = c.conn.sock
    status, _, _, _ = c.chat("fast-sim")
    assert status == 200
    assert c.conn.sock is sock, "edge closed a keep-alive connection"
    c.close()


# ---------------------------------------------------------------- bad input

def test_unknown_model_404(sim_system):
    status, _, js, _ = sim_system.http.chat("no-such-model")
    assert status == 404
    assert js["error"]["code"] == "model_not_found"
    assert "no-such-model" in js["error"]["message"]


def test_malformed_json_400(sim_system):
    for raw in (b"{not json", b"[]", b'{"model": 5, "messages": []}',
                b'{"model": "fast-sim"}', b'{"model": "fast-sim", "messages": "hi"}'):
        status, _, js, body = sim_system.http.request("POST", "/v1/chat/completions", raw=raw)
        assert status == 400, (raw, body)
        assert js["error"]["message"], body
    # The system still answers afterwards.
    assert sim_system.http.chat("fast-sim")[0] == 200


def test_oversized_body_413(sim_system):
    big = {"model": "fast-sim", "messages": [{"role": "user", "content": "x" * 200_000}]}
    c = sim_system.client()
    status, _, js, _ = c.request("POST", "/v1/chat/completions", big)
    assert status == 413
    assert js["error"]["message"]
    c.close()


def test_wrong_route_and_method(sim_system):
    assert sim_system.http.request("GET", "/v1/nothing")[0] == 404
    assert sim_system.http.request("GET", "/v1/chat/completions")[0] == 405


# ---------------------------------------------------------------- real upstream (fake)

def test_race_closes_loser_connection_fast(make_system, upstream):
    upstream.script({"fast": {"latency_ms": 20, "text": "fast one"},
                     "slow": {"latency_ms": 3000, "text": "slow one"}})
    s = make_system(models=openai_models(upstream, ["fast", "slow"])).start()
    upstream.reset()
    status, headers, js, raw = s.http.chat("slow,fast")
    assert status == 200, raw
    assert headers["x-aigw-winner"] == "fast"
    assert js["choices"][0]["message"]["content"] == "fast one"
    assert outcomes(js) == {"fast": "won", "slow": "cancelled"}

    def closed():
        log = upstream.log()
        slow = [r for r in log["requests"] if r["model"] == "slow"]
        if not slow or slow[0]["outcome"] is None:
            return None
        return log, slow[0]
    log, slow = wait_until(closed, 5, what="slow upstream request to end")
    fast = [r for r in log["requests"] if r["model"] == "fast"][0]
    assert slow["outcome"] == "client_closed"
    conn = [c for c in log["connections"] if c["id"] == slow["conn_id"]][0]
    assert conn["closed_ns"] is not None
    #  client_closed: the fake upstream saw the connection close while it was still
    #  holding the slow answer (due 3 s after the request), so the loser was cut, not
    #  finished. How soon is a figure, printed, not asserted (shared CI machines).
    gap_ms = (conn["closed_ns"] - fast["finished_ns"]) / 1e6
    print(f"loser's upstream connection closed {gap_ms:.2f} ms after the win")


def test_all_targets_fail_with_reasons(make_system, upstream):
    upstream.script({"bad1": {"status": 500, "error_message": "model exploded"},
                     "bad2": {"status": 429, "error_message": "slow down"}})
    s = make_system(models=openai_models(upstream, ["bad1", "bad2"])).start()
    status, headers, js, raw = s.http.chat("bad1,bad2")
    # A 500 and a 429: the rate limit decides (a later retry can succeed; docs/errors.md)
    assert status == 429, raw
    assert js["error"]["code"] == "rate_limit_exceeded"
    assert js["error"]["message"]
    att = {a["model"]: a for a in js["aigw"]["attempts"]}
    assert att["bad1"]["outcome"] == "failed" and att["bad2"]["outcome"] == "failed"
    assert "500" in att["bad1"]["error"] and "model exploded" in att["bad1"]["error"]
    assert "429" in att["bad2"]["error"] and "slow down" in att["bad2"]["error"]


def test_deadline_504_and_upstream_cancelled(make_system, upstream):
    upstream.script({"sleepy": {"latency_ms": 5000}})
    s = make_system(models=openai_models(upstream, ["sleepy"])).start()
    # The upstream would answer 200 after 5 s: a 504 means the 300 ms deadline ended it
    status, _, js, raw = s.http.chat("sleepy", aigw={"deadline_ms": 300})
    assert status == 504, raw
    assert js["error"]["type"]
    req = wait_until(lambda: [r for r in upstream.requests_for("sleepy") if r["outcome"]], 5,
                     what="sleepy request to end")[0]
    assert req["outcome"] == "client_closed"


def test_api_key_from_env_is_sent(make_system, upstream, monkeypatch):
    upstream.script({"keyed": {"latency_ms": 1}})
    monkeypatch.setenv("AIGW_TEST_KEY", "sk-test-123")
    models = openai_models(upstream, ["keyed"]) + "        api_key_env = AIGW_TEST_KEY\n"
    s = make_system(models=models).start()
    status, _, js, raw = s.http.chat("keyed")
    assert status == 200, raw
    assert upstream.requests_for("keyed")[0]["headers_seen"]["authorization"] is True
    for name in s.procs:
        assert "sk-test-123" not in s.logs(name)


# ---------------------------------------------------------------- failures of processes

def test_worker_sigkill_mid_request_gets_exactly_one_answer(make_system, upstream):
    upstream.script({"steady": {"latency_ms": 1500, "text": "survived"}})
    s = make_system(models=openai_models(upstream, ["steady"]), workers=1)
    s.start()
    result = {}

    def call():
        result["resp"] = s.client().chat("steady")

    t = threading.Thread(target=call)
    t.start()
    wait_until(lambda: upstream.requests_for("steady"), 5, what="first attempt upstream")
    s.start_worker(1)                      # a second worker joins the pool
    wait_until(lambda: s.live_workers() >= 2, 5, what="second worker")
    s.kill("worker0")                      # SIGKILL the worker holding the request
    t.join(20)
    assert not t.is_alive(), "request never answered"
    status, headers, js, raw = result["resp"]
    assert status == 200, raw
    assert js["choices"][0]["message"]["content"] == "survived"
    # The broker re-dispatched the attempt to the surviving worker.
    assert len(upstream.requests_for("steady")) == 2
    # Exactly one answer: the connection is idle and usable, nothing else arrives.
    assert s.http.chat("steady")[0] == 200


def test_broker_restart_heals(make_system):
    s = make_system(models=SIM_MODELS, groups=SIM_GROUPS).start()
    assert s.http.chat("fast-sim")[0] == 200
    pids = {n: p.pid for n, p in s.procs.items() if n != "broker"}
    s.kill("broker")
    wait_until(lambda: s.ready() is None, 10, what="edge to notice the broker is gone")
    assert s.http.chat("fast-sim")[0] == 503
    s.start_broker()
    s.wait_ready(workers=2, timeout=20)
    c = s.client()
    status, headers, js, raw = c.chat("slow-sim,fast-sim")
    assert status == 200, raw
    assert headers["x-aigw-winner"] == "fast-sim"
    for n, pid in pids.items():
        assert s.procs[n].pid == pid and s.procs[n].poll() is None, f"{n} was restarted or died"


# ---------------------------------------------------------------- configuration

@pytest.mark.parametrize("binary", ["aigw-broker", "aigw-worker", "aigw-edge"])
def test_bad_config_names_key_and_exits_nonzero(tmp_path, binary):
    import subprocess
    from harness import BIN
    cfg = tmp_path / "bad.conf"
    cfg.write_text("broker\n    heartbeat_ms = often\nmodels\n    m\n        provider = sim\n")
    p = subprocess.run([str(BIN / binary), "--config", str(cfg)], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode != 0
    assert "broker/heartbeat_ms" in p.stderr
    p = subprocess.run([str(BIN / binary), "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "--config" in (p.stdout + p.stderr)
