"""Client of the broker frontend(s): submit jobs (race/hedge/fallback), await or stream answers.

One DEALER per broker (a Client takes one endpoint or a list of up to 8, all active) and one
background task that polls them all: it routes CHUNK/RESULT/ERROR by job_id to per-job
queues, PINGs every broker each heartbeat and reads its PONG (BrokerStatus: `instance`,
workers), and watches each socket with a zmq monitor (CONNECTED / DISCONNECTED).

A new job goes to the live broker holding the fewest of this client's jobs (ties: round
robin); a broker whose last PONG counted no worker is used only when no other is live. A
broker is lost when its connection drops (monitor), when a PONG shows another instance (it
restarted), or when it has been silent for heartbeat x liveness. Its jobs are settled at
once, as the C edge does (edge/link.c): a job that has received nothing yet (no CHUNK) is
resubmitted once, with the same job id and frames, to a live broker that has workers
(waiting up to heartbeat x liveness for one); the others end with Unavailable. Answers
from a broker other than the one holding the job are dropped and counted, so a job gets
exactly one answer. (SPEND, usage settled after a job's answer, is for billing clients
such as the edge and is ignored here.) Cancelling a task that awaits complete() or
iterates a Stream sends CANCEL(job_id) to the broker holding it.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import zmq
import zmq.asyncio

from . import curve as _curve
from . import wire
from ._proto import pb
from .config import parse_endpoints
from .errors import AigwError, Attempt, BadRequest, Unavailable, UpstreamError, error_for
from .wire import CLIENT_HEADER, C

log = logging.getLogger("aigw_agent.client")

POLICIES = {"race": pb.POLICY_RACE, "hedge": pb.POLICY_HEDGE, "fallback": pb.POLICY_FALLBACK}
RETRY_PING_S = 0.020      # PING pace while a link has no connection or jobs wait for a broker
DRAIN_MAX = 512           # messages read per socket per wake-up
LOST_WHY = "lost the connection to the broker"
_MON_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED


@dataclass
class Completion:
    content: str                  # the answer text (choices[0].message.content)
    response: dict[str, Any]      # the OpenAI chat.completion object
    model: str                    # winning target
    attempts: list[Attempt]
    latency_ms: float             # broker's accept-to-answer time (local time if not reported)
    job_id: int = 0
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class Chunk:
    text: str                     # content delta ("" for role-only or empty deltas)
    data: dict[str, Any]          # the OpenAI chat.completion.chunk object
    model: str = ""
    seq: int | None = None


@dataclass
class ClientStats:
    submitted: int = 0
    malformed: int = 0            # messages from a broker dropped as malformed
    late: int = 0                 # answers for jobs nobody waits for (cancelled, timed out)
    pings: int = 0                # PINGs sent
    pongs: int = 0                # PONGs received
    brokers_lost: int = 0         # broker losses (disconnect, restart or silence)
    restarts: int = 0             # of these, a PONG showed a new instance
    resubmitted: int = 0          # jobs sent again, once, after their broker was lost
    failed_on_loss: int = 0       # jobs ended with Unavailable: broker lost or none live
    dropped_foreign: int = 0      # answers from a broker that does not hold the job (dropped)
    reconnects: int = 0           # broker sockets made again after heartbeat x liveness down


class _Job:
    def __init__(self, job_id: int, guard_at: float, started: float, frames: list[bytes],
                 wait_s: float):
        self.job_id = job_id
        self.queue: asyncio.Queue[wire.Message] = asyncio.Queue()
        self.guard_at = guard_at  # loop time after which we stop waiting for the broker
        self.started = started
        self.wait_s = wait_s      # deadline + grace: the guard again after a resubmission
        self.final = False        # RESULT/ERROR received, or job abandoned
        self.link: int | None = None          # broker holding the job; None: waiting for one
        self.frames: list[bytes] | None = frames  # the SUBMIT, while nothing was received
        self.sent = False         # a broker took the SUBMIT at least once
        self.resubmitted = False
        self.waiting_since = started


class _Link:
    """One broker: its DEALER, monitor and what its PONGs said."""

    def __init__(self, index: int, endpoint: str):
        self.index = index
        self.endpoint = endpoint
        self.sock: zmq.asyncio.Socket | None = None
        self.raw: zmq.Socket[bytes] | None = None   # sync shadow: NOBLOCK sends and receives
        self.mon: zmq.asyncio.Socket | None = None
        self.raw_mon: zmq.Socket[bytes] | None = None
        self.since = 0.0          # when the socket was made
        self.connected = False    # CONNECTED seen and no DISCONNECTED since
        self.heard: float | None = None       # loop time of the last message (None: never)
        self.instance = 0         # from its PONGs (0: none yet)
        self.workers = 0          # as of its last PONG
        self.routes = 0           # jobs it holds for this client
        self.next_ping = 0.0
        self.was_live = False
        self.warned = False
        self.pongs: list[asyncio.Future[pb.BrokerStatus]] = []


def as_messages(messages: str | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return list(messages)


def as_targets(targets: str | Iterable[str]) -> list[str]:
    if isinstance(targets, str):
        targets = targets.split(",")
    return [t.strip() for t in targets if t and t.strip()]


class Client:
    """DEALERs to the broker frontends. Create and use inside a running event loop.

    endpoint: one endpoint, a comma list ("tcp://b1:5555, tcp://b2:5555") or a sequence of
    endpoints (1..8; ConfigError otherwise). heartbeat_ms x liveness is how long a silent
    broker stays live, and how long a job waits for a live broker.
    """

    def __init__(self, endpoint: str | Sequence[str], *,
                 context: zmq.asyncio.Context | None = None,
                 max_frame: int = wire.DEFAULT_MAX_FRAME, default_deadline_ms: int = 120000,
                 grace_ms: int = 5000, close_linger_ms: int = 0,
                 curve: _curve.CurveKeys | None = None, heartbeat_ms: int = 1000,
                 liveness: int = 3):
        self.endpoints = parse_endpoints(endpoint, "Client endpoint")
        self.endpoint = ", ".join(self.endpoints)
        self.curve = curve                # CURVE client keys (None: plain, fabric/curve = off)
        self.close_linger_ms = close_linger_ms  # how long close() lets queued CANCELs go out
        self.max_frame = max_frame
        self.default_deadline_ms = default_deadline_ms
        self.grace_ms = grace_ms          # extra wait beyond the deadline before giving up locally
        self.heartbeat = heartbeat_ms / 1000.0
        self.dead_after = self.heartbeat * liveness
        self.stats = ClientStats()
        self._ctx = context or zmq.asyncio.Context.instance()
        self._links = [_Link(i, ep) for i, ep in enumerate(self.endpoints)]
        self._run_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: dict[int, _Job] = {}
        self._npending = 0                # jobs waiting for a broker
        self._next_id = 1
        self._rr = itertools.count()
        self._poller: zmq.asyncio.Poller | None = None   # None: rebuild (sockets changed)
        self._wake: asyncio.Future[None] | None = None

    async def __aenter__(self) -> "Client":
        self._start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ---- sockets

    def _start(self) -> None:
        if self._run_task is not None:
            return
        self._loop = asyncio.get_running_loop()
        for link in self._links:
            self._open(link)
        self._run_task = self._loop.create_task(self._run())

    def _open(self, link: _Link) -> None:
        self._close_link(link)
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        sock.setsockopt(zmq.IMMEDIATE, 1)   # no connection: a send fails at once, never queues
        _curve.apply(sock, self.curve)
        mon = sock.get_monitor_socket(_MON_EVENTS)
        sock.connect(link.endpoint)
        link.sock, link.mon = sock, mon
        link.raw = zmq.Socket.shadow(sock.underlying)
        link.raw_mon = zmq.Socket.shadow(mon.underlying)
        assert self._loop is not None
        link.since = self._loop.time()
        link.next_ping = link.since
        link.connected = False
        self._poller = None

    def _close_link(self, link: _Link, linger_ms: int = 0) -> None:
        sock, mon = link.sock, link.mon
        link.sock = link.raw = link.mon = link.raw_mon = None
        link.connected = False
        self._poller = None
        if sock is not None:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
            sock.close(linger=linger_ms)
        if mon is not None:
            mon.close(linger=0)

    async def close(self) -> None:
        """Close the sockets; jobs still waiting fail with Unavailable."""
        task = self._run_task
        self._run_task = None
        if task:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        for link in self._links:
            self._close_link(link, self.close_linger_ms)
        self._fail_all("client closed")

    def _fail_all(self, why: str) -> None:
        for job in list(self._jobs.values()):
            self._settle(job)
            job.queue.put_nowait(_unavailable(job.job_id, why))
        self._jobs.clear()
        for link in self._links:
            for fut in link.pongs:
                if not fut.done():
                    fut.set_exception(Unavailable(why))
            link.pongs.clear()

    def _send(self, link: _Link, frames: list[bytes]) -> bool:
        """Send one message now without waiting; False if the broker is not connected."""
        if link.raw is None:
            return False
        try:
            link.raw.send_multipart(frames, flags=zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def _poke(self) -> None:
        """Wake the loop so it re-reads its timers (a job is waiting for a broker)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    # ---- liveness

    def _live(self, link: _Link, now: float) -> bool:
        return (link.sock is not None and link.connected and link.heard is not None
                and now - link.heard <= self.dead_after)

    def _pick(self, now: float, with_workers: bool) -> _Link | None:
        """The live broker holding the fewest of our jobs (ties: round robin), or None.
        with_workers: only one whose last PONG counted a worker."""
        n = len(self._links)
        start = next(self._rr) % n
        best: _Link | None = None
        for k in range(n):
            link = self._links[(start + k) % n]
            if not self._live(link, now) or (with_workers and link.workers == 0):
                continue
            if best is None or link.routes < best.routes:
                best = link
        return best

    def _place(self, job: _Job, now: float) -> bool:
        """Send a waiting job's SUBMIT to the best live broker. A new job may go to one
        without workers when no other is live; a resubmission waits for one with workers."""
        assert job.frames is not None
        link = self._pick(now, True)
        if link is None and not job.sent:
            link = self._pick(now, False)
        if link is None or not self._send(link, job.frames):
            return False
        if job.sent:
            job.resubmitted = True
            job.guard_at = max(job.guard_at, now + job.wait_s)
            self.stats.resubmitted += 1
            log.info("job %d resubmitted to broker %s", job.job_id, link.endpoint)
        job.sent = True
        job.link = link.index
        link.routes += 1
        return True

    def _place_waiting(self, now: float) -> None:
        """Send the jobs waiting for a broker; fail those that waited heartbeat x liveness."""
        if self._npending == 0:
            return
        for job in [j for j in self._jobs.values() if j.link is None]:
            if self._place(job, now):
                self._npending -= 1
            elif now - job.waiting_since > self.dead_after:
                why = (LOST_WHY if job.sent else
                       f"no live broker ({self.endpoint}) within {self.dead_after:g} s")
                self._fail_job(job, why)

    def _settle(self, job: _Job) -> None:
        """The job leaves its broker's count (or the waiting list); it is final."""
        if job.final:
            return
        job.final = True
        if job.link is None:
            self._npending -= 1
        else:
            self._links[job.link].routes -= 1
        job.link = None
        job.frames = None

    def _fail_job(self, job: _Job, why: str) -> None:
        self._settle(job)
        self._jobs.pop(job.job_id, None)
        self.stats.failed_on_loss += 1
        job.queue.put_nowait(_unavailable(job.job_id, why))

    def _lost(self, link: _Link, why: str, now: float) -> None:
        """Broker `link` is gone: settle every job it held now. One that has received
        nothing waits to be resubmitted, once, to a live broker; the others fail."""
        self._drain(link)                  # what it sent before it went comes first
        self.stats.brokers_lost += 1
        moved = failed = 0
        for job in [j for j in self._jobs.values() if j.link == link.index]:
            if job.frames is not None and not job.resubmitted:
                link.routes -= 1
                job.link = None
                job.waiting_since = now
                self._npending += 1
                moved += 1
            else:
                self._fail_job(job, f"{LOST_WHY} {link.endpoint} ({why})")
                failed += 1
        link.routes = 0
        link.instance = 0
        link.workers = 0
        log.warning("broker %s lost (%s): %d jobs to resubmit, %d failed", link.endpoint, why,
                    moved, failed)
        self._place_waiting(now)

    # ---- the loop

    async def _run(self) -> None:
        assert self._loop is not None
        loop = self._loop
        try:
            while True:
                now = loop.time()
                due = self._tick(now)
                if self._poller is None:
                    self._poller = zmq.asyncio.Poller()
                    for link in self._links:
                        if link.sock is not None and link.mon is not None:
                            self._poller.register(link.mon, zmq.POLLIN)
                            self._poller.register(link.sock, zmq.POLLIN)
                wake: asyncio.Future[None] = loop.create_future()
                self._wake = wake
                poll: asyncio.Future[Any] = asyncio.ensure_future(
                    self._poller.poll(max(1, int((due - loop.time()) * 1000))))
                await asyncio.wait([poll, wake], return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    poll.cancel()
                self._wake = None
                for link in self._links:
                    self._read_monitor(link)
                    self._drain(link)
        except asyncio.CancelledError:
            raise
        except Exception as e:   # a bug or a dead context: nobody would answer the jobs
            log.exception("client loop failed")
            self._fail_all(f"client loop failed: {e}")

    def _tick(self, now: float) -> float:
        """Pings and liveness; returns the loop time of the next tick."""
        due = now + self.heartbeat
        for link in self._links:
            if now >= link.next_ping:
                sent = self._send(link, wire.encode(CLIENT_HEADER, C.PING))
                self.stats.pings += sent
                fast = min(self.heartbeat, RETRY_PING_S)
                link.next_ping = now + (self.heartbeat if sent and not self._npending else fast)
            due = min(due, link.next_ping)
            live = self._live(link, now)
            if live and not link.was_live:
                log.info("broker link up (%s)", link.endpoint)
            went_down = link.was_live and not live
            link.was_live = live
            if went_down:
                log.warning("broker link down: %s", link.endpoint)
                if link.routes:
                    self._lost(link, f"silent for {self.dead_after:g} s", now)
            if not live and now - link.since >= self.dead_after:
                # never came up, or went silent: a new socket (a new routing id, so
                # nothing the old one sent can reach a job sent again)
                self.stats.reconnects += 1
                self._open(link)
                due = min(due, now)
        self._place_waiting(now)
        if self._npending:
            due = min(due, now + RETRY_PING_S)
        for link in self._links:
            if link.heard is not None and link.was_live:
                due = min(due, link.heard + self.dead_after + 0.001)
        return due

    def _read_monitor(self, link: _Link) -> None:
        for event in wire.monitor_events(lambda: link.raw_mon):
            assert self._loop is not None
            if event == zmq.EVENT_CONNECTED:
                link.connected = True
                link.next_ping = 0.0        # ping at once: a (re)started broker is used soon
            elif event == zmq.EVENT_DISCONNECTED and link.connected:
                link.connected = False
                link.heard = None
                link.was_live = False
                self._lost(link, "disconnected", self._loop.time())

    def _drain(self, link: _Link) -> None:
        for frames in wire.pending(lambda: link.raw, DRAIN_MAX):
            self._dispatch(link, frames)

    def _dispatch(self, link: _Link, frames: list[bytes]) -> None:
        msg, why = wire.parse(frames, CLIENT_HEADER, to_broker=False, max_frame=self.max_frame)
        if msg is None:
            self.stats.malformed += 1
            if not link.warned:
                log.warning("dropping malformed message from broker %s: %s", link.endpoint, why)
                link.warned = True
            return
        assert self._loop is not None
        now = self._loop.time()
        link.heard = now
        if msg.cmd == C.PONG:
            self._on_pong(link, msg.body, now)
            return
        if msg.cmd == C.SPEND:
            return  # late usage of a job's loser: not an answer, nothing to route
        job = self._jobs.get(msg.body.job_id)
        if job is None:
            self.stats.late += 1
            return
        if job.link != link.index:
            self.stats.dropped_foreign += 1   # the job lives on another broker now
            return
        if msg.cmd in (C.RESULT, C.ERROR):
            self._settle(job)
            del self._jobs[job.job_id]
        else:
            job.frames = None                 # output seen: no resubmission any more
        job.queue.put_nowait(msg)

    def _on_pong(self, link: _Link, body: pb.BrokerStatus, now: float) -> None:
        self.stats.pongs += 1
        instance = body.instance if body.HasField("instance") else 0
        if link.instance and instance and instance != link.instance:
            # another instance behind the same endpoint: it restarted, its jobs are gone
            self.stats.restarts += 1
            self._lost(link, "it restarted", now)
        link.instance = instance
        link.workers = body.workers
        for fut in link.pongs:
            if not fut.done():
                fut.set_result(body)
        link.pongs.clear()
        self._place_waiting(now)

    # ---- jobs

    def _submit(self, messages: str | Iterable[dict[str, Any]], targets: str | Iterable[str],
                policy: str, hedge_delay_ms: int | None, deadline_ms: int | None,
                ttft_timeout_ms: int | None, stream: bool, model: str | None,
                params: dict[str, Any]) -> _Job:
        tlist = as_targets(targets)
        if not tlist:
            raise BadRequest("no targets")
        if policy not in POLICIES:
            raise BadRequest(f"unknown policy {policy!r} (race, hedge or fallback)")
        self._start()
        assert self._loop is not None
        job_id = self._next_id
        self._next_id += 1
        request: dict[str, Any] = {"model": model or tlist[0], "messages": as_messages(messages)}
        request.update(params)
        if stream:
            request["stream"] = True
        body = pb.Job(job_id=job_id, targets=tlist, policy=POLICIES[policy], stream=stream)
        if hedge_delay_ms is not None:
            body.hedge_delay_ms = int(hedge_delay_ms)
        if deadline_ms is not None:
            body.deadline_ms = int(deadline_ms)
        if ttft_timeout_ms is not None:
            body.ttft_timeout_ms = int(ttft_timeout_ms)
        now = self._loop.time()
        wait_s = ((deadline_ms or self.default_deadline_ms) + self.grace_ms) / 1000.0
        frames = wire.encode(CLIENT_HEADER, C.SUBMIT, body, json.dumps(request).encode())
        job = _Job(job_id, now + wait_s, now, frames, wait_s)
        self._jobs[job_id] = job
        self.stats.submitted += 1
        if not self._place(job, now):
            self._npending += 1             # no live broker yet: the loop sends it soon
            self._poke()
        return job

    def _abandon(self, job: _Job) -> None:
        """Stop waiting for a job; tell its broker to cancel it if it is still running."""
        if job.final:
            return
        link = self._links[job.link] if job.link is not None else None
        self._settle(job)
        self._jobs.pop(job.job_id, None)
        if link is not None:
            self._send(link, wire.encode(CLIENT_HEADER, C.CANCEL, pb.JobRef(job_id=job.job_id)))

    async def _next(self, job: _Job) -> wire.Message:
        assert self._loop is not None
        while True:
            remaining = job.guard_at - self._loop.time()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                return await asyncio.wait_for(job.queue.get(), remaining)
            except asyncio.TimeoutError:
                if not job.final and job.guard_at > self._loop.time():
                    continue                # resubmitted meanwhile: the guard moved
                where = (self._links[job.link].endpoint if job.link is not None
                         else self.endpoint)
                self._abandon(job)
                raise Unavailable(f"no answer from broker {where} for job {job.job_id}",
                                  job_id=job.job_id) from None

    async def complete(self, messages: str | Iterable[dict[str, Any]], targets: str | Iterable[str],
                       policy: str = "race", hedge_delay_ms: int | None = None,
                       deadline_ms: int | None = None, ttft_timeout_ms: int | None = None,
                       model: str | None = None, **openai_params: Any) -> Completion:
        """Run one job and return its winning answer; raises an AigwError subclass on failure."""
        job = self._submit(messages, targets, policy, hedge_delay_ms, deadline_ms,
                           ttft_timeout_ms, False, model, openai_params)
        try:
            while True:
                msg = await self._next(job)
                if msg.cmd == C.RESULT:
                    return self._completion(job, msg.body, "")
                if msg.cmd == C.ERROR:
                    raise _error(msg.body)
        finally:
            self._abandon(job)

    def stream(self, messages: str | Iterable[dict[str, Any]], targets: str | Iterable[str],
               policy: str = "race", hedge_delay_ms: int | None = None,
               deadline_ms: int | None = None, ttft_timeout_ms: int | None = None,
               model: str | None = None, **openai_params: Any) -> "Stream":
        """Submit a streaming job; iterate the result for Chunks, then read .completion."""
        job = self._submit(messages, targets, policy, hedge_delay_ms, deadline_ms,
                           ttft_timeout_ms, True, model, openai_params)
        return Stream(self, job)

    def brokers(self) -> list[dict[str, Any]]:
        """Each broker as this client sees it now: endpoint, live, connected, instance,
        workers (its last PONG) and outstanding (our jobs it holds)."""
        now = self._loop.time() if self._loop is not None else 0.0
        return [{"endpoint": link.endpoint, "live": self._live(link, now),
                 "connected": link.connected, "instance": link.instance,
                 "workers": link.workers, "outstanding": link.routes} for link in self._links]

    async def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """PING every broker and wait up to `timeout` for their PONGs. Returns the merged
        BrokerStatus (see merge_status) with "brokers": each broker's own status (or
        "error"). Raises Unavailable when no broker answers."""
        self._start()
        assert self._loop is not None
        futs: list[asyncio.Future[pb.BrokerStatus]] = []
        for link in self._links:
            fut: asyncio.Future[pb.BrokerStatus] = self._loop.create_future()
            link.pongs.append(fut)
            futs.append(fut)
            if self._send(link, wire.encode(CLIENT_HEADER, C.PING)):
                self.stats.pings += 1
        try:
            await asyncio.wait(futs, timeout=timeout)
        finally:
            for link, fut in zip(self._links, futs):
                if fut in link.pongs:
                    link.pongs.remove(fut)
        per: list[dict[str, Any]] = []
        for link, fut in zip(self._links, futs):
            entry: dict[str, Any] = {"endpoint": link.endpoint}
            if not fut.done():
                fut.cancel()
                entry["error"] = f"no PONG within {timeout} s"
            elif fut.cancelled() or fut.exception() is not None:
                entry["error"] = "client closed"
            else:
                entry.update(status_dict(fut.result()))
            per.append(entry)
        if all("error" in e for e in per):
            raise Unavailable(f"broker {self.endpoint} did not answer PING within {timeout} s")
        return merge_status(per)

    def _completion(self, job: _Job, body: pb.Result, streamed: str) -> Completion:
        response: dict[str, Any] = {}
        if body.response_json:
            parsed: Any
            try:
                parsed = json.loads(body.response_json)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise UpstreamError("broker RESULT carries invalid response JSON", job_id=job.job_id,
                                    attempts=[Attempt.from_pb(a) for a in body.attempts])
            response = parsed
        content = response_text(response) if response else streamed
        model = body.model or str(response.get("model", ""))
        if not response:
            response = completion_dict(model, content, f"aigw-{job.job_id}")
        if body.HasField("latency_us"):
            latency_ms = body.latency_us / 1000.0
        else:
            assert self._loop is not None
            latency_ms = (self._loop.time() - job.started) * 1000.0
        usage: dict[str, int] = {}
        if body.HasField("usage"):
            usage = {"prompt_tokens": body.usage.prompt_tokens,
                     "completion_tokens": body.usage.completion_tokens}
        elif isinstance(response.get("usage"), dict):
            usage = response["usage"]
        return Completion(content=content, response=response, model=model,
                          attempts=[Attempt.from_pb(a) for a in body.attempts],
                          latency_ms=latency_ms, job_id=job.job_id, usage=usage)


class Stream:
    """Async iterator of Chunks for one streaming job; .completion is set when it ends.

    Cancelling the iterating task, or aclose() / leaving `async with` early, sends CANCEL.
    """

    def __init__(self, client: Client, job: _Job):
        self._client = client
        self._job = job
        self._parts: list[str] = []
        self._ended = False
        self.completion: Completion | None = None
        self.model = ""

    @property
    def job_id(self) -> int:
        return self._job.job_id

    def __aiter__(self) -> "Stream":
        return self

    async def __aenter__(self) -> "Stream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._ended = True
        self._client._abandon(self._job)

    async def __anext__(self) -> Chunk:
        if self._ended:
            raise StopAsyncIteration
        try:
            while True:
                msg = await self._client._next(self._job)
                if msg.cmd == C.CHUNK:
                    chunk = self._chunk(msg.body)
                    if chunk is not None:
                        return chunk
                elif msg.cmd == C.RESULT:
                    self._ended = True
                    self.completion = self._client._completion(self._job, msg.body,
                                                               "".join(self._parts))
                    raise StopAsyncIteration
                elif msg.cmd == C.ERROR:
                    self._ended = True
                    raise _error(msg.body)
        except BaseException:
            self._ended = True
            self._client._abandon(self._job)
            raise

    def _chunk(self, body: pb.Chunk) -> Chunk | None:
        try:
            data = json.loads(body.delta_json) if body.delta_json else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self._client.stats.malformed += 1
            return None
        if body.model:
            self.model = body.model
        text = chunk_text(data)
        self._parts.append(text)
        return Chunk(text=text, data=data, model=self.model,
                     seq=body.seq if body.HasField("seq") else None)

    def __del__(self) -> None:
        job, loop = self._job, self._client._loop
        if not job.final and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._client._abandon, job)


def _unavailable(job_id: int, why: str) -> wire.Message:
    """A synthesized ERROR(ERR_UNAVAILABLE) answer for a job."""
    err = pb.Error(job_id=job_id, code=pb.ERR_UNAVAILABLE, message=why)
    return wire.Message(CLIENT_HEADER, C.ERROR, err)


def _error(body: pb.Error) -> AigwError:
    return error_for(body.code, body.message, [Attempt.from_pb(a) for a in body.attempts],
                     job_id=body.job_id)


def _log_send_error(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("send to broker failed: %s", fut.exception())


def response_text(response: dict[str, Any]) -> str:
    """choices[0].message.content of an OpenAI chat.completion ("" if absent)."""
    try:
        content = response["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content if isinstance(content, str) else ""


def chunk_text(data: dict[str, Any]) -> str:
    """choices[0].delta.content of an OpenAI chat.completion.chunk ("" if absent)."""
    try:
        content = data["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content if isinstance(content, str) else ""


def completion_dict(model: str, content: str, cid: str, **extra: Any) -> dict[str, Any]:
    """A minimal OpenAI chat.completion object."""
    out: dict[str, Any] = {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
    }
    out.update(extra)
    return out


def status_dict(body: pb.BrokerStatus) -> dict[str, Any]:
    """BrokerStatus as plain Python values."""
    return {
        "broker_id": body.broker_id,
        "instance": body.instance,
        "workers": body.workers,
        "jobs_in_flight": body.jobs_in_flight,
        "models": [{"name": m.name, "workers": m.workers, "capacity": m.capacity,
                    "in_flight": m.in_flight, "queued": m.queued} for m in body.models],
    }


def merge_status(per: list[dict[str, Any]]) -> dict[str, Any]:
    """One view of several brokers' status dicts (entries with "error" did not answer).

    broker_id: the answering brokers' ids, comma separated; jobs_in_flight, and each
    model's in_flight and queued: summed (a job lives on one broker); workers, and each
    model's workers and capacity: the largest any broker reports (a worker registers with
    every broker, so a sum would count it once per broker). With one broker the values
    are that broker's own. "brokers" keeps every entry as it was."""
    ok = [e for e in per if "error" not in e]
    models: dict[str, dict[str, Any]] = {}
    for e in ok:
        for m in e["models"]:
            into = models.setdefault(m["name"], {"name": m["name"], "workers": 0, "capacity": 0,
                                                 "in_flight": 0, "queued": 0})
            into["workers"] = max(into["workers"], m["workers"])
            into["capacity"] = max(into["capacity"], m["capacity"])
            into["in_flight"] += m["in_flight"]
            into["queued"] += m["queued"]
    return {
        "broker_id": ", ".join(e["broker_id"] for e in ok if e["broker_id"]),
        "workers": max(e["workers"] for e in ok),
        "jobs_in_flight": sum(e["jobs_in_flight"] for e in ok),
        "models": list(models.values()),
        "brokers": per,
    }
