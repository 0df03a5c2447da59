"""The Python client and worker base against the real C broker and sim workers."""
from __future__ import annotations

import asyncio

import pytest

aigw_agent = pytest.importorskip("aigw_agent")
from aigw_agent.client import Client                      # noqa: E402
from aigw_agent.errors import UpstreamError, DeadlineExceeded  # noqa: E402
from aigw_agent.worker import WorkerBase                  # noqa: E402

from harness import wait_until                            # noqa: E402

SIM = (
    "    fast-sim\n        provider = sim\n        latency_ms = 5\n        text = \"fast answer\"\n"
    "    slow-sim\n        provider = sim\n        latency_ms = 300\n        text = \"slow answer\"\n"
    "    broken-sim\n        provider = sim\n        latency_ms = 5\n        fail_rate = 1\n"
    "    stream-sim\n        provider = sim\n        latency_ms = 5\n        tokens_per_s = 200\n"
    "        text = \"one two three four five\"\n"
)


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def system(make_system):
    return make_system(models=SIM).start()


def front(s):
    return f"tcp://127.0.0.1:{s.front}"


def back(s):
    return f"tcp://127.0.0.1:{s.back}"


def test_client_race_hedge_fallback(system):
    async def main():
        async with Client(front(system)) as c:
            r = await c.complete("hi", targets=["slow-sim", "fast-sim"], policy="race")
            assert r.model == "fast-sim" and r.content == "fast answer"
            assert {a.target: a.outcome for a in r.attempts} == {"fast-sim": "won",
                                                                  "slow-sim": "cancelled"}
            r = await c.complete("hi", targets=["slow-sim", "fast-sim"], policy="hedge",
                                 hedge_delay_ms=40)
            assert r.model == "fast-sim"
            att = {a.target: a for a in r.attempts}
            assert att["fast-sim"].started_ms >= 35
            r = await c.complete("hi", targets=["broken-sim", "slow-sim"], policy="fallback")
            assert r.model == "slow-sim"
            att = {a.target: a for a in r.attempts}
            assert att["broken-sim"].outcome == "failed"
            assert att["slow-sim"].started_ms >= att["broken-sim"].finished_ms
            with pytest.raises(UpstreamError) as e:
                await c.complete("hi", targets=["broken-sim"])
            assert e.value.attempts and e.value.attempts[0].outcome == "failed"
            with pytest.raises(DeadlineExceeded):
                await c.complete("hi", targets=["slow-sim"], deadline_ms=50)
            st = await c.status()
            names = {m["name"] for m in st["models"]}
            assert {"fast-sim", "slow-sim"} <= names
    run(main())


def test_client_stream(system):
    async def main():
        async with Client(front(system)) as c:
            texts = []
            async with c.stream("hi", targets=["stream-sim", "slow-sim"]) as s:
                async for chunk in s:
                    texts.append(chunk.text)
                    assert chunk.model == "stream-sim"
            assert "".join(texts).split() == "one two three four five".split()
            assert len(texts) >= 2
            assert s.completion.model == "stream-sim"
    run(main())


def test_client_cancel_sends_cancel(system, upstream):
    async def main():
        async with Client(front(system)) as c:
            task = asyncio.create_task(c.complete("hi", targets=["slow-sim"]))
            async with Client(front(system)) as probe:      # the broker holds the job
                while (await probe.status())["jobs_in_flight"] != 1:
                    assert not task.done(), task
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The broker cancelled the job: the worker's slot is free again
            # and a new job completes normally.
            r = await c.complete("hi", targets=["fast-sim"])
            assert r.model == "fast-sim"
    run(main())


def test_worker_base_registers_serves_cancels_and_reregisters(system):
    async def echo(request, ctx):
        text = request["messages"][-1]["content"]
        if text == "wait":
            await asyncio.sleep(30)
        return {"id": "x", "object": "chat.completion", "model": ctx.target,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "echo: " + text}}]}

    async def main():
        w = WorkerBase(back(system), {"py/echo": echo}, worker_id="py-test",
                       heartbeat_ms=200, backoff_initial=0.2, backoff_max=1.0)
        wt = asyncio.create_task(w.run())
        async with Client(front(system)) as c:
            async def registered():
                while "py/echo" not in {m["name"] for m in (await c.status())["models"]}:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(registered(), 5)
            r = await c.complete("hello", targets=["py/echo"])
            assert r.content == "echo: hello" and r.model == "py/echo"
            # Cancel: a race where fast-sim wins cancels the python attempt.
            r = await c.complete("wait", targets=["py/echo", "fast-sim"])
            assert r.model == "fast-sim"
            for _ in range(100):
                if w.stats.cancelled == 1 and w.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert w.stats.cancelled == 1 and w.in_flight == 0
        # Broker restart: the worker registers again by itself.
        connects = w.stats.connects
        await asyncio.to_thread(system.kill, "broker")
        await asyncio.to_thread(system.start_broker)
        async with Client(front(system)) as c:
            async def served():
                while True:
                    try:
                        st = await c.status(timeout=0.5)
                        if "py/echo" in {m["name"] for m in st["models"]}:
                            return
                    except Exception:
                        pass
                    await asyncio.sleep(0.1)
            await asyncio.wait_for(served(), 10)
            r = await c.complete("again", targets=["py/echo"])
            assert r.content == "echo: again"
        assert w.stats.connects > connects
        wt.cancel()
        try:
            await wt
        except asyncio.CancelledError:
            pass
    run(main(), timeout=40)
