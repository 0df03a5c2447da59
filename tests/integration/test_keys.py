"""Virtual keys at the edge (edge/auth = on) against the real broker, workers and edge:
every status path (401, 403, 429 for each limit, insufficient_quota), revocation and
expiry, limits under concurrency, spend from real usage (cancelled race losers and
streams included), persistence across an edge restart, the operator routes, protected
mode, the aigw-keys CLI and the OpenAI SDK's exception classes."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import BIN, Http, wait_until

ADMIN = "admin-" + "k" * 26               # >= 16 characters
AH = {"Authorization": f"Bearer {ADMIN}"}

# Prices high enough that a handful of tokens is a visible cost (USD per 1M tokens).
MODELS = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n"
    "        text = \"one two three four\"\n"
    "        input_price = 1000\n        output_price = 2000\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 400\n        tokens_per_s = 50\n"
    "        text = \"a b c d e f g h i j k l m n o p q r s t\"\n"
    "        input_price = 3000\n        output_price = 6000\n"
    "    hold-sim\n        provider = sim\n        latency_ms = 3000\n        text = \"held\"\n"
)
GROUPS = (
    "    quick\n        policy = race\n        targets = \"fast-sim, slow-sim\"\n"
)


@pytest.fixture
def keyed(make_system, monkeypatch, tmp_path):
    """A running system with edge/auth = on and an admin key."""
    monkeypatch.setenv("AIGW_ADMIN_KEY", ADMIN)

    def make(extra_edge: str = "", **kw):
        s = make_system(models=MODELS, groups=GROUPS, capacity=256,
                        extra_edge=f"    auth = on\n    keys_db = {tmp_path / 'keys.db'}\n"
                                   + extra_edge, **kw)
        s.auth_headers = AH
        s.start()
        return s
    return make


def admin(s, method: str, path: str, body=None):
    c = s.client()
    try:
        return c.request(method, path, body, headers=AH)
    finally:
        c.close()


def create_key(s, **fields) -> str:
    status, _, js, _ = admin(s, "POST", "/v1/aigw/keys", fields)
    assert status == 201, js
    assert js["key"].startswith("sk-aigw-")
    return js["key"]


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def chat(s, key: str | None, model: str = "fast-sim", headers: dict | None = None, **extra):
    c = s.client()
    try:
        body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
        body.update(extra)
        h = dict(headers or {})
        if key:
            h.update(bearer(key))
        return c.request("POST", "/v1/chat/completions", body, headers=h)
    finally:
        c.close()


def key_info(s, name: str) -> dict:
    status, _, js, _ = admin(s, "GET", f"/v1/aigw/keys/{name}")
    assert status == 200, js
    return js


def test_status_paths(keyed):
    s = keyed()
    # No key, a malformed header, an unknown key: 401 invalid_api_key
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("sk-aigw-unknown")):
        status, h, js, _ = chat(s, None, headers=headers)
        assert status == 401, js
        assert js["error"]["code"] == "invalid_api_key"
        assert "www-authenticate" in h
    key = create_key(s, name="team-a", models=["fast-sim", "quick"], rpm=100)
    status, h, js, _ = chat(s, key)
    assert status == 200, js
    assert js["choices"][0]["message"]["content"] == "one two three four"
    assert h["x-ratelimit-limit-requests"] == "100"
    assert h["x-ratelimit-remaining-requests"] == "99"
    assert "x-ratelimit-reset-requests" in h
    # Anthropic-style clients send x-api-key
    status, _, js, _ = chat(s, None, headers={"x-api-key": key})
    assert status == 200, js
    # A model outside the key's patterns: 403; one element of a list outside: 403 too
    for model in ("slow-sim", "fast-sim, slow-sim"):
        status, _, js, _ = chat(s, key, model=model)
        assert status == 403, js
        assert js["error"]["code"] == "model_not_allowed"
    # The group the key names is allowed as a whole
    status, _, js, _ = chat(s, key, model="quick")
    assert status == 200, js
    # Expiry: set in the past, refused at once; revocation likewise
    status, _, js, _ = admin(s, "PATCH", "/v1/aigw/keys/team-a", {"expires_at": 1000})
    assert status == 200, js
    assert chat(s, key)[0] == 401
    admin(s, "PATCH", "/v1/aigw/keys/team-a", {"expires_at": 0})
    assert chat(s, key)[0] == 200
    status, _, js, _ = admin(s, "DELETE", "/v1/aigw/keys/team-a")
    assert status == 200 and js["revoked"] is True
    status, _, js, _ = chat(s, key)
    assert status == 401 and js["error"]["code"] == "invalid_api_key"


def test_operator_routes_need_the_admin_key(keyed):
    s = keyed()
    key = create_key(s, name="user")
    c = s.client()
    for path in ("/metrics", "/v1/aigw/events", "/v1/aigw/keys"):
        for headers in ({}, bearer(key), bearer("wrong-" + ADMIN)):
            status, _, js, _ = c.request("GET", path, headers=headers)
            assert status == 401, (path, headers, js)
    status, _, _, body = c.request("GET", "/metrics", headers=AH)
    assert status == 200 and b"aigw_edge_auth_requests_total" in body
    for path in ("/healthz", "/readyz"):
        assert c.request("GET", path)[0] == 200
    # /v1/models: any valid key
    assert c.request("GET", "/v1/models")[0] == 401
    status, _, js, _ = c.request("GET", "/v1/models", headers=bearer(key))
    assert status == 200 and js["data"]
    # Listing never shows a secret
    status, _, js, payload = c.request("GET", "/v1/aigw/keys", headers=AH)
    assert status == 200 and key.encode() not in payload
    assert [k["name"] for k in js["data"]] == ["user"]
    c.close()


def test_rpm_is_exact_under_200_concurrent_requests(keyed):
    s = keyed()
    key = create_key(s, name="burst", rpm=50)
    barrier = threading.Barrier(40)

    def one(i):
        if i < 40:
            barrier.wait(10)
        return chat(s, key)

    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(one, range(200)))
    codes = [r[0] for r in results]
    assert codes.count(200) == 50, codes
    assert codes.count(429) == 150, codes
    refused = next(r for r in results if r[0] == 429)
    h, js = refused[1], refused[2]
    assert js["error"]["code"] == "rate_limit_exceeded"
    assert js["error"]["type"] == "requests"
    assert int(h["retry-after"]) >= 1
    assert h["x-ratelimit-limit-requests"] == "50"
    assert h["x-ratelimit-remaining-requests"] == "0"
    info = key_info(s, "burst")
    assert info["requests_last_minute"] == 50


def test_parallel_limit(keyed):
    s = keyed()
    key = create_key(s, name="par", max_parallel=2)
    with ThreadPoolExecutor(6) as pool:
        codes = [r[0] for r in pool.map(lambda _: chat(s, key, model="hold-sim"), range(6))]
    assert codes.count(200) >= 2 and codes.count(429) >= 1, codes
    assert codes.count(200) + codes.count(429) == 6
    # Released at the end of each request: the key is usable again
    assert chat(s, key)[0] == 200
    assert key_info(s, "par")["in_flight"] == 0


def test_tpm_counts_real_usage(keyed):
    s = keyed()
    key = create_key(s, name="tok", tpm=5)
    status, h, js, _ = chat(s, key)
    assert status == 200, js
    used = js["usage"]["total_tokens"]
    assert used >= 5
    wait_until(lambda: key_info(s, "tok")["tokens_last_minute"] >= used, 10,
               what="the tokens to be charged")
    status, h, js, _ = chat(s, key)
    assert status == 429, js
    assert js["error"]["type"] == "tokens"
    assert h["x-ratelimit-limit-tokens"] == "5"


def _cost(js) -> float:
    return js["aigw"]["cost_usd"]


def test_budget_counts_cancelled_losers_and_streams(keyed):
    s = keyed()
    key = create_key(s, name="spender", budget_usd=1.0, budget_period="day")
    # A race: fast-sim wins, slow-sim is cancelled mid-stream (it emits 50 tokens/s)
    status, _, js, _ = chat(s, key, model="quick")
    assert status == 200, js
    assert js["aigw"]["winner"] == "fast-sim"
    winner = next(a for a in js["aigw"]["attempts"] if a["outcome"] == "won")
    assert winner["cost_usd"] > 0 and winner["usage"]["completion_tokens"] == 4
    # The loser's usage arrives after the answer (SPEND) and is charged too: the key's
    # spend ends above the winner's cost (its prompt tokens at least).
    wait_until(lambda: key_info(s, "spender")["spend_usd"] > winner["cost_usd"] + 1e-9, 10,
               what="the cancelled loser to be charged")
    info = key_info(s, "spender")
    assert info["total_requests"] == 1
    # A stream is charged from its final usage
    before = info["spend_usd"]
    c = s.client()
    c.conn.request("POST", "/v1/chat/completions",
                   body=json.dumps({"model": "fast-sim", "stream": True,
                                    "messages": [{"role": "user", "content": "hi"}]}),
                   headers={**bearer(key), "Content-Type": "application/json"})
    r = c.conn.getresponse()
    text = r.read().decode()
    assert r.status == 200 and "data: [DONE]" in text
    c.close()
    wait_until(lambda: key_info(s, "spender")["spend_usd"] > before, 10,
               what="the stream to be charged")
    # Spend until the budget is gone, then 429 insufficient_quota
    for _ in range(200):
        status, _, js, _ = chat(s, key, model="slow-sim")
        if status != 200:
            break
    assert status == 429, js
    assert js["error"]["code"] == "insufficient_quota"
    assert js["error"]["type"] == "insufficient_quota"
    info = key_info(s, "spender")
    assert info["spend_usd"] >= 1.0
    assert info["budget_remaining_usd"] == 0


def test_counters_and_spend_survive_a_restart(keyed):
    s = keyed()
    key = create_key(s, name="durable", rpm=3)
    for _ in range(3):
        assert chat(s, key)[0] == 200
    assert chat(s, key)[0] == 429
    spend = key_info(s, "durable")["spend_usd"]
    assert spend > 0
    s.kill("edge", signal.SIGTERM)
    s.start_edge()
    s.wait_ready(s.nworkers)
    info = key_info(s, "durable")
    assert info["total_requests"] == 3
    assert abs(info["spend_usd"] - spend) < 1e-9
    assert chat(s, key)[0] == 429             # the rate window came back too


def test_secrets_stay_out_of_logs_and_metrics(keyed):
    s = keyed()
    key = create_key(s, name="quiet")
    chat(s, key)
    chat(s, "sk-aigw-wrong")
    _, _, _, metrics = admin(s, "GET", "/metrics")
    for secret in (key, ADMIN):
        assert secret.encode() not in metrics
        for name in s.procs:
            assert secret not in s.logs(name)


def test_sdk_exception_classes(keyed):
    openai = pytest.importorskip("openai")
    s = keyed()
    key = create_key(s, name="sdk", models=["fast-sim"], rpm=1)
    base = f"http://127.0.0.1:{s.http_port}/v1"
    ok = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=30)
    assert ok.chat.completions.create(model="fast-sim", messages=[
        {"role": "user", "content": "hi"}]).choices[0].message.content
    with pytest.raises(openai.RateLimitError):
        ok.chat.completions.create(model="fast-sim", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError):
        ok.chat.completions.create(model="slow-sim", messages=[{"role": "user", "content": "x"}])
    bad = openai.OpenAI(base_url=base, api_key="sk-aigw-nope", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="fast-sim", messages=[{"role": "user", "content": "x"}])


def test_cli(keyed):
    s = keyed()
    url = f"http://127.0.0.1:{s.http_port}"
    env = {**os.environ, "AIGW_ADMIN_KEY": ADMIN}

    def cli(*args):
        return subprocess.run([str(BIN / "aigw-keys"), "--url", url, *args], env=env,
                              capture_output=True, text=True, timeout=30)
    r = cli("create", "cli-key", "--models", "fast-sim", "--rpm", "10")
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)["key"]
    assert chat(s, key)[0] == 200
    r = cli("list")
    assert r.returncode == 0 and "cli-key" in r.stdout and key not in r.stdout
    r = cli("update", "cli-key", "--rpm", "20")
    assert r.returncode == 0 and json.loads(r.stdout)["rpm"] == 20
    r = cli("revoke", "cli-key")
    assert r.returncode == 0
    assert chat(s, key)[0] == 401
    r = cli("show", "no-such-key")
    assert r.returncode == 1
    assert ADMIN not in r.stdout + r.stderr
    r = subprocess.run([str(BIN / "aigw-keys"), "--url", url, "list"],
                       env={k: v for k, v in env.items() if k != "AIGW_ADMIN_KEY"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0


def _edge_refuses(cfg_path, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "aigw-edge"), "--config", str(cfg_path)],
                          capture_output=True, text=True, timeout=30, env=env)


def test_protected_mode_and_secret_file_modes(make_system, tmp_path, monkeypatch):
    s = make_system(models=MODELS, extra_edge="    listen = 0.0.0.0:0\n")
    cfg = s.cfg.read_text().replace("    listen = 127.0.0.1:0\n", "")
    open_cfg = tmp_path / "open.conf"
    open_cfg.write_text(cfg)
    r = _edge_refuses(open_cfg)
    assert r.returncode == 2
    assert "edge/auth" in r.stderr and "insecure" in r.stderr
    # A key database readable by others is refused with the fix in the message
    db = tmp_path / "loose.db"
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    loose = tmp_path / "loose.conf"
    loose.write_text(cfg.replace("edge\n", f"edge\n    auth = on\n    keys_db = {db}\n", 1))
    r = _edge_refuses(loose, env={**os.environ, "AIGW_ADMIN_KEY": ADMIN})
    assert r.returncode != 0
    assert "chmod 600" in (r.stdout + r.stderr)
    # insecure = true is the explicit way to run open beyond loopback
    ok_cfg = tmp_path / "insecure.conf"
    ok_cfg.write_text(cfg.replace("edge\n", "edge\n    insecure = true\n", 1))
    p = subprocess.Popen([str(BIN / "aigw-edge"), "--config", str(ok_cfg)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "listening on" not in line and time.monotonic() < deadline:
            line = p.stdout.readline()
            assert line or p.poll() is None
        assert "listening on" in line
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o644  # never "fixed" behind the user's back
