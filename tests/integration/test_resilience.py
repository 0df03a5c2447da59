"""Resilience at the broker (docs/errors.md: Retries, Cooldown, Hedge budget), through the
real edge, broker and workers against the scripted fake upstream.

What reached the provider is counted in the fake upstream's request log (reset or
filtered by model before each scenario); what the client saw is read from the HTTP
answers (status, Retry-After, the `aigw` object) and, where the SDK's behaviour matters,
with the OpenAI Python SDK (max_retries=0, so every retry seen is the gateway's own).
The broker's counters are read from the edge's /metrics once its metrics message has
caught up with the jobs sent (aigw_broker_jobs_accepted_total).
"""
from __future__ import annotations

import http.client
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait as wait_futures

import openai
import pytest

from harness import Http, wait_until

USER = [{"role": "user", "content": "Hello"}]


def models(upstream, spec: dict[str, dict]) -> str:
    """models/ entries for the fake upstream: {name: {config key: value}}."""
    out = ""
    for name, keys in spec.items():
        out += (f"    {name}\n        provider = openai\n        base_url = {upstream.url}\n"
                f"        upstream_model = {name}\n")
        out += "".join(f"        {k} = {v}\n" for k, v in keys.items())
    return out


def group(name: str, targets: str, **keys) -> str:
    return (f"    {name}\n        targets = \"{targets}\"\n"
            + "".join(f"        {k} = {v}\n" for k, v in keys.items()))


def sdk(system) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{system.http_port}/v1", api_key="x",
                         max_retries=0, timeout=30)


def chat(system, model: str, aigw: dict | None = None):
    """(status, lowercased headers, json) of one non-streaming chat request."""
    c = system.client()
    try:
        extra = {"aigw": aigw} if aigw else {}
        status, headers, js, raw = c.chat(model, **extra)
    finally:
        c.close()
    assert js is not None, raw
    return status, headers, js


def stream_raw(system, model: str, aigw: dict | None = None) -> tuple[int, str]:
    """A streaming chat request read to its end: (status, body text)."""
    body = {"model": model, "stream": True, "messages": USER}
    if aigw:
        body["aigw"] = aigw
    c = http.client.HTTPConnection("127.0.0.1", system.http_port, timeout=30)
    try:
        c.request("POST", "/v1/chat/completions", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """[(event name or None, data)] of an SSE body."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        ev, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                ev = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        out.append((ev, "\n".join(data)))
    return out


def attempts(js: dict) -> list[dict]:
    return js["aigw"]["attempts"]


def n_up(upstream, model: str) -> int:
    return len(upstream.requests_for(model))


def patch_script(upstream, table: dict):
    status, _, _, raw = upstream.http.request("PATCH", "/_control/script", table)
    assert status == 200, raw


# ------------------------------------------------------------------ broker counters

_SAMPLE = re.compile(r"^(aigw_broker_[a-z_]+_total) (\S+)$", re.M)


def broker_counters(system) -> dict[str, float]:
    c = Http("127.0.0.1", system.http_port, timeout=10)
    try:
        status, _, _, raw = c.request("GET", "/metrics")
    finally:
        c.close()
    assert status == 200, raw
    return {k: float(v) for k, v in _SAMPLE.findall(raw.decode())}


def counters_after(system, jobs: int, timeout: float = 10.0) -> dict[str, float]:
    """The broker's counters once its metrics message (about once a second) counts
    `jobs` accepted jobs; they are then a snapshot taken after every one of them."""
    def caught_up():
        c = broker_counters(system)
        return c if c.get("aigw_broker_jobs_accepted_total", -1) >= jobs else None
    c = wait_until(caught_up, timeout, 0.1, f"broker metrics counting {jobs} jobs")
    assert c["aigw_broker_jobs_accepted_total"] == jobs, c
    return c


# ------------------------------------------------------------------ a: retries counted

def test_retries_are_counted_at_the_upstream(make_system, upstream):
    upstream.script({"boom": {"status": 500}, "once": {"status": 500}})
    s = make_system(models=models(upstream, {
        "boom": {"retries": 2, "retry_backoff_ms": 1},
        "once": {"retries": 0},
    })).start()

    status, _, js = chat(s, "boom")
    assert status == 502 and js["error"]["code"] == "upstream_error"
    log = upstream.requests_for("boom")
    assert len(log) == 3
    assert log[0]["started_ns"] < log[1]["started_ns"] < log[2]["started_ns"]
    att = attempts(js)
    assert len(att) == 3
    assert all(a["model"] == "boom" and a["outcome"] == "failed"
               and a["upstream_status"] == 500 for a in att), att
    # each retry names the attempt it repeats: the one just before it
    assert "retry_of" not in att[0]
    assert [a.get("retry_of") for a in att[1:]] == [0, 1]
    assert att[0]["started_ms"] <= att[1]["started_ms"] <= att[2]["started_ms"]
    assert "retry_suppressed" not in js["aigw"]

    # the request's own aigw.retries wins over the model's, both ways
    upstream.reset()
    status, _, js = chat(s, "once", {"retries": 2, "retry_backoff_ms": 1})
    assert status == 502 and len(attempts(js)) == 3 and n_up(upstream, "once") == 3
    status, _, js = chat(s, "boom", {"retries": 0})
    assert status == 502 and len(attempts(js)) == 1 and n_up(upstream, "boom") == 1

    c = counters_after(s, 3)
    assert c["aigw_broker_attempts_retried_total"] == 4
    assert c["aigw_broker_retries_suppressed_total"] == 0


# ------------------------------------------------------------------ b: a retry that wins

def test_a_retry_that_succeeds(make_system, upstream):
    upstream.script({"flaky": {"status": 503, "fail_first": 1, "text": "second time lucky"}})
    s = make_system(models=models(upstream, {"flaky": {}})).start()

    r = sdk(s).chat.completions.create(model="flaky", messages=USER,
                                       extra_body={"aigw": {"retry_backoff_ms": 1}})
    assert r.choices[0].message.content == "second time lucky"
    assert r.model == "flaky"
    log = upstream.requests_for("flaky")
    assert [x["status"] for x in log] == [503, 200]
    att = r.model_extra["aigw"]["attempts"]
    assert len(att) == 2
    assert att[0]["outcome"] == "failed" and att[0]["upstream_status"] == 503
    assert att[1]["outcome"] == "won" and att[1]["retry_of"] == 0
    assert r.model_extra["aigw"]["winner"] == "flaky"


# ------------------------------------------------------------------ c: not retried

NOT_RETRIED = {  # upstream status -> (the client's status, error.code; None: the provider's)
    400: (400, None),
    401: (502, "upstream_auth_failed"),
    403: (502, "upstream_auth_failed"),
    404: (400, None),
    422: (400, None),
    504: (502, "upstream_error"),
}


def test_client_errors_auth_and_504_are_not_retried(make_system, upstream):
    upstream.script({f"s{st}": {"status": st} for st in NOT_RETRIED})
    s = make_system(models=models(upstream, {f"s{st}": {"retries": 3, "retry_backoff_ms": 1}
                                             for st in NOT_RETRIED})).start()
    client = sdk(s)
    for st, (want, code) in NOT_RETRIED.items():
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model=f"s{st}", messages=USER)
        e = exc.value
        att = e.response.json()["aigw"]["attempts"]
        assert len(att) == 1 and att[0]["upstream_status"] == st, att
        assert (e.status_code, e.code) == (want, code or att[0]["upstream_code"]), (st, e)
        assert n_up(upstream, f"s{st}") == 1, st
    c = counters_after(s, len(NOT_RETRIED))
    assert c["aigw_broker_attempts_retried_total"] == 0


# ------------------------------------------------------------------ d: 429 and Retry-After

def test_rate_limit_retried_only_when_retry_after_fits(make_system, upstream):
    upstream.script({
        "rl30": {"status": 429, "retry_after": "30"},
        "rl0": {"status": 429, "retry_after": "0"},
        "rl1": {"status": 429, "retry_after": "1", "fail_first": 1, "text": "waited"},
    })
    s = make_system(models=models(upstream, {
        "rl30": {"retries": 2, "retry_backoff_ms": 1},
        "rl0": {"retries": 2, "retry_backoff_ms": 1},
        "rl1": {"retries": 2, "retry_backoff_ms": 1},
    })).start()
    client = sdk(s)

    # Retry-After 30 s does not fit in a 2 s deadline: no retry, the client gets it
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="rl30", messages=USER,
                                       extra_body={"aigw": {"deadline_ms": 2000}})
    e = exc.value
    assert e.status_code == 429 and e.code == "rate_limit_exceeded"
    assert e.response.headers["retry-after"] == "30"
    att = e.response.json()["aigw"]["attempts"]
    assert len(att) == 1 and att[0]["retry_after_ms"] == 30000
    assert n_up(upstream, "rl30") == 1

    # Retry-After 0 fits: retried as often as allowed, then 429
    status, _, js = chat(s, "rl0")
    assert status == 429 and js["error"]["code"] == "rate_limit_exceeded"
    assert n_up(upstream, "rl0") == 3
    assert [a.get("retry_of") for a in attempts(js)] == [None, 0, 1]

    # Retry-After 1 s fits in 10 s: the retry waits for it, and wins
    status, _, js = chat(s, "rl1", {"deadline_ms": 10000})
    assert status == 200 and js["choices"][0]["message"]["content"] == "waited"
    log = upstream.requests_for("rl1")
    assert [x["status"] for x in log] == [429, 200]
    assert log[1]["started_ns"] - log[0]["finished_ns"] >= 0.99e9   # no sooner than asked
    assert attempts(js)[1]["retry_of"] == 0


# ------------------------------------------------------------------ e: default retries

def test_default_retries(make_system, upstream):
    upstream.script({n: {"status": 500} for n in ("lone", "p1", "p2", "f1", "f2")})
    s = make_system(
        models=models(upstream, {n: {} for n in ("lone", "p1", "p2", "f1", "f2")}),
        groups=group("pair", "p1, p2") + group("careful", "f1, f2", policy="fallback"),
    ).start()

    # a single model: one retry
    status, _, js = chat(s, "lone")
    assert status == 502 and n_up(upstream, "lone") == 2
    assert [a.get("retry_of") for a in attempts(js)] == [None, 0]

    # a race of several: its other targets are the spare, no retry
    status, _, js = chat(s, "pair")
    assert status == 502
    assert (n_up(upstream, "p1"), n_up(upstream, "p2")) == (1, 1)
    assert sorted(a["model"] for a in attempts(js)) == ["p1", "p2"]
    assert all("retry_of" not in a for a in attempts(js))

    # a fallback: one retry per target, the retry before moving on
    status, _, js = chat(s, "careful")
    assert status == 502
    assert (n_up(upstream, "f1"), n_up(upstream, "f2")) == (2, 2)
    assert [(a["model"], a.get("retry_of")) for a in attempts(js)] == [
        ("f1", None), ("f1", 0), ("f2", None), ("f2", 2)]


# ------------------------------------------------------------------ retry budget

def test_retries_draw_on_the_budget(make_system, upstream):
    # No cooldown here (0 = never on a count or a rate): only the budget stops retries.
    upstream.script({"greedy": {"status": 500}})
    s = make_system(models=models(upstream, {"greedy": {
        "retries": 5, "retry_backoff_ms": 1, "cooldown_failures": 0,
        "cooldown_error_rate": 0}})).start()

    # the bucket starts full (5): the first job's 5 retries empty it
    status, _, js = chat(s, "greedy")
    assert status == 502 and len(attempts(js)) == 6 and n_up(upstream, "greedy") == 6
    assert "retry_suppressed" not in js["aigw"]
    # the next job earns 0.1, not enough for one retry
    status, _, js = chat(s, "greedy")
    assert status == 502 and len(attempts(js)) == 1 and n_up(upstream, "greedy") == 7
    assert js["aigw"]["retry_suppressed"] is True
    c = counters_after(s, 2)
    assert c["aigw_broker_attempts_retried_total"] == 5
    assert c["aigw_broker_retries_suppressed_total"] == 1


# ------------------------------------------------------------------ f: cooldown

def test_cooldown_trips_and_recovers(make_system, upstream):
    upstream.script({"cool": {"status": 500}, "ok": {"text": "healthy"}})
    s = make_system(
        models=models(upstream, {"cool": {"retries": 0, "cooldown_failures": 3,
                                          "cooldown_ms": 1000},
                                 "ok": {}}),
        groups=group("both", "cool, ok"),
    ).start()
    jobs = 0

    for _ in range(3):
        status, _, js = chat(s, "cool")
        jobs += 1
        assert status == 502 and js["error"]["code"] == "upstream_error"
    assert n_up(upstream, "cool") == 3

    # tripped: answered at once, nothing sent upstream
    status, headers, js = chat(s, "cool")
    jobs += 1
    assert status == 503, js
    assert js["error"]["code"] == "cooldown"
    assert js["error"]["type"] == "service_unavailable"
    assert int(headers["retry-after"]) >= 1
    att = attempts(js)
    assert [(a["model"], a["outcome"], a.get("error_code")) for a in att] == [
        ("cool", "skipped", "cooldown")]
    assert n_up(upstream, "cool") == 3
    cooldown_503 = 1

    # a race with a healthy target answers from it; the cooling one is listed as skipped
    status, _, js = chat(s, "both")
    jobs += 1
    assert status == 200 and js["choices"][0]["message"]["content"] == "healthy"
    assert js["aigw"]["winner"] == "ok"
    by = {a["model"]: a for a in attempts(js)}
    assert by["cool"]["outcome"] == "skipped" and by["cool"]["error_code"] == "cooldown"
    assert by["ok"]["outcome"] == "won"
    assert n_up(upstream, "cool") == 3

    # the provider recovers; after the cooldown one probe goes through and closes it
    patch_script(upstream, {"cool": {"text": "back again"}})
    end = time.monotonic() + 15
    while True:
        assert time.monotonic() < end, "no probe let through within 15 s"
        status, headers, js = chat(s, "cool")
        jobs += 1
        if status == 200:
            break
        assert status == 503 and js["error"]["code"] == "cooldown", js
        cooldown_503 += 1
        assert n_up(upstream, "cool") == 3
        honour_retry_after(headers)
    assert js["choices"][0]["message"]["content"] == "back again"
    assert [a["outcome"] for a in attempts(js)] == ["won"]
    assert n_up(upstream, "cool") == 4           # exactly one probe

    # closed again: every request goes through
    for i in range(3):
        status, _, js = chat(s, "cool")
        jobs += 1
        assert status == 200 and [a["outcome"] for a in attempts(js)] == ["won"]
        assert n_up(upstream, "cool") == 5 + i
    status, _, js = chat(s, "both")
    jobs += 1
    assert status == 200
    assert all(a["outcome"] != "skipped" for a in attempts(js)), attempts(js)
    assert n_up(upstream, "cool") == 8

    c = counters_after(s, jobs)
    assert c["aigw_broker_breaker_trips_total"] == 1
    assert c["aigw_broker_jobs_cooldown_total"] == cooldown_503
    assert c["aigw_broker_attempts_skipped_total"] == cooldown_503 + 1
    print(f"\ncooldown: {cooldown_503} answers 503 cooldown before the probe")


def honour_retry_after(headers) -> None:
    """Wait as a client should: for the Retry-After the gateway announced with its 503."""
    wait = int(headers["retry-after"])
    assert 1 <= wait <= 60, headers
    time.sleep(wait)


def test_half_open_probe_alone_and_a_failed_probe_doubles(make_system, upstream):
    upstream.script({"cool": {"status": 500}})
    s = make_system(models=models(upstream, {"cool": {"retries": 0, "cooldown_failures": 1,
                                                      "cooldown_ms": 500}})).start()

    def until_let_through(timeout=15.0):
        """Ask until the breaker lets a request through; (status, js, 503s seen)."""
        c, n503 = s.client(), 0
        try:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                status, headers, js, raw = c.chat("cool")
                if status != 503:
                    return status, js, n503
                assert js["error"]["code"] == "cooldown", raw
                n503 += 1
                honour_retry_after(headers)
            raise AssertionError(f"nothing let through in {timeout} s")
        finally:
            c.close()

    assert chat(s, "cool")[0] == 502                         # trips
    status, js, _ = until_let_through()
    assert status == 502 and [a["outcome"] for a in attempts(js)] == ["failed"]  # bad probe
    log = upstream.requests_for("cool")
    assert len(log) == 2
    assert log[1]["started_ns"] - log[0]["finished_ns"] >= 0.49e9   # the first cooldown

    # the provider recovers but is slow: while its probe is out, the model stays closed
    patch_script(upstream, {"cool": {"latency_ms": 1500, "text": "probe"}})
    probe = {}

    def poll():
        try:
            probe["r"] = until_let_through()
        except BaseException as ex:      # re-raised in the test's thread below
            probe["r"] = ex
    t = threading.Thread(target=poll, daemon=True)
    t.start()
    wait_until(lambda: len(upstream.requests_for("cool")) == 3, 15, 0.01, "the second probe")
    status, headers, js = chat(s, "cool")
    assert status == 503 and js["error"]["code"] == "cooldown", js
    assert int(headers["retry-after"]) >= 1
    assert n_up(upstream, "cool") == 3
    t.join(20)
    assert not t.is_alive()
    if isinstance(probe["r"], BaseException):
        raise probe["r"]
    status, js, _ = probe["r"]
    assert status == 200 and js["choices"][0]["message"]["content"] == "probe"
    log = upstream.requests_for("cool")
    assert log[2]["started_ns"] - log[1]["finished_ns"] >= 0.98e9   # doubled after a bad probe

    # closed: the next request goes straight through
    patch_script(upstream, {"cool": {"text": "closed"}})
    status, _, js = chat(s, "cool")
    assert status == 200 and js["choices"][0]["message"]["content"] == "closed"
    assert n_up(upstream, "cool") == 4


def test_skipped_attempt_names_no_worker(make_system, upstream):
    upstream.script({"cool": {"status": 500}, "ok": {}})
    s = make_system(
        models=models(upstream, {"cool": {"retries": 0, "cooldown_failures": 1,
                                          "cooldown_ms": 60000},
                                 "ok": {}}),
        groups=group("both", "cool, ok"),
    ).start()
    assert chat(s, "cool")[0] == 502                 # trips; its attempt ran on a worker
    status, _, js = chat(s, "both")
    assert status == 200
    skipped = [a for a in attempts(js) if a["outcome"] == "skipped"]
    assert len(skipped) == 1
    assert skipped[0]["worker"] is None, skipped[0]  # it never reached a worker


# ------------------------------------------------------------------ g: hedge budget

def test_hedge_budget_holds(make_system, upstream):
    jobs, threads, budget = 1000, 16, 0.1
    upstream.script({"slow": {"latency_ms": 40, "text": "slow answer"},
                     "fast": {"latency_ms": 1, "text": "fast answer"}})
    s = make_system(models=models(upstream, {"slow": {}, "fast": {}}),
                    groups=group("hedged", "slow, fast", policy="hedge", hedge_delay_ms=5),
                    capacity=64).start()
    local = threading.local()
    texts = {"slow": "slow answer", "fast": "fast answer"}

    def one(_):
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = s.client()
        status, _, js, raw = c.chat("hedged")
        assert status == 200, raw
        aigw = js["aigw"]
        assert js["choices"][0]["message"]["content"] == texts[aigw["winner"]]
        hedges = [a for a in aigw["attempts"] if a.get("hedge")]
        assert all(a["model"] == "fast" for a in hedges) and len(hedges) <= 1, aigw
        return len(hedges), bool(aigw.get("hedge_suppressed"))

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        futs = [pool.submit(one, i) for i in range(jobs)]
        done, not_done = wait_futures(futs, timeout=90)
        for f in not_done:
            f.cancel()
    assert not not_done, f"{len(not_done)} of {jobs} jobs unanswered after 90 s"
    got = [f.result() for f in futs]                 # re-raises a job's failed assert
    elapsed = time.monotonic() - t0

    hedged = sum(h for h, _ in got)
    suppressed = sum(sup for _, sup in got)
    fast_up = n_up(upstream, "fast")
    slow_up = n_up(upstream, "slow")
    print(f"\nhedge budget: jobs={len(got)} hedges={hedged} (fast upstream requests "
          f"{fast_up}, slow {slow_up}) suppressed={suppressed} bound={budget * jobs + 5:g} "
          f"in {elapsed:.1f} s")
    assert len(got) == jobs
    assert 0 < hedged <= budget * jobs + 5
    assert fast_up <= hedged             # every request for fast was a hedge's
    assert fast_up > 0
    assert suppressed > 0 and hedged + suppressed <= jobs
    c = counters_after(s, jobs)
    assert c["aigw_broker_attempts_hedged_total"] == hedged
    assert c["aigw_broker_hedges_suppressed_total"] == suppressed


# ------------------------------------------------------------------ h: streams

def test_stream_retried_before_its_first_token(make_system, upstream):
    text = "one two three four"
    upstream.script({"sflaky": {"status": 503, "fail_first": 1, "text": text}})
    s = make_system(models=models(upstream, {"sflaky": {"retry_backoff_ms": 1}})).start()

    # the SDK sees an ordinary stream
    chunks = list(sdk(s).chat.completions.create(model="sflaky", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [x["status"] for x in upstream.requests_for("sflaky")] == [503, 200]

    # the same on the wire: no error event, [DONE], and the retry in the attempts
    upstream.reset()
    patch_script(upstream, {"sflaky": {"status": 503, "fail_first": 1, "text": text}})
    # (replacing the entry re-arms fail_first)
    status, body = stream_raw(s, "sflaky")
    assert status == 200
    evs = sse_events(body)
    assert all(ev is None for ev, _ in evs), body
    assert evs[-1][1] == "[DONE]"
    last = json.loads(evs[-2][1])
    att = last["aigw"]["attempts"]
    assert [(a["outcome"], a.get("retry_of")) for a in att] == [("failed", None), ("won", 0)]
    assert n_up(upstream, "sflaky") == 2


def test_stream_cut_after_tokens_is_not_retried(make_system, upstream):
    upstream.script({"scut": {"cut_after_chunks": 2, "text": "one two three four"}})
    s = make_system(models=models(upstream, {"scut": {"retries": 3,
                                                      "retry_backoff_ms": 1}})).start()

    status, body = stream_raw(s, "scut")
    assert status == 200
    evs = sse_events(body)
    assert "[DONE]" not in body
    assert evs[-1][0] == "error", body
    content = [json.loads(d)["choices"][0]["delta"].get("content") for ev, d in evs[:-1]]
    assert content == ["one", " two"]
    err = json.loads(evs[-1][1])
    assert err["error"]["code"] == "upstream_error"
    assert len(err["aigw"]["attempts"]) == 1
    assert n_up(upstream, "scut") == 1

    # the SDK raises on the error event, after the two chunks
    upstream.reset()
    got = []
    with pytest.raises(openai.APIError):
        for c in sdk(s).chat.completions.create(model="scut", messages=USER, stream=True):
            got.append(c.choices[0].delta.content if c.choices else None)
    assert got == ["one", " two"]
    assert n_up(upstream, "scut") == 1
