"""Worker side of the aigw protocol: serve named services (e.g. agent/deliberate) to brokers.

WorkerBase registers with every broker it is given (one endpoint or a list of up to 8, all
active): one DEALER per broker, each with a zmq socket monitor. It sends READY when a
socket connects, heartbeats each broker, runs each TASK as an asyncio task, answers
RESULT/ERROR/CHUNK to the broker that sent it, and honours CANCEL. Attempts are keyed by
(broker, attempt id). One capacity is shared by all brokers, as the C worker does
(workers/worker.c): broker b is offered its own attempts plus every free slot, in READY,
in every HEARTBEAT and in a capacity-update HEARTBEAT whenever that value changes; a TASK
that still finds every slot taken is answered ERROR(ERR_OVERLOADED, "worker full") and the
broker places it elsewhere.

A broker is lost when its connection drops (monitor DISCONNECTED), when it sends
DISCONNECT, when its HEARTBEAT shows another BrokerBeat.instance (it restarted), or after
liveness intervals of silence. Only that broker's attempts are dropped (cancelled, no
reply); after a restart READY goes out at once on the same socket, after a dropped
connection or DISCONNECT a new socket is opened at once (after the back-off, 1 s doubling
to 32 s, when the broker never said anything on it, or went silent).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import zmq
import zmq.asyncio

from . import __version__, wire
from . import curve as _curve
from ._proto import pb
from .config import parse_endpoints
from .errors import AigwError
from .wire import WORKER_HEADER, W

log = logging.getLogger("aigw_agent.worker")

DRAIN_MAX = 1024          # messages read per broker per wake-up

Handler = Callable[[dict[str, Any], "TaskContext"], Awaitable[dict[str, Any]]]


@dataclass
class WorkerStats:
    tasks: int = 0            # TASKs accepted
    completed: int = 0        # answered with RESULT
    failed: int = 0           # answered with ERROR (not counting cancels)
    cancelled: int = 0        # cancelled by the broker and acknowledged
    rejected: int = 0         # refused: every slot taken, unknown service or bad payload
    full: int = 0             # of these, refused because every slot was taken ("worker full")
    malformed: int = 0        # broker messages dropped as malformed
    connects: int = 0         # sockets opened (all brokers; 1 each + reconnects)
    readies: int = 0          # READYs sent
    orphaned: int = 0         # attempts dropped (no reply) because their broker was lost
    restarts: int = 0         # broker restarts seen in a HEARTBEAT (a new BrokerBeat.instance)
    lost_disconnected: int = 0  # broker losses seen by the socket monitor
    lost_disconnect: int = 0  # ... by a DISCONNECT from the broker
    lost_silent: int = 0      # ... by heartbeat x liveness of silence
    capacity_updates: int = 0  # extra HEARTBEATs telling a broker its share changed


class TaskContext:
    """What a handler knows about its attempt, and how it streams chunks back."""

    def __init__(self, worker: "WorkerBase", task: pb.Task, link: "_WLink", generation: int,
                 now: float):
        self._worker = worker
        self._link = link
        self._generation = generation
        self.broker: str = link.endpoint
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
        self._worker._send(self._link, self._generation,
                           wire.encode(WORKER_HEADER, W.CHUNK, body))

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


class _WLink:
    """One broker of the worker: its DEALER and monitor, what it said, its attempts."""

    def __init__(self, index: int, endpoint: str, backoff: float):
        self.index = index
        self.endpoint = endpoint
        self.sock: zmq.asyncio.Socket | None = None
        self.raw: zmq.Socket[bytes] | None = None       # sync shadow: NOBLOCK I/O
        self.mon: zmq.asyncio.Socket | None = None
        self.raw_mon: zmq.Socket[bytes] | None = None
        self.generation = 0       # bumped when the socket closes or the broker restarted
        self.up = False           # READY sent on this socket
        self.heard = False        # the broker said something on this socket
        self.instance = 0         # BrokerBeat.instance seen on this socket (0: none yet)
        self.expiry = 0.0
        self.next_hb = 0.0
        self.backoff = backoff
        self.reconnect_at = 0.0
        self.advertised = 0       # the capacity this broker was last told
        self.warned = False
        self.tasks: dict[int, tuple[asyncio.Task[None], TaskContext]] = {}


class WorkerBase:
    """A worker serving `services` (name -> async handler(request, ctx) -> chat.completion).

    endpoint: one broker backend, a comma list or a sequence (1..8; ConfigError
    otherwise). `capacity` is shared by all of them.
    """

    def __init__(self, endpoint: str | Sequence[str],
                 services: Mapping[str, Handler] | None = None, *,
                 worker_id: str | None = None, capacity: int = 16, heartbeat_ms: int = 1000,
                 liveness: int = 3, max_frame: int = wire.DEFAULT_MAX_FRAME,
                 backoff_initial: float = 1.0, backoff_max: float = 32.0,
                 context: zmq.asyncio.Context | None = None,
                 curve: _curve.CurveKeys | None = None):
        self.endpoints = parse_endpoints(endpoint, "WorkerBase endpoint")
        self.endpoint = ", ".join(self.endpoints)
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
        self._links = [_WLink(i, ep, backoff_initial) for i, ep in enumerate(self.endpoints)]
        self._run_task: asyncio.Task[None] | None = None
        self._poller: zmq.asyncio.Poller | None = None
        self._advertise_soon = False

    def add_service(self, name: str, handler: Handler) -> None:
        self.services[name] = handler

    @property
    def in_flight(self) -> int:
        """Attempts running now, all brokers together (never more than capacity)."""
        return sum(len(link.tasks) for link in self._links)

    def in_flight_of(self, endpoint: str) -> int:
        """Attempts running now for one broker."""
        return sum(len(link.tasks) for link in self._links if link.endpoint == endpoint)

    def share(self, link: _WLink) -> int:
        """The capacity broker `link` may use: its own attempts plus every free slot.
        With one broker that is the whole capacity."""
        if len(self._links) < 2:
            return self.capacity
        return len(link.tasks) + self.capacity - self.in_flight

    async def run(self) -> None:
        """Serve until cancelled (or stop()); on exit sends DISCONNECT and cancels tasks."""
        self._run_task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        try:
            for link in self._links:
                self._connect(link, loop.time())
            while True:
                due = self._tick(loop.time())
                if self._poller is None:
                    self._poller = zmq.asyncio.Poller()
                    for link in self._links:
                        if link.sock is not None and link.mon is not None:
                            self._poller.register(link.mon, zmq.POLLIN)
                            self._poller.register(link.sock, zmq.POLLIN)
                await self._poller.poll(max(1, int((due - loop.time()) * 1000)))
                now = loop.time()
                for link in self._links:
                    self._read_monitor(link, now)
                    self._drain(link, now)
                self._advertise()
        finally:
            self._shutdown()
            self._run_task = None

    async def stop(self) -> None:
        task = self._run_task
        if task and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    # ---- links

    def _connect(self, link: _WLink, now: float) -> None:
        """Open link's socket; READY goes out when the monitor says it connected."""
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        _curve.apply(sock, self.curve)
        mon = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        sock.connect(link.endpoint)
        link.sock, link.mon = sock, mon
        link.raw = zmq.Socket.shadow(sock.underlying)
        link.raw_mon = zmq.Socket.shadow(mon.underlying)
        link.generation += 1
        link.up = link.heard = link.warned = False
        link.instance = 0
        self.stats.connects += 1
        self._poller = None

    def _close_link(self, link: _WLink, graceful: bool) -> None:
        sock, mon = link.sock, link.mon
        link.sock = link.raw = link.mon = link.raw_mon = None
        link.generation += 1
        link.up = False
        self._poller = None
        if sock is None:
            return
        try:
            sock.disable_monitor()
        except zmq.ZMQError:
            pass
        if mon is not None:
            mon.close(linger=0)
        if graceful:
            try:
                zmq.Socket.shadow(sock.underlying).send_multipart(
                    wire.encode(WORKER_HEADER, W.DISCONNECT), flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            sock.close(linger=200)
        else:
            sock.close(linger=0)

    def _drop_tasks(self, link: _WLink) -> int:
        """Cancel every in-flight task of one broker without a reply; returns how many."""
        n = len(link.tasks)
        for task, _ in link.tasks.values():
            task.cancel()
        link.tasks.clear()
        if n:
            self._schedule_advertise()
        return n

    def _shutdown(self) -> None:
        for link in self._links:
            self._drop_tasks(link)
            self._close_link(link, graceful=link.up)

    def _lost(self, link: _WLink, now: float, why: str, at_once: bool) -> None:
        """Broker `link` is gone: orphan its attempts, close the socket, open a new one at
        once or after the back-off."""
        orphaned = self._drop_tasks(link)
        self.stats.orphaned += orphaned
        self._close_link(link, graceful=False)
        delay = 0.0 if at_once else link.backoff
        if not at_once:
            link.backoff = min(link.backoff * 2, self.backoff_max)
        link.reconnect_at = now + delay
        log.warning("broker %s: %s; %d attempts orphaned; reconnecting in %.2f s",
                    link.endpoint, why, orphaned, delay)

    def _link_up(self, link: _WLink, now: float) -> None:
        link.expiry = now + self.heartbeat * self.liveness
        link.next_hb = now + self.heartbeat
        link.up = True
        self._send_ready(link)
        log.info("READY sent to %s as %s (%s), capacity %d", link.endpoint, self.worker_id,
                 ", ".join(self.services), link.advertised)

    def _tick(self, now: float) -> float:
        """Reconnects, silence, heartbeats; returns the loop time of the next tick."""
        due = now + 1.0
        for link in self._links:
            if link.sock is None:
                if now >= link.reconnect_at:
                    self._connect(link, now)
                else:
                    due = min(due, link.reconnect_at)
                continue
            if not link.up:
                continue     # not connected yet: zmq retries, READY goes out when it does
            if now >= link.expiry:
                self.stats.lost_silent += 1
                log.warning("broker %s silent for %d intervals", link.endpoint, self.liveness)
                self._lost(link, now, f"silent for {self.heartbeat * self.liveness:g} s",
                           at_once=False)
                due = min(due, link.reconnect_at)
                continue
            if now >= link.next_hb:
                self._send_heartbeat(link, self.share(link))
                link.next_hb = now + self.heartbeat
            due = min(due, link.next_hb, link.expiry)
        return due

    def _read_monitor(self, link: _WLink, now: float) -> None:
        for event in wire.monitor_events(lambda: link.raw_mon):
            if event == zmq.EVENT_CONNECTED and not link.up:
                self._link_up(link, now)
            elif event == zmq.EVENT_DISCONNECTED:
                self._drain(link, now)      # what it sent before it went comes first
                if link.sock is None:
                    return
                self.stats.lost_disconnected += 1
                self._lost(link, now, "connection lost (DISCONNECTED)", at_once=link.heard)
                return

    def _drain(self, link: _WLink, now: float) -> None:
        for frames in wire.pending(lambda: link.raw, DRAIN_MAX):
            self._handle(link, frames, now)

    def _handle(self, link: _WLink, frames: list[bytes], now: float) -> None:
        msg, why = wire.parse(frames, WORKER_HEADER, to_broker=False, max_frame=self.max_frame)
        if msg is None:
            self.stats.malformed += 1
            if not link.warned:
                log.warning("dropping malformed message from broker %s: %s", link.endpoint, why)
                link.warned = True
            return
        heard_before = link.heard
        link.expiry = now + self.heartbeat * self.liveness
        if msg.cmd != W.DISCONNECT:
            link.heard = True
            link.backoff = self.backoff_initial
        if msg.cmd == W.DISCONNECT:
            self.stats.lost_disconnect += 1
            log.warning("broker %s sent DISCONNECT", link.endpoint)
            self._lost(link, now, "DISCONNECT from broker", at_once=heard_before)
        elif msg.cmd == W.TASK:
            self._on_task(link, msg)
        elif msg.cmd == W.CANCEL:
            self._on_cancel(link, msg.body.attempt_id)
        elif msg.cmd == W.HEARTBEAT:
            self._on_beat(link, msg.body)

    # ---- sending

    def _send(self, link: _WLink, generation: int, frames: list[bytes]) -> None:
        """Send on link's socket now; dropped if the socket (or broker instance) it was
        meant for is gone, or the broker does not know us yet (before READY)."""
        if generation != link.generation or link.raw is None or not link.up:
            return
        try:
            link.raw.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.ZMQError as e:
            log.warning("send to broker %s failed: %s", link.endpoint, e)

    def _hello(self, capacity: int) -> pb.WorkerHello:
        return pb.WorkerHello(worker_id=self.worker_id, models=list(self.services),
                              capacity=capacity, pid=os.getpid(), version=__version__)

    def _send_ready(self, link: _WLink) -> None:
        """READY with the broker's share (at least 1, which READY needs; a capacity update
        follows when the share is 0)."""
        capacity = max(1, self.share(link))
        self._send(link, link.generation, wire.encode(WORKER_HEADER, W.READY,
                                                      self._hello(capacity)))
        link.advertised = capacity
        self.stats.readies += 1
        self._schedule_advertise()

    def _worker_stats(self, link: _WLink, capacity: int) -> pb.WorkerStats:
        s = self.stats
        return pb.WorkerStats(in_flight=len(link.tasks), capacity=capacity,
                              completed=s.completed, failed=s.failed, cancelled=s.cancelled)

    def _send_heartbeat(self, link: _WLink, capacity: int) -> None:
        self._send(link, link.generation, wire.encode(WORKER_HEADER, W.HEARTBEAT,
                                                      self._worker_stats(link, capacity)))
        link.advertised = capacity

    def _schedule_advertise(self) -> None:
        """Capacity updates go out once per loop turn, however many slots changed."""
        if len(self._links) < 2 or self._advertise_soon:
            return
        self._advertise_soon = True
        asyncio.get_running_loop().call_soon(self._advertise)

    def _advertise(self) -> None:
        """Tell every broker whose share changed since it was last told (several brokers)."""
        self._advertise_soon = False
        if len(self._links) < 2:
            return
        for link in self._links:
            share = self.share(link)
            if link.up and link.raw is not None and share != link.advertised:
                self._send_heartbeat(link, share)
                self.stats.capacity_updates += 1

    # ---- broker commands

    def _on_beat(self, link: _WLink, beat: pb.BrokerBeat) -> None:
        """A broker HEARTBEAT. An instance other than the one seen on this connection means
        the broker restarted: drop the attempts run for the old one (their late replies
        are never sent: the generation moves on) and send READY at once on the same
        socket."""
        new = beat.instance if beat.HasField("instance") else 0
        seen = link.instance
        if new == 0 or new == seen:
            return
        link.instance = new
        if seen == 0:
            return
        self.stats.restarts += 1
        dropped = self._drop_tasks(link)
        self.stats.orphaned += dropped
        link.generation += 1
        self._send_ready(link)
        log.warning("broker %s restarted (instance %016x -> %016x): %d attempts dropped, "
                    "READY sent", link.endpoint, seen, new, dropped)

    def _reply_error(self, link: _WLink, gen: int, task: pb.Task,
                     code: pb.ErrorCode.ValueType, message: str) -> None:
        body = pb.Error(job_id=task.job_id, attempt_id=task.attempt_id, code=code,
                        message=message[:2000])
        self._send(link, gen, wire.encode(WORKER_HEADER, W.ERROR, body))

    def _reject(self, link: _WLink, t: pb.Task, code: pb.ErrorCode.ValueType,
                message: str) -> None:
        self.stats.rejected += 1
        self._reply_error(link, link.generation, t, code, message)

    def _on_task(self, link: _WLink, msg: wire.Message) -> None:
        t: pb.Task = msg.body
        if t.attempt_id in link.tasks:
            self.stats.malformed += 1
            log.warning("duplicate TASK for attempt %d from %s dropped", t.attempt_id,
                        link.endpoint)
            return
        handler = self.services.get(t.target)
        if handler is None:
            self._reject(link, t, pb.ERR_UNKNOWN_MODEL,
                         f"{self.worker_id} does not serve {t.target}")
            return
        if self.in_flight >= self.capacity:
            # every slot taken (two brokers took the last one at once): this broker
            # places the attempt on another worker
            self.stats.full += 1
            self._reject(link, t, pb.ERR_OVERLOADED, "worker full")
            return
        try:
            request = json.loads(msg.payload or b"")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._reject(link, t, pb.ERR_BAD_REQUEST, "request payload is not a JSON object")
            return
        self.stats.tasks += 1
        loop = asyncio.get_running_loop()
        ctx = TaskContext(self, t, link, link.generation, loop.time())
        task = loop.create_task(self._run_one(handler, request, ctx, t))
        link.tasks[t.attempt_id] = (task, ctx)
        self._schedule_advertise()

    def _on_cancel(self, link: _WLink, attempt_id: int) -> None:
        entry = link.tasks.pop(attempt_id, None)  # the slot is free at once
        if entry is None:
            return  # already answered; the broker drops our late reply
        task, ctx = entry
        ctx.cancel_requested = True
        task.cancel()
        self._schedule_advertise()

    async def _run_one(self, handler: Handler, request: dict[str, Any], ctx: TaskContext,
                       t: pb.Task) -> None:
        link, gen = ctx._link, ctx._generation
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
                    self._reply_error(link, gen, t, pb.ERR_CANCELLED, "cancelled")
                raise
            except TimeoutError:
                self._fail(link, gen, t, pb.ERR_TIMEOUT, "deadline passed")
                return
            except AigwError as e:
                self._fail(link, gen, t, _task_error_code(e), str(e))
                return
            except Exception as e:
                log.exception("%s attempt %d failed", ctx.target, ctx.attempt_id)
                self._fail(link, gen, t, pb.ERR_INTERNAL, f"{ctx.target}: {type(e).__name__}: {e}")
                return
            self._answer(link, gen, t, ctx, response)
        finally:
            entry = link.tasks.get(ctx.attempt_id)
            if entry is not None and entry[1] is ctx:
                del link.tasks[ctx.attempt_id]
                self._schedule_advertise()

    def _fail(self, link: _WLink, gen: int, t: pb.Task, code: pb.ErrorCode.ValueType,
              message: str) -> None:
        self.stats.failed += 1
        self._reply_error(link, gen, t, code, message)

    def _answer(self, link: _WLink, gen: int, t: pb.Task, ctx: TaskContext,
                response: Any) -> None:
        if not isinstance(response, dict):
            self._fail(link, gen, t, pb.ERR_INTERNAL, f"{ctx.target}: handler returned no completion")
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
        self._send(link, gen, wire.encode(WORKER_HEADER, W.RESULT, body))
