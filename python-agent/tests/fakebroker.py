"""A fake aigw broker for tests: ROUTER sockets on the frontend and backend, speaking the
wire protocol through aigw_agent.wire, with helpers to await and send messages."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import zmq
import zmq.asyncio

from aigw_agent import wire
from aigw_agent._proto import pb
from aigw_agent.wire import CLIENT_HEADER, WORKER_HEADER, C, W


class FakeBroker:
    def __init__(self) -> None:
        self.ctx = zmq.asyncio.Context()
        self.front = self._router()
        self.back = self._router()
        self.frontend = self.front.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.backend = self.back.getsockopt(zmq.LAST_ENDPOINT).decode()

    def _router(self) -> zmq.asyncio.Socket:
        s = self.ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.bind("tcp://127.0.0.1:*")
        return s

    def __enter__(self) -> "FakeBroker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.front.close(0)
        self.back.close(0)
        self.ctx.term()

    async def _recv(self, sock: zmq.asyncio.Socket, header: bytes,
                    timeout: float) -> tuple[bytes, wire.Message]:
        frames = await asyncio.wait_for(sock.recv_multipart(), timeout)
        msg, why = wire.parse(frames[1:], header, to_broker=True)
        assert msg is not None, f"agent sent a malformed message: {why} {frames!r}"
        return frames[0], msg

    async def recv_front(self, timeout: float = 5.0) -> tuple[bytes, wire.Message]:
        return await self._recv(self.front, CLIENT_HEADER, timeout)

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
