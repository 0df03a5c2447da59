"""Failover on one host: a broker killed (and restarted at once), a worker killed, one of
two brokers killed. Every request in flight gets exactly one answer; the losing
upstream calls stop; the figures (time to recover) are printed at the end of the run.

The liveness in these tests is long (heartbeat x liveness of several seconds), so a
recovery that happens at all before it runs out comes from the disconnect events and
the brokers' instance ids, not from heartbeat silence. Tests wait for events (the fake
upstream's counters, the edge's metrics); the times are printed, never asserted.
"""
from __future__ import annotations

import http.client
import json
import threading
import time

from harness import wait_until


N = 10                                  # requests in flight when the failure happens


def openai_models(upstream, names):
    return "".join(
        f"    {n}\n        provider = openai\n        base_url = {upstream.url}\n"
        f"        upstream_model = {n}\n" for n in names)


def _in_flight(s, n, model="steady"):
    """Start n chat requests on threads; returns (threads, results)."""
    results: list = [None] * n

    def call(i):
        c = s.client()
        try:
            results[i] = c.chat(model, f"q{i}")
        finally:
            c.close()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def _join(threads, timeout=40.0):
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, end - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a request was never answered"


def test_broker_killed_and_restarted_loses_nothing(make_system, upstream, figures):
    upstream.script({"steady": {"latency_ms": 1500, "text": "survived"}})
    s = make_system(models=openai_models(upstream, ["steady"]), workers=1,
                    heartbeat_ms=200, liveness=15).start()
    threads, results = _in_flight(s, N)
    upstream.wait(requests=N)               # every request is at the upstream
    t0 = time.monotonic()
    s.kill("broker")
    s.start_broker()                        # same ports, at once
    #  The worker drops the orphaned calls, the edge resubmits each job once
    stats = upstream.wait(timeout=20, requests=2 * N, closed_connections=N)
    resubmitted_ms = (time.monotonic() - t0) * 1000
    _join(threads)
    answered_ms = (time.monotonic() - t0) * 1000
    for status, _, js, raw in results:
        assert status == 200, raw
        assert js["choices"][0]["message"]["content"] == "survived"
    m = s.edge_metrics()
    assert m["aigw_edge_link_resubmitted_total"] == N
    assert m["aigw_edge_link_failed_on_down_total"] == 0
    assert m["aigw_edge_link_brokers_lost_total"] >= 1
    assert len(upstream.requests_for("steady")) == 2 * N    # once each, again once each
    assert s.http.chat("steady")[0] == 200
    figures(f"broker kill -9 + restart: {N} in flight, {N} answered, 0 lost, 0 duplicated; "
            f"all resubmitted upstream {resubmitted_ms:.0f} ms after the kill, answered "
            f"{answered_ms:.0f} ms after it (upstream latency 1500 ms); orphaned upstream "
            f"calls closed: {stats['closed_connections']}")


def test_broker_killed_mid_stream_ends_streams_cleanly(make_system, upstream):
    upstream.script({"words": {"latency_ms": 10, "token_interval_ms": 100,
                               "text": " ".join(["w"] * 60)}})
    s = make_system(models=openai_models(upstream, ["words"]), workers=1,
                    heartbeat_ms=200, liveness=15).start()
    first_token = [threading.Event() for _ in range(3)]
    bodies: list = [b""] * 3

    def stream(i):
        conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=30)
        conn.request("POST", "/v1/chat/completions", body=json.dumps({
            "model": "words", "stream": True,
            "messages": [{"role": "user", "content": f"s{i}"}]}),
            headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        while line := resp.readline():
            bodies[i] += line
            if b'"content"' in line:
                first_token[i].set()
        conn.close()
    threads = [threading.Thread(target=stream, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    #  Tokens reached every client: the streams cannot be resubmitted
    for ev in first_token:
        assert ev.wait(20), "no token reached a client"
    s.kill("broker")
    _join(threads)
    for raw in bodies:
        body = raw.decode()
        assert "event: error" in body, body[-300:]
        assert "[DONE]" not in body
    m = s.edge_metrics()
    assert m["aigw_edge_link_failed_on_down_total"] == 3
    assert m["aigw_edge_link_resubmitted_total"] == 0


def test_edge_killed_its_upstream_calls_stop(make_system, upstream, figures):
    """An edge killed with -9 while its jobs run: the broker sees the edge's connection
    close and cancels its jobs at once, so the upstream calls stop (not at the
    deadline, 120 s here)."""
    upstream.script({"long": {"latency_ms": 60000, "text": "never needed"}})
    s = make_system(models=openai_models(upstream, ["long"]), workers=1).start()
    threads, _ = _in_flight_quiet(s, N, "long")
    upstream.wait(requests=N)
    t0 = time.monotonic()
    s.kill("edge")
    stats = upstream.wait(timeout=20, client_closed=N)
    stopped_ms = (time.monotonic() - t0) * 1000
    _join(threads)
    s.start_edge()                          # to read the broker's counters
    wait_until(lambda: _broker_counter(s, "jobs_client_gone") >= N, 10,
               what="the broker's jobs_client_gone counter")
    assert _broker_counter(s, "jobs_client_gone") == N
    assert stats["client_closed"] == N
    figures(f"edge kill -9: {N} jobs in flight; the broker cancelled them and all {N} "
            f"upstream calls were closed {stopped_ms:.0f} ms after the kill")


def _in_flight_quiet(s, n, model):
    """Like _in_flight, for requests whose edge will die: errors are the result."""
    results: list = [None] * n

    def call(i):
        c = s.client()
        try:
            results[i] = c.chat(model, f"q{i}")
        except OSError as e:
            results[i] = e
        finally:
            c.close()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def _broker_counter(s, name):
    return s.edge_metrics().get(f"aigw_broker_{name}_total", 0)


def test_worker_killed_is_noticed_at_once(make_system, upstream, figures):
    """A worker killed with -9: the broker sees the disconnect (not heartbeat silence:
    liveness here is 10 s) and re-dispatches its attempts to the other worker."""
    upstream.script({"steady": {"latency_ms": 1500, "text": "survived"}})
    s = make_system(models=openai_models(upstream, ["steady"]), workers=1,
                    heartbeat_ms=200, liveness=50).start()
    threads, results = _in_flight(s, N)
    upstream.wait(requests=N)               # all N run on worker0
    s.start_worker(1)
    wait_until(lambda: s.live_workers() >= 2, 10, what="the second worker")
    t0 = time.monotonic()
    s.kill("worker0")
    upstream.wait(timeout=20, requests=2 * N)
    redispatched_ms = (time.monotonic() - t0) * 1000
    _join(threads)
    for status, _, js, raw in results:
        assert status == 200, raw
        assert js["choices"][0]["message"]["content"] == "survived"
    assert len(upstream.requests_for("steady")) == 2 * N
    wait_until(lambda: _broker_counter(s, "workers_disconnected") >= 1, 10,
               what="the broker's disconnect counter")
    figures(f"worker kill -9: {N} in flight, {N} answered, 0 lost, 0 duplicated; "
            f"re-dispatched upstream {redispatched_ms:.0f} ms after the kill "
            f"(heartbeat x liveness = 10 s)")


def test_one_of_two_brokers_killed(make_system, upstream, figures):
    """Two brokers, both used; one killed with -9 and not restarted: its jobs move to
    the other at once, nothing is lost."""
    upstream.script({"steady": {"latency_ms": 1500, "text": "survived"}})
    s = make_system(models=openai_models(upstream, ["steady"]), workers=2,
                    heartbeat_ms=200, liveness=15)
    s.start_broker()
    s.start_extra_broker(1)
    s.add_brokers_to_config()
    for i in range(2):
        s.start_worker(i)
    s.start_edge()
    s.http = s.client()
    s.wait_ready(2)
    wait_until(lambda: s.edge_metrics().get("aigw_edge_brokers_up") == 2, 10,
               what="both brokers up at the edge")
    threads, results = _in_flight(s, N)
    upstream.wait(requests=N)
    t0 = time.monotonic()
    s.kill("broker1")
    wait_until(lambda: s.edge_metrics().get("aigw_edge_brokers_up") == 1, 10,
               what="the edge to lose broker1")
    _join(threads)
    answered_ms = (time.monotonic() - t0) * 1000
    for status, _, js, raw in results:
        assert status == 200, raw
    m = s.edge_metrics()
    moved = int(m["aigw_edge_link_resubmitted_total"])
    assert 1 <= moved < N                   # broker1 held some, not all
    assert m["aigw_edge_link_failed_on_down_total"] == 0
    assert len(upstream.requests_for("steady")) == N + moved
    assert s.http.chat("steady")[0] == 200
    figures(f"one of two brokers killed: {N} in flight ({moved} on the killed one), "
            f"{N} answered, 0 lost, 0 duplicated, answered {answered_ms:.0f} ms after the "
            f"kill (upstream latency 1500 ms)")
