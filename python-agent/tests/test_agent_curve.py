"""CURVE: config keys, certificate loading and checks, and the client and worker against a
CURVE fake broker (ZAP allow-list via pyzmq's ThreadAuthenticator)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import zmq
from fakebroker import HANDSHAKE_FAILED, FakeBroker, make_cert

from aigw_agent import (Agent, AgentConfig, Client, ConfigError, CurveKeys, Unavailable,
                        WorkerBase, cli, load_config, load_curve, load_keys)
from aigw_agent.wire import W

pytestmark = [pytest.mark.timeout(30),
              pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")]


class Certs:
    """A cert_dir with broker, agent (authorized) and rogue (not) certificates."""

    def __init__(self, root: Path):
        self.dir = root / "certs"
        self.broker = make_cert(self.dir, "broker")
        self.agent = make_cert(self.dir, "agent")
        self.rogue = make_cert(self.dir, "rogue")

    def broker_fake(self) -> FakeBroker:
        return FakeBroker(curve=self.broker, allow=[self.agent[0]], broker_id="fake-curve")

    def keys(self, name: str = "agent") -> CurveKeys:
        return load_keys(self.dir, name, "broker")


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


def main_conf(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "aigw.conf"
    p.write_text(body)
    return p


async def ping_pong(fb: FakeBroker, client: Client) -> dict[str, Any]:
    """status() through the fake, which answers PING itself."""
    return await client.status(timeout=5.0)


@contextlib.asynccontextmanager
async def running(worker: WorkerBase) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        await worker.stop()
        assert task.done()


def worker_for(fb: FakeBroker, keys: CurveKeys | None) -> WorkerBase:
    async def never(request: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise AssertionError("no task expected")
    return WorkerBase(fb.backend, {"svc": never}, worker_id="w-curve", heartbeat_ms=50,
                      liveness=3, backoff_initial=0.05, backoff_max=0.2, curve=keys)


# ---- config keys

def test_config_keys_and_cert_dir_relative_to_the_config(tmp_path: Path) -> None:
    main = main_conf(tmp_path, "fabric\n    curve = on\n    cert_dir = certs\n"
                               "broker\n    cert = broker-1\nagent\n    cert = agent-main\n")
    cfg = load_config(main)
    assert cfg.curve is True and cfg.cert_dir == str(tmp_path / "certs")
    assert cfg.broker_cert == "broker-1" and cfg.agent_cert == "agent-main"
    agent = tmp_path / "agent.conf"
    agent.write_text("agent\n    cert = agent-7\n")
    assert load_config(main, agent).agent_cert == "agent-7"     # agent file wins
    abs_dir = tmp_path / "elsewhere"
    main2 = main_conf(tmp_path, f"fabric\n    curve = on\n    cert_dir = {abs_dir}\n")
    assert load_config(main2).cert_dir == str(abs_dir)


def test_config_defaults_are_curve_off(tmp_path: Path) -> None:
    cfg = load_config(main_conf(tmp_path, "broker\n    frontend = tcp://127.0.0.1:1\n"))
    assert (cfg.curve, cfg.cert_dir, cfg.broker_cert, cfg.agent_cert) == (False, None,
                                                                          "broker", "agent")
    assert load_curve(cfg) is None
    off = load_config(main_conf(tmp_path, "fabric\n    curve = off\n    cert_dir = nowhere\n"))
    assert off.curve is False and load_curve(off) is None       # off: certificates not read
    for word, value in (("true", True), ("yes", True), ("1", True), ("false", False),
                        ("no", False), ("0", False)):                # the C loader's booleans
        p = main_conf(tmp_path, f"fabric\n    curve = {word}\n    cert_dir = c\n")
        assert load_config(p).curve is value


@pytest.mark.parametrize("text,why", [
    ("fabric\n    curve = maybe\n", "fabric/curve: expected on or off, got 'maybe'"),
    ("fabric\n    curve = on\n", "fabric/cert_dir: required when fabric/curve = on"),
    ("fabric\n    cert_dir =\n", "fabric/cert_dir: must not be empty"),
    ("broker\n    cert = ../x\n", "broker/cert: expected a certificate name"),
    ("agent\n    cert =\n", "agent/cert: expected a certificate name"),
    (f"agent\n    cert = {'a' * 64}\n", "agent/cert: expected a certificate name"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, why: str) -> None:
    p = main_conf(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert why in str(e.value) and str(p) in str(e.value)


def test_agent_file_cert_errors(tmp_path: Path) -> None:
    p = tmp_path / "agent.conf"
    p.write_text("agent\n    cert = a/b\n")
    with pytest.raises(ConfigError, match="agent/cert: expected a certificate name"):
        load_config(None, p)


# ---- certificate files

def test_load_keys_reads_zcert_files_and_hides_the_secret(certs: Certs) -> None:
    keys = certs.keys()
    assert keys.public == certs.agent[0] and keys.server == certs.broker[0]
    secret = certs.agent[1].decode()
    for text in (repr(keys), str(keys), f"{keys}", repr(vars(keys)) if hasattr(keys, "__dict__")
                 else ""):
        assert secret not in text
    assert "hidden" in repr(keys) and certs.agent[0].decode() in repr(keys)


def test_czmq_written_certificate(tmp_path: Path) -> None:
    """The exact layout CZMQ's zcert_save writes (metadata entries, comments)."""
    public, secret = zmq.curve_keypair()
    bpub, _ = zmq.curve_keypair()
    d = tmp_path / "c"
    d.mkdir()
    head = ("#   ****  Generated on 2025-01-01 00:00:00 by CZMQ  ****\n"
            "#   ZeroMQ CURVE **Secret** Certificate\n"
            "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
            "metadata\n    name = \"agent\"\n    created-by = \"aigw-certs\"\ncurve\n")
    (d / "agent.cert_secret").write_text(
        head + f'    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n')
    os.chmod(d / "agent.cert_secret", 0o600)
    (d / "broker.cert").write_text(head.replace("**Secret**", "Public")
                                   + f'    public-key = "{bpub.decode()}"\n')
    keys = load_keys(d)
    assert keys.public == public and keys.server == bpub


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_secret_readable_by_others_is_refused(certs: Certs, mode: int) -> None:
    path = certs.dir / "agent.cert_secret"
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as e:
        certs.keys()
    msg = str(e.value)
    assert str(path) in msg and f"chmod 600 {path}" in msg and f"{mode:04o}" in msg
    assert certs.agent[1].decode() not in msg and e.value.__cause__ is None


def test_missing_certificates_say_how_to_create_them(certs: Certs) -> None:
    with pytest.raises(ConfigError) as e:
        load_keys(certs.dir, "nobody", "broker")
    msg = str(e.value)
    assert str(certs.dir / "nobody.cert_secret") in msg
    assert "aigw-certs init DIR" in msg and "aigw-certs add nobody" in msg
    with pytest.raises(ConfigError) as e:
        load_keys(certs.dir, "agent", "broker-2")
    msg = str(e.value)
    assert str(certs.dir / "broker-2.cert") in msg and "broker/cert" in msg
    assert "aigw-certs" in msg and certs.agent[1].decode() not in msg


def test_public_or_broken_file_as_secret(certs: Certs) -> None:
    shutil.copy(certs.dir / "rogue.cert", certs.dir / "pub.cert_secret")
    os.chmod(certs.dir / "pub.cert_secret", 0o600)
    with pytest.raises(ConfigError, match="no curve/secret-key"):
        load_keys(certs.dir, "pub")
    bad = certs.dir / "junk.cert_secret"
    bad.write_text("curve\n    nothing = here\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigError, match="not a usable certificate"):
        load_keys(certs.dir, "junk")
    # a secret file whose public key belongs to another keypair
    text = (certs.dir / "agent.cert_secret").read_text()
    mixed = certs.dir / "mixed.cert_secret"
    mixed.write_text(text.replace(certs.agent[0].decode(), certs.rogue[0].decode()))
    os.chmod(mixed, 0o600)
    with pytest.raises(ConfigError) as e:
        load_keys(certs.dir, "mixed")
    assert "does not belong" in str(e.value) and certs.agent[1].decode() not in str(e.value)


def test_agent_start_up_fails_before_connecting(certs: Certs, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(certs.dir / "agent.cert_secret", 0o644)
    main = main_conf(tmp_path, "fabric\n    curve = on\n    cert_dir = certs\n")
    with pytest.raises(ConfigError, match="chmod 600"):
        Agent(load_config(main))
    empty_agent = tmp_path / "agent.conf"
    empty_agent.write_text("")
    assert cli.agent_main(["--config", str(main), "--agent-config", str(empty_agent)]) == 2
    assert cli.ask_main(["q", "--race", "a", "--config", str(main)]) == 2
    err = capsys.readouterr().err
    assert err.count("chmod 600") == 2 and certs.agent[1].decode() not in err


# ---- client and worker against a CURVE broker

async def test_client_with_authorized_cert_gets_pong(certs: Certs,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with certs.broker_fake() as fb:
        async with Client(fb.frontend, curve=certs.keys()) as client:
            status = await ping_pong(fb, client)
            assert await fb.handshake("front") == zmq.EVENT_HANDSHAKE_SUCCEEDED
        assert status["broker_id"] == "fake-curve" and status["workers"] == 1
        assert (certs.agent[0], True) in fb.allow.seen
    assert certs.agent[1].decode() not in caplog.text


async def test_client_with_unauthorized_cert_gets_nothing_through(certs: Certs) -> None:
    with certs.broker_fake() as fb:
        async with Client(fb.frontend, curve=certs.keys("rogue")) as client:
            status = asyncio.create_task(client.status(timeout=1.0))
            assert await fb.handshake("front") == zmq.EVENT_HANDSHAKE_FAILED_AUTH
            assert await fb.front.poll(300) == 0                 # the PING never arrived
            with pytest.raises(Unavailable, match="did not answer PING"):
                await status
        assert (certs.rogue[0], False) in fb.allow.seen
        assert all(not ok for _, ok in fb.allow.seen)


async def test_plain_client_cannot_reach_a_curve_broker(certs: Certs) -> None:
    with certs.broker_fake() as fb:
        async with Client(fb.frontend) as client:
            status = asyncio.create_task(client.status(timeout=1.0))
            assert await fb.handshake("front") & HANDSHAKE_FAILED
            assert await fb.front.poll(300) == 0
            with pytest.raises(Unavailable):
                await status
        assert fb.allow.seen == []


async def test_client_with_wrong_broker_key_gets_nothing_through(certs: Certs) -> None:
    other_broker = make_cert(certs.dir, "other-broker")
    with FakeBroker(curve=other_broker, allow=[certs.agent[0]]) as fb:
        async with Client(fb.frontend, curve=certs.keys()) as client:   # trusts "broker"
            status = asyncio.create_task(client.status(timeout=1.0))
            assert await fb.handshake("front") & HANDSHAKE_FAILED
            assert await fb.front.poll(300) == 0
            with pytest.raises(Unavailable):
                await status


async def test_worker_with_authorized_cert_sends_ready(certs: Certs) -> None:
    with certs.broker_fake() as fb:
        worker = worker_for(fb, certs.keys())
        async with running(worker):
            ident, ready = await fb.expect_back(W.READY)
            assert ready.body.worker_id == "w-curve" and list(ready.body.models) == ["svc"]
            assert await fb.handshake("back") == zmq.EVENT_HANDSHAKE_SUCCEEDED


async def test_worker_with_unauthorized_cert_gets_nothing_through(certs: Certs) -> None:
    with certs.broker_fake() as fb:
        worker = worker_for(fb, certs.keys("rogue"))
        async with running(worker):
            assert await fb.handshake("back") == zmq.EVENT_HANDSHAKE_FAILED_AUTH
            assert await fb.back.poll(300) == 0                  # no READY, no HEARTBEAT
            assert await fb.handshake("back") == zmq.EVENT_HANDSHAKE_FAILED_AUTH  # retried
            assert await fb.back.poll(0) == 0
        assert {k for k, _ in fb.allow.seen} == {certs.rogue[0]}


async def test_agent_from_config_uses_curve_on_both_links(certs: Certs, tmp_path: Path) -> None:
    with certs.broker_fake() as fb:
        main = main_conf(tmp_path, "fabric\n    curve = on\n    cert_dir = certs\n"
                                   f"broker\n    frontend = {fb.frontend}\n"
                                   f"    backend = {fb.backend}\n    heartbeat_ms = 100\n")
        agent = Agent(load_config(main))
        assert agent.client.curve is agent.worker.curve is not None
        task = asyncio.create_task(agent.run())
        try:
            _, ready = await fb.expect_back(W.READY)
            assert "agent/deliberate" in ready.body.models
            assert await ping_pong(fb, agent.client) is not None
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_ask_status_over_curve(certs: Certs, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with certs.broker_fake() as fb:
        main = main_conf(tmp_path, "fabric\n    curve = on\n    cert_dir = certs\n"
                                   f"broker\n    frontend = {fb.frontend}\n")
        run = asyncio.create_task(asyncio.to_thread(cli.ask_main,
                                                    ["--status", "--config", str(main)]))
        assert await run == 0
    assert '"broker_id": "fake-curve"' in capsys.readouterr().out


async def test_curve_off_sockets_are_plain() -> None:
    with FakeBroker(broker_id="fake-curve") as fb:
        cfg = AgentConfig(frontend=fb.frontend, backend=fb.backend)
        assert load_curve(cfg) is None
        async with Client(fb.frontend, curve=load_curve(cfg)) as client:
            sock = client._links[0].sock
            assert sock is not None
            assert sock.getsockopt(zmq.MECHANISM) == zmq.NULL
            status = await ping_pong(fb, client)
        assert status["broker_id"] == "fake-curve"
