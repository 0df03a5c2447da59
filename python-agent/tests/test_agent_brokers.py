"""Several brokers, all active: the Client and WorkerBase against two fake brokers.

The client spreads jobs over the live brokers, notices a broker lost (disconnect, a new
instance in PONG), resubmits once the jobs that received nothing yet, fails the others,
and drops answers from a broker that no longer holds the job. The worker shares one
capacity across its brokers and loses only the lost broker's attempts. Every wait is on
a message, an event or a counter, bounded by a timeout; nothing sleeps to synchronise.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable

import pytest
from fakebroker import FakeBroker, chunk_body

from aigw_agent import Client, TaskContext, Unavailable, WorkerBase
from aigw_agent._proto import pb
from aigw_agent.client import completion_dict
from aigw_agent.config import ConfigError, load_config, parse_endpoints
from aigw_agent.wire import C, W

pytestmark = pytest.mark.timeout(30)
REQ = {"model": "svc", "messages": [{"role": "user", "content": "hi"}]}


async def _until(pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < end, f"{what}: not met in time"
        await asyncio.sleep(0.005)


def client_for(*fbs: FakeBroker, **kw: Any) -> Client:
    opts: dict[str, Any] = dict(heartbeat_ms=50, liveness=3)
    opts.update(kw)
    return Client([fb.frontend for fb in fbs], **opts)


async def all_live(client: Client) -> None:
    await _until(lambda: all(b["live"] for b in client.brokers()), what="every broker live")


async def submits(fb: FakeBroker, n: int) -> list[tuple[bytes, Any]]:
    out = []
    for _ in range(n):
        out.append(await fb.expect_front(C.SUBMIT))
    return out


async def nothing_more(fb: FakeBroker, timeout: float = 0.2) -> None:
    """No further message reaches fb's frontend (bounded wait for a negative)."""
    with pytest.raises(asyncio.TimeoutError):
        ident, msg = await fb.recv_front(timeout=timeout)
        raise AssertionError(f"unexpected {msg.name}")


# ---- config

def test_broker_lists_in_config(tmp_path: Any) -> None:
    assert parse_endpoints("tcp://a:1, tcp://b:2 tcp://c:3") == ["tcp://a:1", "tcp://b:2",
                                                                 "tcp://c:3"]
    assert parse_endpoints(["tcp://a:1", "tcp://b:2, ipc:///x"]) == ["tcp://a:1", "tcp://b:2",
                                                                     "ipc:///x"]
    for bad, why in ((", ,", "got none"), ("tcp://a:1, a:2", "expected a zmq endpoint"),
                     ("tcp://a:1, tcp://a:1", "listed twice"),
                     (", ".join(f"tcp://h:{i}" for i in range(9)), "more than 8 brokers")):
        with pytest.raises(ConfigError, match=why):
            parse_endpoints(bad)
    main = tmp_path / "aigw.conf"
    main.write_text("broker\n    frontend = tcp://10.0.0.1:1\n    backend = tcp://10.0.0.1:2\n"
                    "edge\n    broker = \"tcp://10.0.0.1:1, tcp://10.0.0.2:1\"\n"
                    "worker\n    broker = \"tcp://10.0.0.1:2, tcp://10.0.0.2:2\"\n")
    cfg = load_config(main)
    assert cfg.frontends == ["tcp://10.0.0.1:1", "tcp://10.0.0.2:1"]   # as the edge
    assert cfg.backends == ["tcp://10.0.0.1:2", "tcp://10.0.0.2:2"]    # as a worker
    agent = tmp_path / "agent.conf"
    agent.write_text("agent\n    frontend = \"tcp://x:1,tcp://y:1\"\n    backend = tcp://x:2\n")
    cfg = load_config(main, agent)
    assert cfg.frontends == ["tcp://x:1", "tcp://y:1"] and cfg.backends == ["tcp://x:2"]
    agent.write_text("agent\n    backend = \"tcp://x:2, tcp://x:2\"\n")
    with pytest.raises(ConfigError, match=r"agent\.conf: agent/backend: tcp://x:2 is listed twice"):
        load_config(main, agent)
    main.write_text("worker\n    broker = \"" + ", ".join(f"tcp://h:{i}" for i in range(9))
                    + "\"\n")
    with pytest.raises(ConfigError, match="worker/broker: more than 8 brokers"):
        load_config(main)
    with pytest.raises(ConfigError, match="Client endpoint"):
        Client("tcp://a:1, nowhere")
    with pytest.raises(ConfigError, match="WorkerBase endpoint"):
        WorkerBase([])


# ---- client

async def test_client_spreads_jobs_over_two_brokers() -> None:
    with FakeBroker(broker_id="b1") as fb1, FakeBroker(broker_id="b2") as fb2:
        async with client_for(fb1, fb2) as client:
            await all_live(client)
            assert {b["instance"] for b in client.brokers()} == {fb1.instance, fb2.instance}
            tasks = [asyncio.create_task(client.complete(f"q{i}", targets=["m"]))
                     for i in range(4)]
            got1, got2 = await submits(fb1, 2), await submits(fb2, 2)
            assert [b["outstanding"] for b in client.brokers()] == [2, 2]
            for ident, msg in got1:
                await fb1.result(ident, msg.body.job_id, f"b1:{msg.body.job_id}")
            await _until(lambda: client.brokers()[0]["outstanding"] == 0, what="fb1 answered")
            # fb2 still holds two jobs, fb1 none: the next two both go to fb1
            tasks += [asyncio.create_task(client.complete("more", targets=["m"]))
                      for _ in range(2)]
            got1 = await submits(fb1, 2)
            await nothing_more(fb2)
            assert [b["outstanding"] for b in client.brokers()] == [2, 2]
            for fb, got in ((fb1, got1), (fb2, got2)):
                for ident, msg in got:
                    await fb.result(ident, msg.body.job_id, f"{fb.broker_id}:{msg.body.job_id}")
            answers = [c.content for c in await asyncio.gather(*tasks)]
            assert sorted(a.split(":")[0] for a in answers) == ["b1"] * 4 + ["b2"] * 2
            status = await client.status()
            assert status["broker_id"] == "b1, b2" and len(status["brokers"]) == 2
            assert [b["outstanding"] for b in client.brokers()] == [0, 0]


async def test_broker_without_workers_is_used_only_when_alone() -> None:
    with FakeBroker(workers=0) as fb1, FakeBroker() as fb2:
        async with client_for(fb1, fb2) as client:
            await all_live(client)
            tasks = [asyncio.create_task(client.complete("q", targets=["m"])) for _ in range(3)]
            got = await submits(fb2, 3)            # all on the broker with workers
            await nothing_more(fb1)
            fb2.kill()
            await _until(lambda: not client.brokers()[1]["live"], what="fb2 lost")
            # nothing was received: each waits for a broker with workers, none comes,
            # and after heartbeat x liveness they fail
            for t in tasks:
                with pytest.raises(Unavailable, match="lost the connection"):
                    await t
            assert client.stats.failed_on_loss == 3 and client.stats.resubmitted == 0
            # a new job goes to the broker without workers: it is the only live one
            task = asyncio.create_task(client.complete("q", targets=["m"]))
            ident, msg = await fb1.expect_front(C.SUBMIT)
            await fb1.result(ident, msg.body.job_id, "from the lone broker")
            assert (await task).content == "from the lone broker"
            del got


async def test_killed_broker_jobs_are_resubmitted_once_and_answered_once() -> None:
    with FakeBroker(broker_id="b1") as fb1, FakeBroker(broker_id="b2") as fb2:
        async with client_for(fb1, fb2) as client:
            await all_live(client)
            tasks = [asyncio.create_task(client.complete(f"q{i}", targets=["m"]))
                     for i in range(4)]
            on1, on2 = await submits(fb1, 2), await submits(fb2, 2)
            fb1.kill()                                  # kill -9: the connection drops
            moved = await submits(fb2, 2)               # the same jobs, same ids, on fb2
            assert {m.body.job_id for _, m in moved} == {m.body.job_id for _, m in on1}
            assert all(m.payload == o.payload for (_, m), (_, o) in
                       zip(sorted(moved, key=lambda x: x[1].body.job_id),
                           sorted(on1, key=lambda x: x[1].body.job_id)))
            for ident, msg in on2 + moved:
                await fb2.result(ident, msg.body.job_id, f"answer {msg.body.job_id}")
                await fb2.result(ident, msg.body.job_id, "a second answer is never seen")
            results = await asyncio.gather(*tasks)
            assert sorted(r.content for r in results) == sorted(
                f"answer {m.body.job_id}" for _, m in on1 + on2)
            await _until(lambda: client.stats.late == 4, what="the duplicates counted late")
            await nothing_more(fb2)                     # nothing was sent a third time
            s = client.stats
            assert (s.brokers_lost, s.resubmitted, s.failed_on_loss) == (1, 2, 0)


async def test_restarted_broker_gets_its_jobs_back_once() -> None:
    """One broker, killed and started again on the same port with a new instance: the
    job that had received nothing is resubmitted to it, once, and answered once."""
    with FakeBroker() as fb:
        async with client_for(fb, liveness=40) as client:   # silence cannot be the cause
            await all_live(client)
            first = fb.instance
            task = asyncio.create_task(client.complete("q", targets=["m"]))
            _, sub = await fb.expect_front(C.SUBMIT)
            await fb.restart()
            ident, again = await fb.expect_front(C.SUBMIT)
            assert again.body.job_id == sub.body.job_id and again.payload == sub.payload
            await _until(lambda: client.brokers()[0]["instance"] == fb.instance != first,
                         what="the new instance seen")
            await fb.result(ident, again.body.job_id, "after the restart")
            assert (await task).content == "after the restart"
            assert client.stats.resubmitted == 1 and client.stats.brokers_lost == 1


async def test_new_instance_behind_the_same_connection_is_a_restart() -> None:
    with FakeBroker() as fb:
        async with client_for(fb, liveness=40) as client:
            await all_live(client)
            task = asyncio.create_task(client.complete("q", targets=["m"]))
            _, sub = await fb.expect_front(C.SUBMIT)
            fb.new_instance()                      # its next PONG shows the new instance
            ident, again = await fb.expect_front(C.SUBMIT)
            assert again.body.job_id == sub.body.job_id
            await fb.result(ident, again.body.job_id, "fine")
            assert (await task).content == "fine"
            assert client.stats.restarts == 1 and client.stats.resubmitted == 1


async def test_a_job_is_resubmitted_only_once() -> None:
    with FakeBroker() as fb1, FakeBroker(workers=0) as fb2, FakeBroker(workers=0) as fb3:
        async with client_for(fb1, fb2, fb3) as client:
            await all_live(client)
            task = asyncio.create_task(client.complete("q", targets=["m"]))
            await fb1.expect_front(C.SUBMIT)       # the only broker with workers
            fb2.workers = 1
            await _until(lambda: client.brokers()[1]["workers"] == 1, what="fb2's workers")
            fb1.kill()
            await fb2.expect_front(C.SUBMIT)
            fb3.workers = 1
            await _until(lambda: client.brokers()[2]["workers"] == 1, what="fb3's workers")
            fb2.kill()                               # its second broker goes too
            with pytest.raises(Unavailable, match="lost the connection to the broker"):
                await task
            await nothing_more(fb3)                  # not a second resubmission
            assert client.stats.resubmitted == 1 and client.stats.failed_on_loss == 1


async def test_streaming_job_that_received_a_chunk_fails_cleanly() -> None:
    with FakeBroker() as fb1, FakeBroker() as fb2:
        async with client_for(fb1, fb2) as client:
            await all_live(client)
            stream = client.stream("q", targets=["m"])
            got = asyncio.ensure_future(asyncio.wait(
                [asyncio.ensure_future(fb.expect_front(C.SUBMIT)) for fb in (fb1, fb2)],
                return_when=asyncio.FIRST_COMPLETED))
            done, pending = await got
            for p in pending:
                p.cancel()
            ident, msg = done.pop().result()
            holder, other = ((fb1, fb2) if client.brokers()[0]["outstanding"] else (fb2, fb1))
            await holder.send_front(ident, C.CHUNK, chunk_body(msg.body.job_id, "Hel", 0))
            assert (await stream.__anext__()).text == "Hel"
            holder.kill()
            with pytest.raises(Unavailable, match="lost the connection to the broker"):
                await stream.__anext__()
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
            await nothing_more(other)                # never resubmitted: output was seen
            assert client.stats.resubmitted == 0 and client.stats.failed_on_loss == 1


async def test_answer_from_a_broker_that_no_longer_holds_the_job_is_dropped() -> None:
    with FakeBroker(broker_id="old") as fb1, FakeBroker(broker_id="new", workers=0) as fb2:
        async with client_for(fb1, fb2, liveness=40) as client:
            await all_live(client)
            task = asyncio.create_task(client.complete("q", targets=["m"]))
            ident1, sub = await fb1.expect_front(C.SUBMIT)
            fb2.workers = 1
            fb1.workers = 0
            fb1.new_instance()                       # fb1 "restarted", its socket stays
            ident2, again = await fb2.expect_front(C.SUBMIT)
            assert again.body.job_id == sub.body.job_id
            await fb1.result(ident1, sub.body.job_id, "from the broker that lost it")
            await fb1.send_front(ident1, C.CHUNK, chunk_body(sub.body.job_id, "x", 0))
            await _until(lambda: client.stats.dropped_foreign == 2, what="foreign answers")
            assert not task.done()
            await fb2.result(ident2, again.body.job_id, "from the broker that holds it")
            assert (await task).content == "from the broker that holds it"


async def test_job_waits_for_a_broker_then_fails() -> None:
    """No broker live (it never answers PING): a job waits heartbeat x liveness for one,
    then fails with Unavailable; once the broker answers, jobs go to it."""
    with FakeBroker(auto_pong=False) as fb:
        async with client_for(fb) as client:
            with pytest.raises(Unavailable, match="no live broker"):
                await client.complete("q", targets=["m"])
            assert client.stats.failed_on_loss == 1
            fb.auto_pong = True
            await all_live(client)
            task = asyncio.create_task(client.complete("q", targets=["m"]))
            while True:                        # skip the PINGs queued while it was mute
                ident, msg = await fb.recv_front()
                if msg.cmd != C.PING:
                    break
            assert msg.cmd == C.SUBMIT
            await fb.result(ident, msg.body.job_id, "late but fine")
            assert (await task).content == "late but fine"


# ---- worker

class Holder:
    """A service that runs until released, recording how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: list[tuple[str, int]] = []
        self.cancelled: list[tuple[str, int]] = []
        self.release = asyncio.Event()

    async def __call__(self, request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append((ctx.broker, ctx.attempt_id))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append((ctx.broker, ctx.attempt_id))
            raise
        finally:
            self.running -= 1
        return completion_dict(ctx.target, "held", ctx.completion_id)


@contextlib.asynccontextmanager
async def running(worker: WorkerBase) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        await worker.stop()


def worker_for(hold: Holder, *fbs: FakeBroker, **kw: Any) -> WorkerBase:
    opts: dict[str, Any] = dict(worker_id="w-two", capacity=1, heartbeat_ms=50, liveness=40,
                                backoff_initial=0.05, backoff_max=0.2)
    opts.update(kw)
    return WorkerBase([fb.backend for fb in fbs], {"svc": hold}, **opts)


async def capacity_update(fb: FakeBroker, capacity: int) -> pb.WorkerStats:
    """The next HEARTBEAT to fb that offers `capacity`."""
    while True:
        _, msg = await fb.recv_back(skip_heartbeats=False)
        if msg.cmd == W.HEARTBEAT and msg.body.capacity == capacity:
            return msg.body


async def test_worker_capacity_one_on_two_brokers_never_runs_two() -> None:
    hold = Holder()
    with FakeBroker() as fb1, FakeBroker() as fb2:
        worker = worker_for(hold, fb1, fb2)
        async with running(worker):
            id1, r1 = await fb1.expect_back(W.READY)
            id2, r2 = await fb2.expect_back(W.READY)
            assert r1.body.capacity == r2.body.capacity == 1
            await fb1.task(id1, 1, 10, "svc", REQ)
            await _until(lambda: len(hold.started) == 1, what="the first task")
            hb = await capacity_update(fb2, 0)            # fb2's share is gone
            assert hb.in_flight == 0
            await fb2.task(id2, 2, 20, "svc", REQ)        # it sends one anyway
            _, err = await fb2.expect_back(W.ERROR)
            assert err.body.attempt_id == 20 and err.body.code == pb.ERR_OVERLOADED
            assert err.body.message == "worker full"
            assert worker.in_flight == 1 and worker.stats.full == 1
            hold.release.set()
            _, res = await fb1.expect_back(W.RESULT)
            assert res.body.attempt_id == 10
            await capacity_update(fb2, 1)                 # the slot is offered again
            await fb2.task(id2, 3, 21, "svc", REQ)
            _, res = await fb2.expect_back(W.RESULT)
            assert res.body.attempt_id == 21
        assert hold.most == 1 and worker.stats.tasks == 2
        assert worker.stats.capacity_updates >= 2


async def test_worker_loses_only_the_lost_brokers_attempts() -> None:
    hold = Holder()
    with FakeBroker() as fb1, FakeBroker() as fb2:
        worker = worker_for(hold, fb1, fb2, capacity=4)
        async with running(worker):
            id1, _ = await fb1.expect_back(W.READY)
            id2, _ = await fb2.expect_back(W.READY)
            await fb1.task(id1, 1, 7, "svc", REQ)
            await fb2.task(id2, 1, 7, "svc", REQ)         # the same ids from each broker
            await fb2.task(id2, 2, 8, "svc", REQ)
            await _until(lambda: len(hold.started) == 3, what="three tasks")
            await fb1.restart()                           # killed and back at once
            id1b, ready = await fb1.expect_back(W.READY)  # a new socket, READY at once
            assert ready.body.capacity == 2               # 4 less fb2's two
            assert hold.cancelled == [(fb1.backend, 7)]
            assert worker.in_flight_of(fb2.backend) == 2 and worker.in_flight_of(fb1.backend) == 0
            # fb2 restarts behind its connection: a new instance in its HEARTBEAT
            await fb2.beat(id2)
            await fb2.beat(id2, instance=fb2.new_instance())
            _, ready2 = await fb2.expect_back(W.READY)
            assert ready2.body.capacity == 4
            await _until(lambda: len(hold.cancelled) == 3, what="fb2's attempts dropped")
            assert worker.in_flight == 0
            await fb1.task(id1b, 3, 9, "svc", REQ)
            await _until(lambda: len(hold.started) == 4, what="a new task on fb1")
            hold.release.set()
            _, res = await fb1.expect_back(W.RESULT)
            assert res.body.attempt_id == 9
        s = worker.stats
        assert (s.orphaned, s.restarts, s.lost_disconnected) == (3, 1, 1)
