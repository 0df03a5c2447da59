"""The official OpenAI SDKs (Python `openai`, Node `openai`) against the real edge.

Every OpenAI SDK must work unchanged against aigw: these tests drive the SDKs the way
an application would (typed objects, the SDK's own error classes, its SSE reader, its
connection pool) over a system of sim models, so a change in the edge's framing,
headers, status codes or error bodies that an SDK would trip on fails here.

The Node checks live in sdk_node/check.mjs (its own package.json and lock, installed
with `npm ci` into sdk_node/node_modules when missing or older than the lock). The test
is skipped only when node or npm is absent.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import openai
import pytest

SDK_NODE = Path(__file__).resolve().parent / "sdk_node"

MODELS = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n        text = \"fast answer\"\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 400\n        text = \"slow answer\"\n"
    "    drip-sim\n        provider = sim\n        latency_ms = 5\n"
    "        text = \"one two three four\"\n        tokens_per_s = 200\n"
    "    broken-sim\n        provider = sim\n        latency_ms = 5\n        fail_rate = 1\n"
)
GROUPS = "    quick\n        policy = race\n        targets = \"slow-sim, fast-sim\"\n"
ALL_IDS = {"fast-sim", "slow-sim", "drip-sim", "broken-sim", "quick"}
USER = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def system(make_system):
    # 2 workers x 64 = 128 slots per model: the 50 concurrent requests never queue.
    return make_system(models=MODELS, groups=GROUPS, capacity=64).start()


def base_url(system) -> str:
    return f"http://127.0.0.1:{system.http_port}/v1"


@pytest.fixture
def client(system):
    c = openai.OpenAI(base_url=base_url(system), api_key="x", max_retries=0, timeout=30)
    yield c
    c.close()


def outcomes(aigw: dict) -> dict:
    return {a["model"]: a["outcome"] for a in aigw["attempts"]}


# ---------------------------------------------------------------- Python SDK

def test_python_create_race(client):
    r = client.chat.completions.create(model="fast-sim,slow-sim", messages=USER)
    assert isinstance(r, openai.types.chat.ChatCompletion)
    assert r.object == "chat.completion"
    assert r.model == "fast-sim"
    assert len(r.choices) == 1
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "fast answer"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    aigw = (r.model_extra or {}).get("aigw")
    assert aigw is not None, "the aigw object is missing from the parsed answer"
    assert aigw["winner"] == "fast-sim" and aigw["policy"] == "race"
    assert outcomes(aigw) == {"fast-sim": "won", "slow-sim": "cancelled"}


def test_python_raw_response_header(client):
    raw = client.chat.completions.with_raw_response.create(model="fast-sim,slow-sim",
                                                           messages=USER)
    assert raw.status_code == 200
    assert raw.headers["x-aigw-winner"] == "fast-sim"
    assert raw.headers["content-type"].startswith("application/json")
    r = raw.parse()
    assert r.model == "fast-sim" and r.choices[0].message.content == "fast answer"
    assert r.model_extra["aigw"]["winner"] == "fast-sim"


def test_python_group(client):
    raw = client.chat.completions.with_raw_response.create(model="quick", messages=USER)
    assert raw.headers["x-aigw-winner"] == "fast-sim"
    r = raw.parse()
    assert r.model == "fast-sim" and r.choices[0].message.content == "fast answer"
    assert outcomes(r.model_extra["aigw"]) == {"fast-sim": "won", "slow-sim": "cancelled"}


def test_python_stream(client):
    raw = client.chat.completions.with_raw_response.create(
        model="slow-sim,drip-sim", messages=USER, stream=True,
        stream_options={"include_usage": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    stream = raw.parse()
    chunks = list(stream)                  # ends at [DONE]; a failure would raise
    assert stream.response.is_closed, "the SDK did not see the stream end"
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    content = [c for c in chunks if c.choices]
    assert len(content) > 1, "the answer came as one chunk: nothing was streamed"
    assert "".join(c.choices[0].delta.content or "" for c in content) == "one two three four"
    first = chunks[0]
    assert first.object == "chat.completion.chunk" and first.model == "drip-sim"
    assert first.choices[0].delta.role == "assistant"
    assert first.model_extra["aigw"] == {"winner": "drip-sim"}
    summary = [c for c in chunks if not c.choices and "attempts" in (c.model_extra or {}).get("aigw", {})]
    assert len(summary) == 1
    assert outcomes(summary[0].model_extra["aigw"]) == {"drip-sim": "won", "slow-sim": "cancelled"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_python_models_list(client):
    models = list(client.models.list())
    ids = {m.id for m in models}
    assert ALL_IDS <= ids
    assert all(m.object == "model" for m in models)
    kinds = {m.id: (m.model_extra or {}).get("aigw", {}).get("kind") for m in models}
    assert kinds["quick"] == "group" and kinds["fast-sim"] == "model"


def test_python_models_retrieve(client):
    m = client.models.retrieve("fast-sim")
    assert m.id == "fast-sim" and m.object == "model" and m.owned_by == "aigw"
    g = client.models.retrieve("quick")
    assert g.id == "quick" and g.object == "model"
    assert g.model_extra["aigw"]["kind"] == "group"
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("nope")
    assert exc.value.status_code == 404 and exc.value.code == "model_not_found"


def test_python_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="nope", messages=USER)
    assert exc.value.status_code == 404
    assert exc.value.code == "model_not_found" and exc.value.type == "invalid_request_error"
    assert "nope" in exc.value.message


def test_python_bad_request(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="fast-sim", messages=USER,
                                       extra_body={"messages": "not a list"})
    assert exc.value.status_code == 400 and exc.value.type == "invalid_request_error"
    assert "messages" in exc.value.message
    # A misspelt key in the aigw object is refused, not ignored
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="fast-sim", messages=USER,
                                       extra_body={"aigw": {"polcy": "hedge"}})
    assert exc.value.status_code == 400 and "polcy" in exc.value.message


def test_python_upstream_failure(client):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="broken-sim", messages=USER)
    err = exc.value
    assert isinstance(err, openai.InternalServerError)
    assert err.status_code == 502 and err.code == "upstream_error"
    assert "sim: injected failure" in err.message
    # The SDK keeps only the "error" object as .body; the attempts are in the full answer
    aigw = err.response.json()["aigw"]
    assert aigw["winner"] is None and outcomes(aigw) == {"broken-sim": "failed"}


def test_python_stream_failure(client):
    stream = client.chat.completions.create(model="broken-sim", messages=USER, stream=True)
    got = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            got.append(chunk)
    assert got == []
    assert "sim: injected failure" in str(exc.value)


def test_python_async_concurrent(system):
    n = 50

    async def run():
        async with openai.AsyncOpenAI(base_url=base_url(system), api_key="x", max_retries=0,
                                      timeout=30) as client:
            async def one(i):
                raw = await client.chat.completions.with_raw_response.create(
                    model="fast-sim", messages=[{"role": "user", "content": f"request {i}"}])
                return raw.headers.get("x-aigw-winner"), raw.parse()
            return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)

    results = asyncio.run(run())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} of {n} failed, first: {errors[0]!r}"
    assert len(results) == n
    for header, r in results:
        assert header == "fast-sim"
        assert r.model == "fast-sim" and r.choices[0].message.content == "fast answer"
        assert r.model_extra["aigw"]["winner"] == "fast-sim"


def test_python_async_stream(system):
    async def run():
        async with openai.AsyncOpenAI(base_url=base_url(system), api_key="x", max_retries=0,
                                      timeout=30) as client:
            stream = await client.chat.completions.create(model="drip-sim", messages=USER,
                                                          stream=True)
            return [c async for c in stream]

    chunks = asyncio.run(run())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) \
        == "one two three four"


# ---------------------------------------------------------------- Node SDK

NODE_CHECKS = {"create", "group", "stream", "models_list", "models_retrieve",
               "models_retrieve_unknown", "chat_unknown_model", "bad_request",
               "upstream_failure", "stream_failure", "concurrent"}


@pytest.fixture(scope="module")
def node_sdk():
    """node + the sdk_node packages installed (npm ci when missing or the lock is newer)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the Node SDK test "
                    f"(node: {node or 'absent'}, npm: {npm or 'absent'})")
    stamp = SDK_NODE / "node_modules" / ".package-lock.json"
    lock = SDK_NODE / "package-lock.json"
    if not stamp.exists() or lock.stat().st_mtime > stamp.stat().st_mtime:
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=SDK_NODE, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"npm ci in {SDK_NODE} failed:\n{p.stdout}\n{p.stderr}"
    return node


def test_node_sdk(system, node_sdk):
    p = subprocess.run([node_sdk, str(SDK_NODE / "check.mjs"), base_url(system)],
                       cwd=SDK_NODE, capture_output=True, text=True, timeout=90)
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pytest.fail(f"check.mjs printed no JSON summary (exit {p.returncode}):\n"
                    f"stdout: {p.stdout}\nstderr: {p.stderr}")
    checks = out["checks"]
    assert set(checks) == NODE_CHECKS
    failed = {name: c for name, c in checks.items() if not c["ok"]}
    assert not failed, (f"Node SDK {out['sdk']} checks failed:\n"
                        + json.dumps(failed, indent=1) + f"\nstderr: {p.stderr}")
    assert out["ok"] is True and p.returncode == 0, p.stderr
    # What the SDK saw, asserted here too so the summary itself is checked
    assert checks["create"]["winner"] == checks["create"]["header"] == "fast-sim"
    assert checks["create"]["outcomes"] == {"fast-sim": "won", "slow-sim": "cancelled"}
    assert checks["group"]["winner"] == "fast-sim"
    assert checks["stream"]["text"] == "one two three four"
    assert checks["stream"]["first_aigw"] == {"winner": "drip-sim"}
    assert ALL_IDS <= set(checks["models_list"]["ids"])
    assert checks["models_retrieve"]["group"]["kind"] == "group"
    for name in ("models_retrieve_unknown", "chat_unknown_model"):
        assert checks[name]["class"] == "NotFoundError" and checks[name]["status"] == 404
    assert checks["bad_request"]["class"] == "BadRequestError"
    assert checks["upstream_failure"]["status"] == 502
    assert checks["stream_failure"]["class"] == "APIError"
    assert checks["concurrent"]["succeeded"] == 50
