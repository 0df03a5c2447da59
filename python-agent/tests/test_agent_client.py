"""Client against a fake broker frontend: results, typed errors, streams, cancel, status."""
from __future__ import annotations

import asyncio
import json

import pytest
from fakebroker import FakeBroker, chunk_body

from aigw_agent import (AigwError, BadRequest, Cancelled, Client, DeadlineExceeded, Overloaded,
                        Unavailable, UnknownModel, UpstreamError)
from aigw_agent._proto import pb
from aigw_agent.wire import C

pytestmark = pytest.mark.timeout(20)


def attempt(aid: int, target: str, outcome: int, **kw: object) -> pb.AttemptInfo:
    return pb.AttemptInfo(attempt_id=aid, target=target, outcome=outcome, **kw)


async def test_complete_returns_completion() -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            task = asyncio.create_task(client.complete(
                "Hello", targets=["fast-sim", "slow-sim"], policy="hedge", hedge_delay_ms=40,
                deadline_ms=2000, temperature=0.2))
            ident, msg = await fb.expect_front(C.SUBMIT)
            job = msg.body
            assert list(job.targets) == ["fast-sim", "slow-sim"]
            assert job.policy == pb.POLICY_HEDGE and job.hedge_delay_ms == 40
            assert job.deadline_ms == 2000 and not job.HasField("ttft_timeout_ms")
            assert not job.stream
            request = json.loads(msg.payload)
            assert request == {"model": "fast-sim", "temperature": 0.2,
                               "messages": [{"role": "user", "content": "Hello"}]}
            await fb.result(ident, job.job_id, "Hi there", model="fast-sim", attempts=[
                attempt(1, "fast-sim", pb.OUTCOME_WON, worker="w1", started_us=100,
                        finished_us=41000),
                attempt(2, "slow-sim", pb.OUTCOME_CANCELLED, worker="w2", started_us=40100)])
            c = await task
    assert c.content == "Hi there" and c.model == "fast-sim" and c.latency_ms == 12.345
    assert c.response["object"] == "chat.completion"
    assert c.usage == {"prompt_tokens": 3, "completion_tokens": 5}
    assert [(a.target, a.outcome, a.worker) for a in c.attempts] == [
        ("fast-sim", "won", "w1"), ("slow-sim", "cancelled", "w2")]
    assert c.attempts[0].started_ms == 0.1 and c.attempts[0].finished_ms == 41.0
    assert c.attempts[1].finished_ms is None


@pytest.mark.parametrize("code,cls", [
    (pb.ERR_UPSTREAM, UpstreamError), (pb.ERR_TTFT, UpstreamError),
    (pb.ERR_WORKER_LOST, UpstreamError), (pb.ERR_TIMEOUT, DeadlineExceeded),
    (pb.ERR_UNAVAILABLE, Unavailable), (pb.ERR_OVERLOADED, Overloaded),
    (pb.ERR_UNKNOWN_MODEL, UnknownModel), (pb.ERR_BAD_REQUEST, BadRequest),
    (pb.ERR_CANCELLED, Cancelled), (pb.ERR_INTERNAL, AigwError),
])
async def test_error_raises_typed_exception(code: int, cls: type) -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            task = asyncio.create_task(client.complete("x", targets="a,b"))
            ident, msg = await fb.expect_front(C.SUBMIT)
            err = pb.Error(job_id=msg.body.job_id, code=code, message="all failed")
            err.attempts.append(attempt(5, "a", pb.OUTCOME_FAILED, error=pb.ERR_UPSTREAM,
                                        reason="HTTP 500"))
            await fb.send_front(ident, C.ERROR, err)
            with pytest.raises(cls) as e:
                await task
    assert type(e.value) is cls
    assert e.value.code == code and e.value.message == "all failed"
    assert e.value.job_id == msg.body.job_id
    assert e.value.attempts[0].reason == "HTTP 500" and e.value.attempts[0].error == "ERR_UPSTREAM"


async def test_cancelling_the_task_sends_cancel() -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            task = asyncio.create_task(client.complete("x", targets=["a"]))
            ident, msg = await fb.expect_front(C.SUBMIT)
            task.cancel()
            _, cancel = await fb.expect_front(C.CANCEL)
            assert cancel.body.job_id == msg.body.job_id
            with pytest.raises(asyncio.CancelledError):
                await task
            # the broker's acknowledgement arrives for a job nobody waits for: counted as late
            await fb.send_front(ident, C.ERROR, pb.Error(job_id=msg.body.job_id,
                                                         code=pb.ERR_CANCELLED))
            await _until(lambda: client.stats.late == 1)


async def test_concurrent_jobs_are_demultiplexed() -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            tasks = [asyncio.create_task(client.complete(f"q{i}", targets=["a"])) for i in range(5)]
            subs = [await fb.expect_front(C.SUBMIT) for _ in tasks]
            assert len({m.body.job_id for _, m in subs}) == 5
            for ident, m in reversed(subs):
                q = json.loads(m.payload)["messages"][0]["content"]
                await fb.result(ident, m.body.job_id, f"answer to {q}")
            results = await asyncio.gather(*tasks)
    assert [r.content for r in results] == [f"answer to q{i}" for i in range(5)]


async def test_stream_yields_chunks_then_completion() -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            async def consume() -> tuple[list[str], object]:
                texts = []
                async with client.stream("Hi", targets=["a", "b"]) as s:
                    async for ch in s:
                        texts.append(ch.text)
                return texts, s.completion

            task = asyncio.create_task(consume())
            ident, msg = await fb.expect_front(C.SUBMIT)
            assert msg.body.stream and json.loads(msg.payload)["stream"] is True
            job_id = msg.body.job_id
            for i, t in enumerate(["Hel", "lo", "!"]):
                await fb.send_front(ident, C.CHUNK, chunk_body(job_id, t, i, model="b"))
            await fb.send_front(ident, C.CHUNK, pb.Chunk(job_id=job_id, delta_json=b"not json"))
            await fb.send_front(ident, C.RESULT, pb.Result(job_id=job_id, model="b"))
            texts, completion = await task
    assert texts == ["Hel", "lo", "!"]
    assert completion.content == "Hello!" and completion.model == "b"
    assert completion.response["choices"][0]["message"]["content"] == "Hello!"
    assert client.stats.malformed == 1


async def test_stream_error_and_early_exit_and_cancel() -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            # error after a chunk
            s = client.stream("Hi", targets=["a"])
            ident, msg = await fb.expect_front(C.SUBMIT)
            await fb.send_front(ident, C.CHUNK, chunk_body(msg.body.job_id, "x", 0))
            await fb.send_front(ident, C.ERROR, pb.Error(job_id=msg.body.job_id,
                                                         code=pb.ERR_TTFT, message="slow"))
            assert (await s.__anext__()).text == "x"
            with pytest.raises(UpstreamError, match="slow"):
                await s.__anext__()
            # leaving early sends CANCEL
            async with client.stream("Hi", targets=["a"]) as s2:
                _, msg = await fb.expect_front(C.SUBMIT)
                await fb.send_front(ident, C.CHUNK, chunk_body(msg.body.job_id, "y", 0))
                async for _ in s2:
                    break
            _, cancel = await fb.expect_front(C.CANCEL)
            assert cancel.body.job_id == msg.body.job_id
            # cancelling the iterating task sends CANCEL
            async def consume() -> None:
                async for _ in client.stream("Hi", targets=["a"]):
                    pass
            task = asyncio.create_task(consume())
            _, msg = await fb.expect_front(C.SUBMIT)
            task.cancel()
            _, cancel = await fb.expect_front(C.CANCEL)
            assert cancel.body.job_id == msg.body.job_id


async def test_status_ping_pong() -> None:
    with FakeBroker(auto_pong=False) as fb:
        async with Client(fb.frontend) as client:
            task = asyncio.create_task(client.status())
            ident, _ = await fb.expect_front(C.PING)
            st = pb.BrokerStatus(workers=2, jobs_in_flight=1, broker_id="b1", instance=7)
            st.models.add(name="fast-sim", workers=2, capacity=128, in_flight=1)
            await fb.send_front(ident, C.PONG, st)
            status = await task
    model = {"name": "fast-sim", "workers": 2, "capacity": 128, "in_flight": 1, "queued": 0}
    assert status == {"broker_id": "b1", "workers": 2, "jobs_in_flight": 1, "models": [model],
                      "brokers": [{"endpoint": fb.frontend, "broker_id": "b1", "instance": 7,
                                   "workers": 2, "jobs_in_flight": 1, "models": [model]}]}


async def test_status_times_out_as_unavailable() -> None:
    with FakeBroker(auto_pong=False) as fb:
        async with Client(fb.frontend) as client:
            with pytest.raises(Unavailable, match="did not answer PING"):
                await client.status(timeout=0.2)


async def test_malformed_messages_are_counted_and_ignored() -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            task = asyncio.create_task(client.complete("x", targets=["a"]))
            ident, msg = await fb.expect_front(C.SUBMIT)
            for frames in ([b"junk"], [b"AIGWC1", b"\x12", b"\xff\xff"], [b"AIGWW1", b"\x04", b""],
                           [b"AIGWC1", b"\x13", b""], [b"AIGWC1", b"\x01", b"", b"{}"]):
                await fb.front.send_multipart([ident] + frames)
            await fb.result(ident, msg.body.job_id, "fine")
            assert (await task).content == "fine"
            assert client.stats.malformed == 5


async def test_spend_is_ignored_silently() -> None:
    """SPEND (usage settled after the answer) is neither an answer, late, nor malformed."""
    with FakeBroker() as fb:
        async with Client(fb.frontend) as client:
            task = asyncio.create_task(client.complete("x", targets=["a", "b"]))
            ident, msg = await fb.expect_front(C.SUBMIT)
            job_id = msg.body.job_id
            spend = pb.Spend(job_id=job_id, attempt_id=2, target="b", account="team-a")
            spend.usage.prompt_tokens = 7
            spend.usage.completion_tokens = 1
            await fb.send_front(ident, C.SPEND, spend)              # before the answer
            await fb.send_front(ident, C.SPEND, pb.Spend(job_id=999, attempt_id=1))
            await fb.result(ident, job_id, "the answer")
            assert (await task).content == "the answer"             # SPEND did not end the job
            await fb.send_front(ident, C.SPEND, spend)              # the usual case: after it
            fb.broker_id = "b"
            assert (await client.status())["broker_id"] == "b"  # its PONG follows the SPEND
            assert client.stats.malformed == 0 and client.stats.late == 0


async def test_silent_broker_gives_unavailable_and_cancels() -> None:
    with FakeBroker() as fb:
        async with Client(fb.frontend, grace_ms=100) as client:
            task = asyncio.create_task(client.complete("x", targets=["a"], deadline_ms=100))
            await fb.expect_front(C.SUBMIT)
            with pytest.raises(Unavailable, match="no answer from broker"):
                await task
            await fb.expect_front(C.CANCEL)


async def test_bad_arguments_fail_locally() -> None:
    async with Client("tcp://127.0.0.1:9") as client:
        with pytest.raises(BadRequest):
            await client.complete("x", targets=[])
        with pytest.raises(BadRequest):
            await client.complete("x", targets=["a"], policy="fastest")


async def test_close_fails_waiting_jobs() -> None:
    with FakeBroker() as fb:
        client = Client(fb.frontend)
        task = asyncio.create_task(client.complete("x", targets=["a"]))
        await fb.expect_front(C.SUBMIT)
        await client.close()
        with pytest.raises(Unavailable, match="client closed"):
            await task


async def _until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < end, "condition not met in time"
        await asyncio.sleep(0.01)
