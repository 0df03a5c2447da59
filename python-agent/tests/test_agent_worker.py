"""WorkerBase against a fake broker backend: READY, heartbeats, TASK/CANCEL, reconnects."""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, AsyncIterator

import pytest
from fakebroker import FakeBroker

from aigw_agent import BadRequest, Client, TaskContext, WorkerBase
from aigw_agent._proto import pb
from aigw_agent.client import completion_dict
from aigw_agent.wire import C, W

pytestmark = pytest.mark.timeout(20)
REQ = {"model": "svc", "messages": [{"role": "user", "content": "hi"}]}


async def echo(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    text = request["messages"][-1]["content"]
    for word in ("echo:", " ", text):
        ctx.emit_text(word)
    ctx.emit_text("", finish_reason="stop")
    return completion_dict(ctx.target, f"echo: {text}", ctx.completion_id,
                           usage={"prompt_tokens": 1, "completion_tokens": 2})


@contextlib.asynccontextmanager
async def running(worker: WorkerBase) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        await worker.stop()


def make_worker(fb: FakeBroker, services: dict[str, Any] | None = None, **kw: Any) -> WorkerBase:
    opts: dict[str, Any] = dict(worker_id="w-test", capacity=4, heartbeat_ms=50, liveness=3,
                                backoff_initial=0.05, backoff_max=0.2)
    opts.update(kw)
    return WorkerBase(fb.backend, services if services is not None else {"svc": echo}, **opts)


async def test_ready_and_heartbeats() -> None:
    with FakeBroker() as fb:
        worker = make_worker(fb, {"agent/deliberate": echo, "agent/consensus": echo}, capacity=7)
        async with running(worker):
            ident, ready = await fb.expect_back(W.READY)
            hello = ready.body
            assert hello.worker_id == "w-test" and hello.capacity == 7
            assert list(hello.models) == ["agent/deliberate", "agent/consensus"]
            assert hello.pid > 0 and hello.version
            beats = []
            for _ in range(3):
                _, msg = await fb.recv_back(skip_heartbeats=False)
                assert msg.cmd == W.HEARTBEAT
                beats.append(msg.body)
                await fb.send_back(ident, W.HEARTBEAT)
            assert beats[-1].capacity == 7 and beats[-1].in_flight == 0
        _, bye = await fb.recv_back()
        assert bye.cmd == W.DISCONNECT          # stop() says goodbye
        assert worker.stats.connects == 1


async def test_task_result_and_stream_chunks() -> None:
    with FakeBroker() as fb:
        worker = make_worker(fb)
        async with running(worker):
            ident, _ = await fb.expect_back(W.READY)
            await fb.task(ident, 11, 21, "svc", REQ)
            _, res = await fb.expect_back(W.RESULT)      # not streaming: no chunks
            assert (res.body.job_id, res.body.attempt_id, res.body.model) == (11, 21, "svc")
            resp = json.loads(res.body.response_json)
            assert resp["choices"][0]["message"]["content"] == "echo: hi"
            assert res.body.usage.prompt_tokens == 1 and res.body.usage.completion_tokens == 2

            await fb.task(ident, 12, 22, "svc", REQ, stream=True)
            chunks = []
            while True:
                _, msg = await fb.recv_back()
                if msg.cmd != W.CHUNK:
                    break
                chunks.append(msg.body)
            assert msg.cmd == W.RESULT and msg.body.attempt_id == 22
            assert [c.seq for c in chunks] == [0, 1, 2, 3]
            deltas = [json.loads(c.delta_json)["choices"][0] for c in chunks]
            assert deltas[0]["delta"] == {"role": "assistant", "content": "echo:"}
            assert "".join(d["delta"]["content"] for d in deltas) == "echo: hi"
            assert deltas[-1]["finish_reason"] == "stop"
            assert all(json.loads(c.delta_json)["object"] == "chat.completion.chunk" for c in chunks)
        assert worker.stats.completed == 2


async def test_errors_become_error_replies() -> None:
    async def boom(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        raise ValueError("kaput")

    async def picky(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        raise BadRequest("no messages")

    async def nothing(request: dict[str, Any], ctx: TaskContext) -> Any:
        return "not a dict"

    async def slow(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    with FakeBroker() as fb:
        worker = make_worker(fb, {"boom": boom, "picky": picky, "nothing": nothing, "slow": slow})
        async with running(worker):
            ident, _ = await fb.expect_back(W.READY)
            cases = [("boom", pb.ERR_INTERNAL, "ValueError: kaput"),
                     ("picky", pb.ERR_BAD_REQUEST, "no messages"),
                     ("nothing", pb.ERR_INTERNAL, "no completion"),
                     ("unknown", pb.ERR_UNKNOWN_MODEL, "does not serve unknown")]
            for i, (target, code, text) in enumerate(cases):
                await fb.task(ident, 1, 100 + i, target, REQ)
                _, err = await fb.expect_back(W.ERROR)
                assert err.body.attempt_id == 100 + i
                assert err.body.code == code and text in err.body.message
            await fb.send_back(ident, W.TASK, pb.Task(job_id=1, attempt_id=200, target="boom"),
                               b"[1, 2]")
            _, err = await fb.expect_back(W.ERROR)
            assert err.body.code == pb.ERR_BAD_REQUEST
            await fb.task(ident, 1, 201, "slow", REQ, deadline_ms=50)
            _, err = await fb.expect_back(W.ERROR)
            assert err.body.code == pb.ERR_TIMEOUT and err.body.attempt_id == 201
        assert worker.stats.failed == 4 and worker.stats.rejected == 2


async def test_capacity_limit_and_cancel() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def hold(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        started.append(ctx.attempt_id)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(ctx.attempt_id)
            raise
        return {}

    with FakeBroker() as fb:
        worker = make_worker(fb, {"hold": hold}, capacity=2)
        async with running(worker):
            ident, _ = await fb.expect_back(W.READY)
            for aid in (1, 2, 3):
                await fb.task(ident, 9, aid, "hold", REQ)
            _, err = await fb.expect_back(W.ERROR)
            assert err.body.attempt_id == 3 and err.body.code == pb.ERR_OVERLOADED
            await _until(lambda: len(started) == 2)
            assert worker.in_flight == 2
            # CANCEL frees the slot at once: a TASK right behind it is accepted
            await fb.send_back(ident, W.CANCEL, pb.AttemptRef(attempt_id=1))
            await fb.task(ident, 9, 4, "hold", REQ)
            _, ack = await fb.expect_back(W.ERROR)
            assert ack.body.attempt_id == 1 and ack.body.code == pb.ERR_CANCELLED
            assert cancelled == [1]
            await _until(lambda: 4 in started)
            # CANCEL for an unknown attempt is ignored
            await fb.send_back(ident, W.CANCEL, pb.AttemptRef(attempt_id=999))
            _, hb = await fb.recv_back(skip_heartbeats=False)
            assert hb.cmd == W.HEARTBEAT and hb.body.in_flight == 2 and hb.body.cancelled == 1
        assert worker.stats.cancelled == 1 and worker.stats.rejected == 1


async def test_disconnect_makes_worker_register_again() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hold(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    with FakeBroker() as fb:
        worker = make_worker(fb, {"hold": hold})
        async with running(worker):
            ident1, _ = await fb.expect_back(W.READY)
            await fb.task(ident1, 1, 1, "hold", REQ)
            await asyncio.wait_for(started.wait(), 5)
            await fb.send_back(ident1, W.DISCONNECT)
            ident2, ready = await fb.expect_back(W.READY)     # new socket, new routing id
            assert ident2 != ident1 and ready.body.worker_id == "w-test"
            await asyncio.wait_for(cancelled.wait(), 5)        # in-flight work was aborted
            assert worker.in_flight == 0 and worker.stats.cancelled == 0  # no ack on a lost link
            await fb.task(ident2, 2, 2, "hold", REQ)
            await _until(lambda: worker.in_flight == 1)
        assert worker.stats.connects == 2


async def test_broker_restart_seen_in_heartbeat_reregisters() -> None:
    """A HEARTBEAT with another BrokerBeat.instance: the attempts for the old broker are
    cancelled without a reply and READY goes out at once on the same socket."""
    started: list[int] = []
    cancelled: list[int] = []

    async def hold(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        started.append(ctx.attempt_id)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(ctx.attempt_id)
            raise
        return {}

    with FakeBroker() as fb:
        worker = make_worker(fb, {"hold": hold, "svc": echo}, liveness=40)
        async with running(worker):
            ident, _ = await fb.expect_back(W.READY)
            await fb.send_back(ident, W.HEARTBEAT)                  # an older broker: empty
            await fb.send_back(ident, W.HEARTBEAT, pb.BrokerBeat(instance=1))
            await fb.task(ident, 1, 1, "hold", REQ)
            await _until(lambda: started == [1])
            await fb.send_back(ident, W.HEARTBEAT, pb.BrokerBeat(instance=1))   # same one
            await fb.send_back(ident, W.HEARTBEAT, pb.BrokerBeat(instance=2))
            ident2, ready = await fb.expect_back(W.READY)
            assert ident2 == ident and ready.body.worker_id == "w-test"   # same socket
            await _until(lambda: cancelled == [1])
            assert worker.in_flight == 0
            # the new broker's ids start again: attempt 1 is a new attempt, answered
            await fb.task(ident, 7, 1, "svc", REQ)
            _, res = await fb.expect_back(W.RESULT)      # no ERROR for the old attempt 1
            assert (res.body.job_id, res.body.attempt_id) == (7, 1)
        assert worker.stats.restarts == 1 and worker.stats.orphaned == 1
        assert worker.stats.connects == 1 and worker.stats.cancelled == 0


async def test_silent_broker_means_reconnect_with_backoff() -> None:
    with FakeBroker() as fb:
        worker = make_worker(fb, heartbeat_ms=40, liveness=2, backoff_initial=0.05,
                             backoff_max=0.2)
        loop = asyncio.get_running_loop()
        async with running(worker):
            times = []
            idents = set()
            for _ in range(4):
                ident, _ = await fb.expect_back(W.READY)
                times.append(loop.time())
                idents.add(ident)
            gaps = [b - a for a, b in zip(times, times[1:])]
        # each gap = 2 silent intervals (80 ms) + back-off (50, 100, 200 ms: doubling, capped);
        # only lower bounds are asserted (a loaded machine only makes gaps longer)
        assert len(idents) == 4
        assert gaps[0] >= 0.12 and gaps[1] >= 0.17 and gaps[2] >= 0.27
        assert worker.stats.connects >= 4


async def test_malformed_messages_are_counted() -> None:
    with FakeBroker() as fb:
        worker = make_worker(fb)
        async with running(worker):
            ident, _ = await fb.expect_back(W.READY)
            bad = [[b"garbage"], [b"AIGWC1", b"\x07", b"", b"{}"], [b"AIGWW1", b"\x07", b"\x01"],
                   [b"AIGWW1", b"\x07", pb.Task(job_id=1, attempt_id=1, target="svc")
                    .SerializeToString()],                               # no payload
                   [b"AIGWW1", b"\x04", b""], [b"AIGWW1", b"\x08", b""], [b"AIGWW1"]]
            for frames in bad:
                await fb.back.send_multipart([ident] + frames)
            await fb.task(ident, 5, 6, "svc", REQ)
            _, res = await fb.expect_back(W.RESULT)
            assert res.body.attempt_id == 6
            assert worker.stats.malformed == len(bad)
            assert worker.stats.connects == 1


async def test_cancel_cascades_to_sub_jobs() -> None:
    """CANCEL of an agent attempt cancels the handler and every sub-job it awaits."""
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            async def fan_out(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
                await asyncio.gather(client.complete("a", targets=["m1"]),
                                     client.complete("b", targets=["m2"]))
                return {}

            worker = make_worker(fb, {"agent/x": fan_out})
            async with running(worker):
                ident, _ = await fb.expect_back(W.READY)
                await fb.task(ident, 1, 1, "agent/x", REQ)
                subs = {(await fb.expect_front(C.SUBMIT))[1].body.job_id for _ in range(2)}
                await fb.send_back(ident, W.CANCEL, pb.AttemptRef(attempt_id=1))
                cancels = {(await fb.expect_front(C.CANCEL))[1].body.job_id for _ in range(2)}
                assert cancels == subs
                _, ack = await fb.expect_back(W.ERROR)
                assert ack.body.code == pb.ERR_CANCELLED


async def _until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < end, "condition not met in time"
        await asyncio.sleep(0.01)
