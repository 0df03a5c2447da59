"""The Python client and worker base on two real brokers, one killed with -9.

- Client: jobs in flight on both brokers; broker1 is killed: the jobs it held (nothing
  received yet) are resubmitted once to broker0, every job is answered exactly once (the
  upstream sees each job once, plus once more for each resubmitted one).
- WorkerBase: a Python service registered on both brokers (one shared capacity); broker1
  is killed with attempts of it running: only those are dropped, their jobs come back
  through broker0, and the worker keeps serving there.

heartbeat x liveness is 3 s here, so what recovers before it runs out was noticed by the
socket monitors, not by silence. Tests wait on counters and events; times are printed in
the "aigw figures" section, never asserted.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

aigw_agent = pytest.importorskip("aigw_agent")
from aigw_agent.client import Client, completion_dict     # noqa: E402
from aigw_agent.worker import TaskContext, WorkerBase      # noqa: E402

from harness import wait_until                             # noqa: E402

N = 10
HB_MS, LIVENESS = 200, 15


def openai_models(upstream, names):
    return "".join(
        f"    {n}\n        provider = openai\n        base_url = {upstream.url}\n"
        f"        upstream_model = {n}\n" for n in names)


def two_brokers(make_system, models: str, workers: int):
    """broker (0) and broker1, workers registered with both; returns the System."""
    s = make_system(models=models, workers=workers, heartbeat_ms=HB_MS, liveness=LIVENESS)
    s.start_broker()
    s.start_extra_broker(1)
    s.add_brokers_to_config()
    for i in range(workers):
        s.start_worker(i)
    s.start_edge()
    s.http = s.client()
    s.wait_ready(workers)
    return s


def fronts(s) -> list[str]:
    return [f"tcp://127.0.0.1:{p}" for p in (s.front, s.extra_ports[1][0])]


def backs(s) -> list[str]:
    return [f"tcp://127.0.0.1:{p}" for p in (s.back, s.extra_ports[1][1])]


async def until(pred, timeout: float = 20.0, what: str = "condition") -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_client_jobs_survive_a_broker_killed(make_system, upstream, figures):
    upstream.script({"steady": {"latency_ms": 1500, "text": "survived"}})
    s = two_brokers(make_system, openai_models(upstream, ["steady"]), workers=2)

    async def main() -> tuple[Any, float]:
        async with Client(fronts(s), heartbeat_ms=HB_MS, liveness=LIVENESS) as c:
            await until(lambda: all(b["live"] and b["workers"] == 2 for b in c.brokers()),
                        what="both brokers live with both workers")
            tasks = [asyncio.create_task(c.complete(f"q{i}", targets=["steady"]))
                     for i in range(N)]
            await until(lambda: sum(b["outstanding"] for b in c.brokers()) == N,
                        what="every job submitted")
            held = [b["outstanding"] for b in c.brokers()]
            assert held == [N // 2, N // 2], held        # least outstanding: spread evenly
            await asyncio.to_thread(upstream.wait, 20, requests=N)  # all at the upstream
            t0 = time.monotonic()
            await asyncio.to_thread(s.kill, "broker1")
            results = await asyncio.gather(*tasks, return_exceptions=True)
            answered_ms = (time.monotonic() - t0) * 1000
            for r in results:
                assert not isinstance(r, BaseException), r
                assert r.content == "survived"
            st = c.stats
            assert st.brokers_lost == 1 and st.failed_on_loss == 0
            assert st.resubmitted == N // 2              # everything broker1 held, once
            assert c.brokers()[0]["outstanding"] == 0
            after = await c.complete("again", targets=["steady"])   # broker0 alone serves
            assert after.content == "survived"
            return st, answered_ms

    st, answered_ms = run(main())
    assert len(upstream.requests_for("steady")) == N + st.resubmitted + 1   # none twice more
    figures(f"python client, one of two brokers killed: {N} in flight ({st.resubmitted} on "
            f"the killed one), {N} answered once each, 0 lost, answered {answered_ms:.0f} ms "
            "after the kill (upstream latency 1500 ms)")


def test_python_worker_on_two_brokers_keeps_serving(make_system, figures):
    sim = "    fast-sim\n        provider = sim\n        latency_ms = 1\n"
    s = two_brokers(make_system, sim, workers=1)
    release = asyncio.Event()
    started: list[str] = []
    running = [0, 0]                 # now, most at once

    async def echo(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        started.append(ctx.broker)
        running[0] += 1
        running[1] = max(running)
        try:
            await release.wait()
        finally:
            running[0] -= 1
        text = request["messages"][-1]["content"]
        return completion_dict(ctx.target, f"echo {text}", ctx.completion_id)

    async def main() -> dict[str, Any]:
        worker = WorkerBase(backs(s), {"py/echo": echo}, worker_id="py-two", capacity=16,
                            heartbeat_ms=HB_MS, liveness=LIVENESS, backoff_initial=0.1)
        wtask = asyncio.create_task(worker.run())
        try:
            async with Client(fronts(s), heartbeat_ms=HB_MS, liveness=LIVENESS) as c:
                def registered() -> bool:
                    return all(b["live"] for b in c.brokers())
                await until(registered, what="both brokers live")
                status = await c.status()
                for b in status["brokers"]:
                    assert "py/echo" in {m["name"] for m in b["models"]}, status
                tasks = [asyncio.create_task(c.complete(f"j{i}", targets=["py/echo"]))
                         for i in range(6)]
                await until(lambda: len(started) == 6, what="six attempts running")
                on1 = worker.in_flight_of(backs(s)[1])
                assert on1 == 3 and worker.in_flight == 6
                t0 = time.monotonic()
                await asyncio.to_thread(s.kill, "broker1")
                # broker1's attempts are dropped at the worker, its jobs resubmitted by
                # the client to broker0, which runs them on the same worker
                await until(lambda: worker.stats.orphaned == on1
                            and c.stats.resubmitted == on1 and len(started) == 6 + on1,
                            what="broker1's jobs running again through broker0")
                moved_ms = (time.monotonic() - t0) * 1000
                assert worker.in_flight == 6 and worker.in_flight_of(backs(s)[0]) == 6
                release.set()
                results = await asyncio.gather(*tasks)
                assert sorted(r.content for r in results) == sorted(
                    f"echo j{i}" for i in range(6))
                r = await c.complete("after", targets=["py/echo"])
                assert r.content == "echo after"
                assert c.stats.failed_on_loss == 0
                return {"moved_ms": moved_ms, "lost": worker.stats.lost_disconnected,
                        "orphaned": worker.stats.orphaned}
        finally:
            await worker.stop()
            wtask.cancel()

    out = run(main())
    assert out["lost"] >= 1 and running[1] <= 16
    figures(f"python worker on two brokers, one killed: {out['orphaned']} attempts dropped "
            f"(only the killed broker's), their jobs running again through the other "
            f"{out['moved_ms']:.0f} ms after the kill; 6 answered once each")
