"""Errors that mean what the providers said (docs/errors.md), through the real edge,
broker and workers against the scripted fake upstream, checked with the OpenAI Python
SDK's own exception classes: each row of the mapping table, the order for attempts that
failed differently, Retry-After, the attempts' own statuses, and streams."""
from __future__ import annotations

import json
import subprocess

import openai
import pytest
from test_sdks import SDK_NODE, node_sdk  # noqa: F401 (the fixture: node + npm ci)

USER = [{"role": "user", "content": "Hello"}]
NAMES = ["long", "nf", "big", "unproc", "auth", "forbid", "limited", "limited2", "boom",
         "fine"]


def models(upstream):
    return "".join(
        f"    {n}\n        provider = openai\n        base_url = {upstream.url}\n"
        f"        upstream_model = {n}\n" for n in NAMES) + (
        f"    renamed\n        provider = openai\n        base_url = {upstream.url}\n"
        f"        upstream_model = fine\n")


@pytest.fixture
def sys_(make_system, upstream):
    upstream.script({
        "long": {"status": 400, "error_message": "maximum context length is 8192 tokens",
                 "error_code": "context_length_exceeded"},
        "nf": {"status": 404, "error_message": "no such model upstream"},
        "big": {"status": 413, "error_message": "request too large"},
        "unproc": {"status": 422, "error_message": "unprocessable"},
        "auth": {"status": 401, "error_message": "Incorrect API key provided"},
        "forbid": {"status": 403, "error_message": "not allowed for this org"},
        "limited": {"status": 429, "error_message": "slow down", "retry_after": "7"},
        "limited2": {"status": 429, "error_message": "slow down more", "retry_after": "3"},
        "boom": {"status": 500, "error_message": "model exploded"},
        "fine": {"text": "all good"},
    })
    s = make_system(models=models(upstream)).start()
    s.upstream = upstream
    return s


@pytest.fixture
def client(sys_):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{sys_.http_port}/v1", api_key="x",
                         max_retries=0, timeout=30)


def _attempts(err) -> dict:
    return {a["model"]: a for a in err.response.json()["aigw"]["attempts"]}


def test_client_errors_become_400_with_the_providers_code(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="long", messages=USER)
    e = exc.value
    assert e.status_code == 400 and e.type == "invalid_request_error"
    assert e.code == "context_length_exceeded"
    assert "maximum context length" in e.message
    att = _attempts(e)["long"]
    assert att["upstream_status"] == 400 and att["upstream_code"] == "context_length_exceeded"
    for model, status in (("nf", 404), ("big", 413), ("unproc", 422)):
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(model=model, messages=USER)
        assert exc.value.status_code == 400
        assert _attempts(exc.value)[model]["upstream_status"] == status


def test_provider_key_refused_is_the_gateways_fault(client):
    for model, status in (("auth", 401), ("forbid", 403)):
        with pytest.raises(openai.InternalServerError) as exc:
            client.chat.completions.create(model=model, messages=USER)
        e = exc.value
        assert e.status_code == 502 and e.code == "upstream_auth_failed"
        assert _attempts(e)[model]["upstream_status"] == status


def test_rate_limit_is_429_with_the_smallest_retry_after(client):
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="limited", messages=USER)
    assert exc.value.response.headers["retry-after"] == "7"
    assert exc.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="limited,limited2", messages=USER)
    assert exc.value.response.headers["retry-after"] == "3"
    att = _attempts(exc.value)
    assert att["limited"]["retry_after_ms"] == 7000 and att["limited2"]["retry_after_ms"] == 3000


def test_server_errors_stay_502(client):
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="boom", messages=USER)
    assert exc.value.status_code == 502 and exc.value.code == "upstream_error"
    assert _attempts(exc.value)["boom"]["upstream_status"] == 500


@pytest.mark.parametrize("targets,status,code", [
    ("long,boom", 502, "upstream_error"),          # not every provider refused the request
    ("long,limited", 429, "rate_limit_exceeded"),  # a later retry can succeed
    ("auth,boom", 502, "upstream_auth_failed"),
    ("long,nf", 400, None),                        # every provider refused it
])
def test_attempts_that_failed_differently(client, targets, status, code):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model=targets, messages=USER)
    assert exc.value.status_code == status
    if code:
        assert exc.value.code == code
    att = _attempts(exc.value)
    assert set(att) == set(targets.split(","))
    assert all(a["outcome"] == "failed" and a["upstream_status"] for a in att.values())


def test_a_working_target_still_wins(client):
    r = client.chat.completions.create(model="boom,fine", messages=USER)
    assert r.choices[0].message.content == "all good"


def test_answers_name_the_configured_model(client):
    # The provider answers as "fine"; the client called (and can call again) "renamed"
    r = client.chat.completions.create(model="renamed", messages=USER)
    assert r.model == "renamed"
    assert r.model_extra["aigw"]["upstream_model"] == "fine"
    chunks = list(client.chat.completions.create(model="renamed", messages=USER, stream=True))
    assert {c.model for c in chunks} == {"renamed"}


def test_stream_errors_carry_the_same_code(sys_):
    c = sys_.client()
    c.conn.request("POST", "/v1/chat/completions",
                   body=json.dumps({"model": "long", "stream": True, "messages": USER}),
                   headers={"Content-Type": "application/json"})
    r = c.conn.getresponse()
    text = r.read().decode()
    c.close()
    assert "event: error" in text and "[DONE]" not in text
    data = json.loads(text.split("event: error\ndata: ", 1)[1].split("\n", 1)[0])
    assert data["error"]["code"] == "context_length_exceeded"
    assert data["error"]["type"] == "invalid_request_error"


def test_node_sdk_classes(sys_, node_sdk):
    node = node_sdk
    want = {"long": ("BadRequestError", 400, "context_length_exceeded"),
            "auth": ("InternalServerError", 502, "upstream_auth_failed"),
            "limited": ("RateLimitError", 429, "rate_limit_exceeded"),
            "boom": ("InternalServerError", 502, "upstream_error")}
    p = subprocess.run([node, str(SDK_NODE / "errors.mjs"),
                        f"http://127.0.0.1:{sys_.http_port}/v1", *want],
                       cwd=SDK_NODE, capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])["errors"]
    for model, (cls, status, code) in want.items():
        assert (got[model]["class"], got[model]["status"], got[model]["code"]) == (cls, status, code), got
    assert got["limited"]["retry_after"] == "7"
