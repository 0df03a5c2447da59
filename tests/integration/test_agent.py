"""The Python agent as a fabric peer, end to end through the edge.

Starts broker, workers and edge, then `aigw-agent` (the agent registers its
services as models). Requests for agent/deliberate and agent/consensus go
HTTP -> edge -> broker -> agent, which calls models back through the broker.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from harness import wait_until

AGENT_BIN = Path(sys.executable).parent / "aigw-agent"

pytestmark = pytest.mark.skipif(not AGENT_BIN.exists(), reason="aigw-agent not installed in venv")

SIM = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n        text = \"fast fact\"\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 60\n        text = \"slow fact\"\n"
)


def start_agent(system, agent_conf: str):
    path = system.tmp / "agent.conf"
    path.write_text(agent_conf)
    system._start("agent", [str(AGENT_BIN), "--config", str(system.cfg),
                            "--agent-config", str(path), "--id", "agent-test"])

    def registered():
        system.check_alive()
        c = system.client()
        status, _, js, _ = c.request("GET", "/v1/models")
        c.close()
        ids = {m["id"] for m in (js or {}).get("data", [])}
        return {"agent/deliberate", "agent/consensus"} <= ids
    wait_until(registered, 20, what="agent services registered")


def agent_conf(planner, solvers, synth, models, judge):
    return (
        "agent\n    capacity = 8\n"
        "deliberate\n    service = agent/deliberate\n"
        f"    planner = {planner}\n    solvers = \"{solvers}\"\n    policy = race\n"
        f"    synth = {synth}\n    max_subquestions = 4\n"
        "consensus\n    service = agent/consensus\n"
        f"    models = \"{models}\"\n    judge = {judge}\n")


def test_deliberate_and_consensus_with_sim(make_system):
    s = make_system(models=SIM).start()
    start_agent(s, agent_conf("fast-sim", "fast-sim, slow-sim", "fast-sim",
                              "fast-sim, slow-sim", "fast-sim"))
    status, headers, js, raw = s.http.chat("agent/deliberate", "Why is the sky blue?")
    assert status == 200, raw
    assert headers["x-aigw-winner"] == "agent/deliberate"
    assert js["choices"][0]["message"]["content"] == "fast fact"   # synthesizer's text
    status, headers, js, raw = s.http.chat("agent/consensus", "Why is the sky blue?")
    assert status == 200, raw
    content = js["choices"][0]["message"]["content"]
    assert "Consensus" in content and "fast-sim" in content


def test_deliberate_subcalls_run_in_parallel_and_feed_synthesis(make_system, upstream):
    upstream.script({
        "planner": {"latency_ms": 5,
                    "text": "1. What is alpha?\n2. What is beta?\n3. What is gamma?"},
        "solver-a": {"latency_ms": 300, "text": "SOLVED-BY-A"},
        "solver-b": {"latency_ms": 2000, "text": "SOLVED-BY-B"},
        "synth": {"latency_ms": 5, "text": "FINAL SYNTHESIS"},
    })
    models = "".join(
        f"    {n}\n        provider = openai\n        base_url = {upstream.url}\n"
        for n in ("planner", "solver-a", "solver-b", "synth"))
    s = make_system(models=models).start()
    start_agent(s, agent_conf("planner", "solver-a, solver-b", "synth",
                              "solver-a, synth", "planner"))
    upstream.reset()
    status, headers, js, raw = s.http.chat("agent/deliberate", "Tell me about the letters.")
    assert status == 200, raw
    assert js["choices"][0]["message"]["content"] == "FINAL SYNTHESIS"

    log = upstream.log()["requests"]
    solver_a = [r for r in log if r["model"] == "solver-a"]
    assert len(solver_a) == 3, [r["model"] for r in log]
    # Parallel: every sub-call started before any of them finished.
    assert max(r["started_ns"] for r in solver_a) < min(r["finished_ns"] for r in solver_a)
    # Each sub-question was a race: solver-b was started and cancelled for each.
    solver_b = wait_until(lambda: [r for r in upstream.requests_for("solver-b") if r["outcome"]]
                          if len([r for r in upstream.requests_for("solver-b") if r["outcome"]]) == 3
                          else None, 5, what="solver-b attempts to end")
    assert all(r["outcome"] == "client_closed" for r in solver_b)
    # The synthesis call was made after the sub-calls, from their answers.
    synth = [r for r in log if r["model"] == "synth"]
    assert len(synth) == 1
    assert synth[0]["started_ns"] > max(r["finished_ns"] for r in solver_a)
    prompt = json.dumps(synth[0]["body"]["messages"])
    assert prompt.count("SOLVED-BY-A") == 3
    for q in ("alpha", "beta", "gamma"):
        assert q in prompt


def test_consensus_reports_agreement(make_system, upstream):
    upstream.script({
        "m1": {"latency_ms": 50, "text": "Paris"},
        "m2": {"latency_ms": 60, "text": "Paris"},
        "m3": {"latency_ms": 40, "text": "Lyon"},
        "judge": {"latency_ms": 5, "text": "{\"answer\": \"Paris\", \"agree\": [1, 2]}"},
    })
    models = "".join(
        f"    {n}\n        provider = openai\n        base_url = {upstream.url}\n"
        for n in ("m1", "m2", "m3", "judge"))
    s = make_system(models=models).start()
    start_agent(s, agent_conf("m1", "m1", "m1", "m1, m2, m3", "judge"))
    upstream.reset()
    status, _, js, raw = s.http.chat("agent/consensus", "Capital of France?")
    assert status == 200, raw
    content = js["choices"][0]["message"]["content"]
    assert content.startswith("Paris")
    assert "m1, m2 agreed" in content
    log = upstream.log()["requests"]
    asked = [r for r in log if r["model"] in ("m1", "m2", "m3")]
    assert len(asked) == 3
    assert max(r["started_ns"] for r in asked) < min(r["finished_ns"] for r in asked)
    judge = [r for r in log if r["model"] == "judge"][0]
    body = json.dumps(judge["body"]["messages"])
    assert "Paris" in body and "Lyon" in body


def test_deliberate_streams_through_edge(make_system):
    import http.client
    s = make_system(models=SIM).start()
    start_agent(s, agent_conf("fast-sim", "fast-sim, slow-sim", "fast-sim",
                              "fast-sim, slow-sim", "fast-sim"))
    c = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=20)
    c.request("POST", "/v1/chat/completions", json.dumps({
        "model": "agent/deliberate", "stream": True,
        "messages": [{"role": "user", "content": "Why is the sky blue?"}]}),
        {"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/event-stream")
    events, text, done = [], "", False
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line == "data: [DONE]":
            done = True
            break
        if line.startswith("data: "):
            ev = json.loads(line[6:])
            events.append(ev)
            for ch in ev.get("choices", []):
                text += (ch.get("delta") or {}).get("content") or ""
    c.close()
    assert done, events
    assert events[0]["aigw"]["winner"] == "agent/deliberate"
    assert text == "fast fact"
