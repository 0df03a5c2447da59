"""Worker side of the aigw protocol: serve named services (e.g. agent/deliberate) to the broker.

WorkerBase connects a DEALER to the broker backend, sends READY, heartbeats, runs each TASK
as an asyncio task (bounded by capacity), answers RESULT/ERROR/CHUNK, honours CANCEL, and
reconnects with back-off when the broker goes silent or sends DISCONNECT. A broker HEARTBEAT
carries BrokerBeat.instance: when it changes on a connection the broker restarted, so the
worker drops the attempts it ran for the old one and sends READY again at once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import zmq
import zmq.asyncio

from . import __version__, wire
from . import curve as _curve
from ._proto import pb
from .errors import AigwError
from .wire import WORKER_HEADER, W

log = logging.getLogger("aigw_agent.worker")

Handler = Callable[[dict[str, Any], "TaskContext"], Awaitable[dict[str, Any]]]


@dataclass
class WorkerStats:
    tasks: int = 0            # TASKs accepted
    completed: int = 0        # answered with RESULT
    failed: int = 0           # answered with ERROR (not counting cancels)
    cancelled: int = 0        # cancelled by the broker and acknowledged
    rejected: int = 0         # refused: over capacity, unknown service or bad payload
    malformed: int = 0        # broker messages dropped as malformed
    connects: int = 0         # sockets opened (1 + reconnects)
    orphaned: int = 0         # attempts dropped (no reply) because the broker was lost
    restarts: int = 0         # broker restarts seen in a HEARTBEAT (a new BrokerBeat.instance)


class TaskContext:
    """What a handler knows about its attempt, and how it streams chunks back."""

    def __init__(self, worker: "WorkerBase", task: pb.Task, generation: int, now: float):
        self._worker = worker
        self._generation = generation
        self.job_id: int = task.job_id
        self.attempt_id: int = task.attempt_id
        self.target: str = task.target
        self.stream: bool = task.stream
        self.deadline_at: float | None = (now + task.deadline_ms / 1000.0
                                          if task.HasField("deadline_ms") else None)
        self.cancel_requested = False
        self.chunks_sent = 0
        self.created = int(time.time())

    @property
    def completion_id(self) -> str:
        return f"aigw-{self.job_id}-{self.attempt_id}"

    def remaining_ms(self) -> int | None:
        """Milliseconds left of the broker's deadline for this attempt (None = no deadline)."""
        if self.deadline_at is None:
            return None
        return max(0, int((self.deadline_at - asyncio.get_running_loop().time()) * 1000))

    def emit(self, chunk: dict[str, Any]) -> None:
        """Send one OpenAI chat.completion.chunk to the broker (only for streaming tasks)."""
        if not self.stream:
            return
        body = pb.Chunk(job_id=self.job_id, attempt_id=self.attempt_id, seq=self.chunks_sent,
                        model=self.target, delta_json=json.dumps(chunk).encode())
        self.chunks_sent += 1
        self._worker._send(self._generation, wire.encode(WORKER_HEADER, W.CHUNK, body))

    def emit_text(self, text: str, finish_reason: str | None = None) -> None:
        """Stream a piece of answer text as a chunk (the first one also carries the role)."""
        delta: dict[str, Any] = {"content": text}
        if self.chunks_sent == 0:
            delta = {"role": "assistant", "content": text}
        self.emit({"id": self.completion_id, "object": "chat.completion.chunk",
                   "created": self.created, "model": self.target,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})


def _task_error_code(e: AigwError) -> pb.ErrorCode.ValueType:
    """ERROR code for a handler's AigwError: a failed sub-job is an upstream failure of ours."""
    if e.job_id is None:
        return pb.ErrorCode.ValueType(e.code)
    return pb.ERR_TIMEOUT if e.code == pb.ERR_TIMEOUT else pb.ERR_UPSTREAM


class WorkerBase:
    """A worker serving `services` (name -> async handler(request, ctx) -> chat.completion)."""

    def __init__(self, endpoint: str, services: Mapping[str, Handler] | None = None, *,
                 worker_id: str | None = None, capacity: int = 16, heartbeat_ms: int = 1000,
                 liveness: int = 3, max_frame: int = wire.DEFAULT_MAX_FRAME,
                 backoff_initial: float = 1.0, backoff_max: float = 32.0,
                 context: zmq.asyncio.Context | None = None,
                 curve: _curve.CurveKeys | None = None):
        self.endpoint = endpoint
        self.curve = curve    # CURVE client keys (None: plain, fabric/curve = off)
        self.services: dict[str, Handler] = dict(services or {})
        self.worker_id = worker_id or f"agent-{socket.gethostname()}-{os.getpid()}"
        self.capacity = capacity
        self.heartbeat = heartbeat_ms / 1000.0
        self.liveness = liveness
        self.max_frame = max_frame
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stats = WorkerStats()
        self._ctx = context or zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = None
        self._generation = 0
        self._tasks: dict[int, tuple[asyncio.Task[None], TaskContext]] = {}
        self._run_task: asyncio.Task[None] | None = None

    def add_service(self, name: str, handler: Handler) -> None:
        self.services[name] = handler

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self) -> None:
        """Serve until cancelled (or stop()); on exit sends DISCONNECT and cancels tasks."""
        self._run_task = asyncio.current_task()
        backoff = self.backoff_initial
        try:
            while True:
                heard = await self._session()
                if heard:
                    backoff = self.backoff_initial
                log.info("broker %s lost; reconnecting in %.1f s", self.endpoint, backoff)
                await asyncio.sleep(backoff)
                if not heard:
                    backoff = min(backoff * 2, self.backoff_max)
        finally:
            self._close(graceful=True)
            self._run_task = None

    async def stop(self) -> None:
        task = self._run_task
        if task and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _open(self) -> zmq.asyncio.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        _curve.apply(sock, self.curve)
        sock.connect(self.endpoint)
        self._generation += 1
        self.stats.connects += 1
        self._sock = sock
        return sock

    def _drop_tasks(self) -> int:
        """Cancel every in-flight task without a reply; returns how many there were."""
        n = len(self._tasks)
        for task, _ in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        return n

    def _close(self, graceful: bool) -> None:
        """Cancel in-flight tasks (no acks: the broker fails or re-dispatches them), close socket."""
        dropped = self._drop_tasks()
        if not graceful:
            self.stats.orphaned += dropped
        sock, self._sock = self._sock, None
        self._generation += 1
        if sock is None:
            return
        if graceful:
            fut = asyncio.ensure_future(
                sock.send_multipart(wire.encode(WORKER_HEADER, W.DISCONNECT), flags=zmq.NOBLOCK))
            fut.add_done_callback(_log_send_error)
            sock.close(linger=200)
        else:
            sock.close(linger=0)

    def _send(self, generation: int, frames: list[bytes]) -> None:
        """Queue a message on the current socket; dropped if the socket it was meant for is gone."""
        if generation != self._generation or self._sock is None:
            return
        fut = asyncio.ensure_future(self._sock.send_multipart(frames))
        fut.add_done_callback(_log_send_error)

    def _hello(self) -> pb.WorkerHello:
        return pb.WorkerHello(worker_id=self.worker_id, models=list(self.services),
                              capacity=self.capacity, pid=os.getpid(), version=__version__)

    def _worker_stats(self) -> pb.WorkerStats:
        s = self.stats
        return pb.WorkerStats(in_flight=len(self._tasks), capacity=self.capacity,
                              completed=s.completed, failed=s.failed, cancelled=s.cancelled)

    async def _session(self) -> bool:
        """One connection: READY, then serve until silence/DISCONNECT. Returns whether we heard the broker."""
        loop = asyncio.get_running_loop()
        sock = self._open()
        gen = self._generation
        self._send(gen, wire.encode(WORKER_HEADER, W.READY, self._hello()))
        log.info("READY sent to %s as %s (%s)", self.endpoint, self.worker_id,
                 ", ".join(self.services))
        heard = False
        warned = False
        graceful = False
        instance = 0          # BrokerBeat.instance seen on this connection (0: none yet)
        expiry = loop.time() + self.heartbeat * self.liveness
        next_hb = loop.time() + self.heartbeat
        try:
            while True:
                now = loop.time()
                if now >= next_hb:
                    self._send(gen, wire.encode(WORKER_HEADER, W.HEARTBEAT, self._worker_stats()))
                    next_hb = now + self.heartbeat
                if now >= expiry:
                    log.warning("broker %s silent for %d intervals", self.endpoint, self.liveness)
                    return heard
                timeout_ms = max(1, int((min(next_hb, expiry) - now) * 1000))
                if not await sock.poll(timeout_ms):
                    continue
                for frames in await _drain(sock):
                    msg, why = wire.parse(frames, WORKER_HEADER, to_broker=False,
                                          max_frame=self.max_frame)
                    if msg is None:
                        self.stats.malformed += 1
                        if not warned:
                            log.warning("dropping malformed message from broker: %s", why)
                            warned = True
                        continue
                    heard = True
                    expiry = loop.time() + self.heartbeat * self.liveness
                    if msg.cmd == W.DISCONNECT:
                        log.warning("broker %s sent DISCONNECT", self.endpoint)
                        return heard
                    if msg.cmd == W.TASK:
                        self._on_task(gen, msg)
                    elif msg.cmd == W.CANCEL:
                        self._on_cancel(msg.body.attempt_id)
                    elif msg.cmd == W.HEARTBEAT:
                        gen, instance = self._on_beat(gen, msg.body, instance)
        except zmq.ZMQError as e:
            log.error("broker link %s failed: %s", self.endpoint, e)
            return heard
        except asyncio.CancelledError:
            graceful = True  # stop(): say DISCONNECT so the broker re-dispatches at once
            raise
        finally:
            if self._generation == gen:
                self._close(graceful)

    def _on_beat(self, gen: int, beat: pb.BrokerBeat, seen: int) -> tuple[int, int]:
        """A broker HEARTBEAT. An instance other than the one seen on this connection means
        the broker restarted: drop the attempts run for the old one (their late replies
        are never sent: the generation moves on) and send READY at once on the same
        socket. Returns the generation to send with and the instance now seen."""
        new = beat.instance if beat.HasField("instance") else 0
        if new == 0 or new == seen:
            return gen, seen
        if seen == 0:
            return gen, new
        self.stats.restarts += 1
        dropped = self._drop_tasks()
        self.stats.orphaned += dropped
        self._generation += 1
        gen = self._generation
        self._send(gen, wire.encode(WORKER_HEADER, W.READY, self._hello()))
        log.warning("broker %s restarted (instance %016x -> %016x): %d attempts dropped, "
                    "READY sent", self.endpoint, seen, new, dropped)
        return gen, new

    def _reply_error(self, gen: int, task: pb.Task, code: pb.ErrorCode.ValueType,
                     message: str) -> None:
        body = pb.Error(job_id=task.job_id, attempt_id=task.attempt_id, code=code,
                        message=message[:2000])
        self._send(gen, wire.encode(WORKER_HEADER, W.ERROR, body))

    def _on_task(self, gen: int, msg: wire.Message) -> None:
        t: pb.Task = msg.body
        if t.attempt_id in self._tasks:
            self.stats.malformed += 1
            log.warning("duplicate TASK for attempt %d dropped", t.attempt_id)
            return
        handler = self.services.get(t.target)
        if handler is None:
            self.stats.rejected += 1
            self._reply_error(gen, t, pb.ERR_UNKNOWN_MODEL, f"{self.worker_id} does not serve {t.target}")
            return
        if len(self._tasks) >= self.capacity:
            self.stats.rejected += 1
            self._reply_error(gen, t, pb.ERR_OVERLOADED,
                              f"{self.worker_id} is at capacity ({self.capacity})")
            return
        try:
            request = json.loads(msg.payload or b"")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self.stats.rejected += 1
            self._reply_error(gen, t, pb.ERR_BAD_REQUEST, "request payload is not a JSON object")
            return
        self.stats.tasks += 1
        ctx = TaskContext(self, t, gen, asyncio.get_running_loop().time())
        task = asyncio.get_running_loop().create_task(self._run_one(handler, request, ctx, t))
        self._tasks[t.attempt_id] = (task, ctx)

    def _on_cancel(self, attempt_id: int) -> None:
        entry = self._tasks.pop(attempt_id, None)  # the slot is free at once
        if entry is None:
            return  # already answered; the broker drops our late reply
        task, ctx = entry
        ctx.cancel_requested = True
        task.cancel()

    async def _run_one(self, handler: Handler, request: dict[str, Any], ctx: TaskContext,
                       t: pb.Task) -> None:
        gen = ctx._generation
        try:
            remaining = ctx.remaining_ms()
            try:
                if remaining is None:
                    response = await handler(request, ctx)
                else:
                    async with asyncio.timeout(remaining / 1000.0):
                        response = await handler(request, ctx)
            except asyncio.CancelledError:
                if ctx.cancel_requested:
                    self.stats.cancelled += 1
                    self._reply_error(gen, t, pb.ERR_CANCELLED, "cancelled")
                raise
            except TimeoutError:
                self._fail(gen, t, pb.ERR_TIMEOUT, "deadline passed")
                return
            except AigwError as e:
                self._fail(gen, t, _task_error_code(e), str(e))
                return
            except Exception as e:
                log.exception("%s attempt %d failed", ctx.target, ctx.attempt_id)
                self._fail(gen, t, pb.ERR_INTERNAL, f"{ctx.target}: {type(e).__name__}: {e}")
                return
            self._answer(gen, t, ctx, response)
        finally:
            entry = self._tasks.get(ctx.attempt_id)
            if entry is not None and entry[1] is ctx:
                del self._tasks[ctx.attempt_id]

    def _fail(self, gen: int, t: pb.Task, code: pb.ErrorCode.ValueType, message: str) -> None:
        self.stats.failed += 1
        self._reply_error(gen, t, code, message)

    def _answer(self, gen: int, t: pb.Task, ctx: TaskContext, response: Any) -> None:
        if not isinstance(response, dict):
            self._fail(gen, t, pb.ERR_INTERNAL, f"{ctx.target}: handler returned no completion")
            return
        body = pb.Result(job_id=t.job_id, attempt_id=t.attempt_id, model=ctx.target,
                         response_json=json.dumps(response).encode())
        usage = response.get("usage")
        if isinstance(usage, dict):
            for k in ("prompt_tokens", "completion_tokens"):
                v = usage.get(k)
                if isinstance(v, int) and 0 <= v < 2**32:
                    setattr(body.usage, k, v)
        self.stats.completed += 1
        self._send(gen, wire.encode(WORKER_HEADER, W.RESULT, body))


async def _drain(sock: zmq.asyncio.Socket) -> list[list[bytes]]:
    """Every message waiting on the socket right now (non-blocking)."""
    out: list[list[bytes]] = []
    while True:
        try:
            out.append(await sock.recv_multipart(flags=zmq.NOBLOCK))
        except zmq.Again:
            return out


def _log_send_error(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("send to broker failed: %s", fut.exception())
