"""Client of the broker frontend: submit jobs (race/hedge/fallback), await or stream answers.

One DEALER socket, one background receive task that routes CHUNK/RESULT/ERROR by job_id
to per-job queues and PONG to pending status() calls (SPEND, usage settled after a job's
answer, is for billing clients such as the edge and is ignored here). Cancelling a task
that awaits complete() or iterates a Stream sends CANCEL(job_id) to the broker.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import zmq
import zmq.asyncio

from . import curve as _curve
from . import wire
from ._proto import pb
from .errors import AigwError, Attempt, BadRequest, Unavailable, UpstreamError, error_for
from .wire import CLIENT_HEADER, C

log = logging.getLogger("aigw_agent.client")

POLICIES = {"race": pb.POLICY_RACE, "hedge": pb.POLICY_HEDGE, "fallback": pb.POLICY_FALLBACK}


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
    malformed: int = 0            # messages from the broker dropped as malformed
    late: int = 0                 # answers for jobs nobody waits for (cancelled, timed out)


class _Job:
    def __init__(self, job_id: int, guard_at: float, started: float):
        self.job_id = job_id
        self.queue: asyncio.Queue[wire.Message] = asyncio.Queue()
        self.guard_at = guard_at  # loop time after which we stop waiting for the broker
        self.started = started
        self.final = False        # RESULT/ERROR received, or job abandoned


def as_messages(messages: str | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return list(messages)


def as_targets(targets: str | Iterable[str]) -> list[str]:
    if isinstance(targets, str):
        targets = targets.split(",")
    return [t.strip() for t in targets if t and t.strip()]


class Client:
    """DEALER to the broker frontend. Create and use inside a running event loop."""

    def __init__(self, endpoint: str, *, context: zmq.asyncio.Context | None = None,
                 max_frame: int = wire.DEFAULT_MAX_FRAME, default_deadline_ms: int = 120000,
                 grace_ms: int = 5000, close_linger_ms: int = 0,
                 curve: _curve.CurveKeys | None = None):
        self.endpoint = endpoint
        self.curve = curve                # CURVE client keys (None: plain, fabric/curve = off)
        self.close_linger_ms = close_linger_ms  # how long close() lets queued CANCELs go out
        self.max_frame = max_frame
        self.default_deadline_ms = default_deadline_ms
        self.grace_ms = grace_ms          # extra wait beyond the deadline before giving up locally
        self.stats = ClientStats()
        self._ctx = context or zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = None
        self._recv_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: dict[int, _Job] = {}
        self._pings: collections.deque[asyncio.Future[pb.BrokerStatus]] = collections.deque()
        self._next_id = 1
        self._warned = False

    async def __aenter__(self) -> "Client":
        self._start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _start(self) -> None:
        if self._sock is not None:
            return
        self._loop = asyncio.get_running_loop()
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_frame)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        _curve.apply(sock, self.curve)
        sock.connect(self.endpoint)
        self._sock = sock
        self._recv_task = self._loop.create_task(self._recv_loop(sock))

    async def close(self) -> None:
        """Close the socket; jobs still waiting fail with Unavailable."""
        task, sock = self._recv_task, self._sock
        self._recv_task, self._sock = None, None
        if task:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if sock:
            sock.close(linger=self.close_linger_ms)
        self._fail_all("client closed")

    def _fail_all(self, why: str) -> None:
        for job in list(self._jobs.values()):
            job.final = True
            err = pb.Error(job_id=job.job_id, code=pb.ERR_UNAVAILABLE, message=why)
            job.queue.put_nowait(wire.Message(CLIENT_HEADER, C.ERROR, err))
        self._jobs.clear()
        while self._pings:
            fut = self._pings.popleft()
            if not fut.done():
                fut.set_exception(Unavailable(why))

    def _send(self, frames: list[bytes]) -> None:
        """Queue one message without waiting (keeps order; errors are logged)."""
        if self._sock is None:
            return
        fut = asyncio.ensure_future(self._sock.send_multipart(frames))
        fut.add_done_callback(_log_send_error)

    async def _recv_loop(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                frames = await sock.recv_multipart(copy=True)
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError as e:
                log.error("broker link %s failed: %s", self.endpoint, e)
                self._fail_all(f"broker link failed: {e}")
                return
            self._dispatch(frames)

    def _dispatch(self, frames: list[bytes]) -> None:
        msg, why = wire.parse(frames, CLIENT_HEADER, to_broker=False, max_frame=self.max_frame)
        if msg is None:
            self.stats.malformed += 1
            if not self._warned:
                log.warning("dropping malformed message from broker %s: %s", self.endpoint, why)
                self._warned = True
            return
        if msg.cmd == C.PONG:
            while self._pings:
                fut = self._pings.popleft()
                if not fut.done():
                    fut.set_result(msg.body)
                    break
            return
        if msg.cmd == C.SPEND:
            return  # late usage of a job's loser: not an answer, nothing to route
        job = self._jobs.get(msg.body.job_id)
        if job is None:
            self.stats.late += 1
            return
        if msg.cmd in (C.RESULT, C.ERROR):
            job.final = True
            del self._jobs[job.job_id]
        job.queue.put_nowait(msg)

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
        wait_ms = (deadline_ms or self.default_deadline_ms) + self.grace_ms
        job = _Job(job_id, now + wait_ms / 1000.0, now)
        self._jobs[job_id] = job
        self.stats.submitted += 1
        self._send(wire.encode(CLIENT_HEADER, C.SUBMIT, body, json.dumps(request).encode()))
        return job

    def _abandon(self, job: _Job) -> None:
        """Stop waiting for a job; tell the broker to cancel it if it is still running."""
        if job.final:
            return
        job.final = True
        self._jobs.pop(job.job_id, None)
        self._send(wire.encode(CLIENT_HEADER, C.CANCEL, pb.JobRef(job_id=job.job_id)))

    async def _next(self, job: _Job) -> wire.Message:
        assert self._loop is not None
        remaining = job.guard_at - self._loop.time()
        try:
            if remaining <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(job.queue.get(), remaining)
        except asyncio.TimeoutError:
            self._abandon(job)
            raise Unavailable(f"no answer from broker {self.endpoint} for job {job.job_id}",
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

    async def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """PING the broker; returns its BrokerStatus as a dict. Raises Unavailable on silence."""
        self._start()
        assert self._loop is not None
        fut: asyncio.Future[pb.BrokerStatus] = self._loop.create_future()
        self._pings.append(fut)
        self._send(wire.encode(CLIENT_HEADER, C.PING))
        try:
            body = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"broker {self.endpoint} did not answer PING within {timeout} s") from None
        finally:
            if fut in self._pings:
                self._pings.remove(fut)
        return status_dict(body)

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
        "workers": body.workers,
        "jobs_in_flight": body.jobs_in_flight,
        "models": [{"name": m.name, "workers": m.workers, "capacity": m.capacity,
                    "in_flight": m.in_flight, "queued": m.queued} for m in body.models],
    }
