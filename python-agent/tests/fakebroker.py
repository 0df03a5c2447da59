"""A fake aigw broker for tests: ROUTER sockets on the frontend and backend, speaking the
wire protocol through aigw_agent.wire, with helpers to await and send messages.

FakeBroker(curve=(public, secret), allow=[client public keys]) makes both ROUTERs CURVE
servers, with a ZAP handler (pyzmq's ThreadAuthenticator) admitting only the listed keys,
and monitors on both sockets so a test can await the outcome of each handshake.
make_cert() writes CZMQ-format certificates (NAME.cert, NAME.cert_secret) for the agent.

Like the real broker it has an instance id (random, never 0) and answers every PING at
once with PONG(BrokerStatus{broker_id, instance, workers}) from a background task
(auto_pong=False leaves PINGs to the test, through recv_front). Several fakes may run at
once (each on its own ports); restart() closes both sockets and binds the same ports again
with a new instance (a killed and restarted broker), kill() closes them for good, and
new_instance() changes the instance behind open sockets (a restart behind a proxy).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import threading
from pathlib import Path
from typing import Any, Iterable

import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

from aigw_agent import wire
from aigw_agent._proto import pb
from aigw_agent.wire import CLIENT_HEADER, WORKER_HEADER, C, W


HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
HANDSHAKE_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | HANDSHAKE_FAILED


def make_cert(directory: str | os.PathLike[str], name: str, mode: int = 0o600
              ) -> tuple[bytes, bytes]:
    """Write directory/NAME.cert and NAME.cert_secret (zcert format); returns (public, secret)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pub, sec = zmq.auth.create_certificates(d, name)   # NAME.key, NAME.key_secret
    os.replace(sec, d / f"{name}.cert_secret")
    os.replace(pub, d / f"{name}.cert")
    os.chmod(d / f"{name}.cert_secret", mode)
    public, secret = zmq.auth.load_certificate(d / f"{name}.cert_secret")
    assert secret is not None
    return public, secret


class _AllowList:
    """ZAP credentials provider: admits the listed CURVE public keys, records every key seen."""

    def __init__(self, keys: Iterable[bytes]):
        self.keys = set(keys)
        self.seen: list[tuple[bytes, bool]] = []
        self.lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        z = z85.encode(key) if len(key) == 32 else key   # pyzmq passes Z85; be tolerant
        ok = z in self.keys
        with self.lock:
            self.seen.append((z, ok))
        return ok


def _instance() -> int:
    return random.getrandbits(63) + 1


class FakeBroker:
    def __init__(self, curve: tuple[bytes, bytes] | None = None,
                 allow: Iterable[bytes] = (), *, broker_id: str = "fake",
                 workers: int = 1, auto_pong: bool = True) -> None:
        self.ctx = zmq.asyncio.Context()
        self.curve = curve
        self.auth: ThreadAuthenticator | None = None
        self.allow = _AllowList(allow)
        self.broker_id = broker_id
        self.workers = workers            # BrokerStatus.workers in every PONG
        self.instance = _instance()
        self.auto_pong = auto_pong
        self.pings = 0                    # PINGs answered by the background task
        self.models: list[pb.ModelStatus] = []   # BrokerStatus.models in every PONG
        self._monitors: dict[str, zmq.asyncio.Socket] = {}
        if curve is not None:
            # ZAP must live in the sockets' libzmq context; a sync shadow of it keeps the
            # authenticator's thread sockets off asyncio (works on pyzmq 24 and later)
            self.auth = ThreadAuthenticator(zmq.Context.shadow(self.ctx.underlying))
            self.auth.start()
            self.auth.configure_curve_callback("*", credentials_provider=self.allow)
        self.front = self._router("front", "tcp://127.0.0.1:*")
        self.back = self._router("back", "tcp://127.0.0.1:*")
        self.frontend = self.front.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.backend = self.back.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._front_q: asyncio.Queue[tuple[bytes, wire.Message | None, str]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self.closed = False
        self._start_pump()

    def _router(self, side: str, endpoint: str) -> zmq.asyncio.Socket:
        s = self.ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self.curve is not None:
            s.setsockopt(zmq.CURVE_SERVER, 1)
            s.setsockopt(zmq.CURVE_SECRETKEY, self.curve[1])
            self._monitors[side] = s.get_monitor_socket(HANDSHAKE_EVENTS)
        s.bind(endpoint)
        return s

    def _start_pump(self) -> None:
        """The frontend reader: answers PINGs, queues everything else for recv_front."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pump = loop.create_task(self._pump_front(self.front))

    async def _pump_front(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                frames = await sock.recv_multipart()
            except (zmq.ZMQError, asyncio.CancelledError):
                return
            msg, why = wire.parse(frames[1:], CLIENT_HEADER, to_broker=True)
            if msg is not None and msg.cmd == C.PING and self.auto_pong:
                self.pings += 1
                with contextlib.suppress(zmq.ZMQError):
                    await self.send_front(frames[0], C.PONG, self.status())
                continue
            self._front_q.put_nowait((frames[0], msg, why or repr(frames)))

    def status(self) -> Any:
        """The BrokerStatus this fake answers PING with."""
        st = pb.BrokerStatus(broker_id=self.broker_id, instance=self.instance,
                             workers=self.workers)
        for m in self.models:
            st.models.append(m)
        return st

    def new_instance(self) -> int:
        """A new instance id behind the same sockets (as a broker restarted behind a proxy)."""
        self.instance = _instance()
        return self.instance

    def _close_sockets(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        for side, sock in (("front", self.front), ("back", self.back)):
            if side in self._monitors:
                sock.disable_monitor()
                self._monitors.pop(side).close(0)
            sock.close(0)

    def kill(self) -> None:
        """Close both sockets for good: every peer sees its connection drop."""
        if not self.closed:
            self._close_sockets()
            self.closed = True

    async def restart(self, timeout: float = 5.0) -> int:
        """Close both sockets and bind the same ports again with a new instance (what
        peers see of a broker killed and started again). Messages queued for recv_front
        stay. Returns the new instance."""
        self._close_sockets()
        self.instance = _instance()
        end = asyncio.get_running_loop().time() + timeout
        while True:   # the port is free once libzmq's I/O thread has closed the listener
            try:
                self.front = self._router("front", self.frontend)
                break
            except zmq.ZMQError:
                if asyncio.get_running_loop().time() > end:
                    raise
                await asyncio.sleep(0.01)
        while True:
            try:
                self.back = self._router("back", self.backend)
                break
            except zmq.ZMQError:
                if asyncio.get_running_loop().time() > end:
                    raise
                await asyncio.sleep(0.01)
        self._start_pump()
        return self.instance

    async def beat(self, ident: bytes, instance: int | None = None) -> None:
        """A broker HEARTBEAT (BrokerBeat with this fake's instance) to a worker."""
        await self.send_back(ident, W.HEARTBEAT,
                             pb.BrokerBeat(instance=self.instance if instance is None
                                           else instance))

    async def handshake(self, side: str = "front", timeout: float = 5.0) -> int:
        """The next handshake outcome on `side` (front/back): EVENT_HANDSHAKE_SUCCEEDED or
        one of HANDSHAKE_FAILED (CURVE brokers only)."""
        mon = self._monitors[side]
        while True:
            event = parse_monitor_message(await asyncio.wait_for(mon.recv_multipart(), timeout))
            if event["event"] & HANDSHAKE_EVENTS:
                return int(event["event"])

    def __enter__(self) -> "FakeBroker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self._close_sockets()
            self.closed = True
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()

    async def _recv(self, sock: zmq.asyncio.Socket, header: bytes,
                    timeout: float) -> tuple[bytes, wire.Message]:
        frames = await asyncio.wait_for(sock.recv_multipart(), timeout)
        msg, why = wire.parse(frames[1:], header, to_broker=True)
        assert msg is not None, f"agent sent a malformed message: {why} {frames!r}"
        return frames[0], msg

    async def recv_front(self, timeout: float = 5.0) -> tuple[bytes, wire.Message]:
        if self._pump is None and not self.closed:
            self._start_pump()
        ident, msg, why = await asyncio.wait_for(self._front_q.get(), timeout)
        assert msg is not None, f"agent sent a malformed message: {why}"
        return ident, msg

    async def recv_back(self, timeout: float = 5.0, skip_heartbeats: bool = True
                        ) -> tuple[bytes, wire.Message]:
        while True:
            ident, msg = await self._recv(self.back, WORKER_HEADER, timeout)
            if not (skip_heartbeats and msg.cmd == W.HEARTBEAT):
                return ident, msg

    async def expect_front(self, cmd: int, timeout: float = 5.0) -> tuple[bytes, wire.Message]:
        ident, msg = await self.recv_front(timeout)
        assert msg.cmd == cmd, f"expected {wire.cmd_name(CLIENT_HEADER, cmd)}, got {msg.name}"
        return ident, msg

    async def expect_back(self, cmd: int, timeout: float = 5.0) -> tuple[bytes, wire.Message]:
        ident, msg = await self.recv_back(timeout)
        assert msg.cmd == cmd, f"expected {wire.cmd_name(WORKER_HEADER, cmd)}, got {msg.name}"
        return ident, msg

    async def send_front(self, ident: bytes, cmd: int, body: Any = None,
                         payload: bytes | None = None) -> None:
        await self.front.send_multipart([ident] + wire.encode(CLIENT_HEADER, cmd, body, payload))

    async def send_back(self, ident: bytes, cmd: int, body: Any = None,
                        payload: bytes | None = None) -> None:
        await self.back.send_multipart([ident] + wire.encode(WORKER_HEADER, cmd, body, payload))

    async def result(self, ident: bytes, job_id: int, content: str, model: str = "m",
                     attempts: list[Any] | None = None) -> None:
        resp = {"id": f"x{job_id}", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5}}
        body = pb.Result(job_id=job_id, model=model, response_json=json.dumps(resp).encode(),
                         latency_us=12345)
        body.usage.prompt_tokens = 3
        body.usage.completion_tokens = 5
        for a in attempts or []:
            body.attempts.append(a)
        await self.send_front(ident, C.RESULT, body)

    async def task(self, ident: bytes, job_id: int, attempt_id: int, target: str,
                   request: dict[str, Any], stream: bool = False,
                   deadline_ms: int | None = None) -> None:
        body = pb.Task(job_id=job_id, attempt_id=attempt_id, target=target, stream=stream)
        if deadline_ms is not None:
            body.deadline_ms = deadline_ms
        await self.send_back(ident, W.TASK, body, json.dumps(request).encode())


def chunk_body(job_id: int, text: str, seq: int, model: str = "m") -> Any:
    data = {"object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return pb.Chunk(job_id=job_id, seq=seq, model=model, delta_json=json.dumps(data).encode())
