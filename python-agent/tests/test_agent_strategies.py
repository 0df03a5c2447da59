"""The agent strategies end to end through a fake broker (sub-jobs answered by a script)."""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, AsyncIterator, Callable

import pytest
from fakebroker import FakeBroker, chunk_body

from aigw_agent import Agent, AgentConfig
from aigw_agent._proto import pb
from aigw_agent.wire import C, W

pytestmark = pytest.mark.timeout(20)
Script = Callable[[list[str], str], "str | int"]   # (targets, prompt) -> text, or an ErrorCode


class Models:
    """Answers the agent's sub-jobs on the fake frontend; records what was asked."""

    def __init__(self, fb: FakeBroker, script: Script, hold: float = 0.0):
        self.fb, self.script, self.hold = fb, script, hold
        self.jobs: list[dict[str, Any]] = []
        self.cancelled: list[int] = []
        self.task: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        while True:
            ident, msg = await self.fb.recv_front(timeout=60)
            if msg.cmd == C.CANCEL:
                self.cancelled.append(msg.body.job_id)
            elif msg.cmd == C.SUBMIT:
                req = json.loads(msg.payload)
                job = {"id": msg.body.job_id, "targets": list(msg.body.targets),
                       "policy": msg.body.policy, "stream": msg.body.stream,
                       "deadline_ms": msg.body.deadline_ms if msg.body.HasField("deadline_ms")
                       else None, "prompt": req["messages"][-1]["content"], "request": req}
                self.jobs.append(job)
                t = asyncio.create_task(self._answer(ident, job))
                pending.add(t)
                t.add_done_callback(pending.discard)

    async def _answer(self, ident: bytes, job: dict[str, Any]) -> None:
        await asyncio.sleep(self.hold)
        if job["id"] in self.cancelled:
            return
        out = self.script(job["targets"], job["prompt"])
        model = job["targets"][0]
        if isinstance(out, int):
            await self.fb.send_front(ident, C.ERROR, pb.Error(job_id=job["id"], code=out,
                                                              message="scripted failure"))
        elif job["stream"]:
            words = out.split(" ")
            for i, w in enumerate(words):
                piece = w if i == len(words) - 1 else w + " "
                await self.fb.send_front(ident, C.CHUNK, chunk_body(job["id"], piece, i, model))
            await self.fb.send_front(ident, C.RESULT, pb.Result(job_id=job["id"], model=model))
        else:
            await self.fb.result(ident, job["id"], out, model=model)

    def of(self, target: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j["targets"][0] == target]


@contextlib.asynccontextmanager
async def agent_with(script: Script, hold: float = 0.0, **cfg_kw: Any
                     ) -> AsyncIterator[tuple[FakeBroker, Models, Agent, bytes]]:
    with FakeBroker() as fb:
        models = Models(fb, script, hold)
        serve = asyncio.create_task(models.serve())
        cfg = AgentConfig(frontend=fb.frontend, backend=fb.backend, worker_id="agent-t",
                          heartbeat_ms=100, deliberate_planner="planner", deliberate_synth="synth",
                          deliberate_solvers=["s1", "s2"], consensus_models=["m1", "m2", "m3"],
                          consensus_judge="judge", **cfg_kw)
        agent = Agent(cfg)
        run = asyncio.create_task(agent.run())
        try:
            ident, ready = await fb.expect_back(W.READY)
            assert list(ready.body.models) == ["agent/deliberate", "agent/consensus"]
            yield fb, models, agent, ident
        finally:
            run.cancel()
            serve.cancel()
            await asyncio.gather(run, serve, return_exceptions=True)


def deliberate_script(targets: list[str], prompt: str) -> str | int:
    if targets == ["planner"]:
        return 'Plan:\n```json\n["What is A?", "What is B?"]\n```'
    if targets == ["s1", "s2"]:
        return "A is 1." if "What is A?" in prompt else "B is 2."
    if targets == ["synth"]:
        assert "A is 1." in prompt and "B is 2." in prompt and "Why A and B?" in prompt
        return "Because A is 1 and B is 2."
    return pb.ERR_UNKNOWN_MODEL


def request(question: str, **extra: Any) -> dict[str, Any]:
    return {"model": "agent/deliberate", "messages": [{"role": "user", "content": question}], **extra}


async def result_of(fb: FakeBroker) -> tuple[list[Any], Any]:
    chunks = []
    while True:
        _, msg = await fb.recv_back()
        if msg.cmd == W.CHUNK:
            chunks.append(msg.body)
        else:
            return chunks, msg


async def test_deliberate_plans_solves_in_parallel_and_synthesizes() -> None:
    async with agent_with(deliberate_script) as (fb, models, agent, ident):
        await fb.task(ident, 1, 1, "agent/deliberate", request("Why A and B?", temperature=0.3),
                      deadline_ms=5000)
        chunks, msg = await result_of(fb)
    assert chunks == [] and msg.cmd == W.RESULT
    resp = json.loads(msg.body.response_json)
    assert resp["choices"][0]["message"]["content"] == "Because A is 1 and B is 2."
    info = resp["aigw_agent"]
    assert info["plan"] == ["What is A?", "What is B?"]
    assert [a["content"] for a in info["answers"]] == ["A is 1.", "B is 2."]
    assert info["synthesizer"]["model"] == "synth"
    assert resp["usage"] == {"prompt_tokens": 12, "completion_tokens": 20}   # 4 sub-jobs
    assert [j["targets"][0] for j in models.jobs] == ["planner", "s1", "s1", "synth"]
    solver_jobs = models.of("s1")
    assert all(j["policy"] == pb.POLICY_RACE for j in solver_jobs)
    assert all(j["request"]["temperature"] == 0.3 for j in models.jobs)
    assert all(0 < j["deadline_ms"] < 5000 for j in models.jobs)   # within the task's budget


async def test_deliberate_streams_the_synthesis() -> None:
    async with agent_with(deliberate_script) as (fb, models, agent, ident):
        await fb.task(ident, 2, 3, "agent/deliberate", request("Why A and B?"), stream=True)
        chunks, msg = await result_of(fb)
    assert msg.cmd == W.RESULT and models.of("synth")[0]["stream"] is True
    deltas = [json.loads(c.delta_json)["choices"][0] for c in chunks]
    assert "".join(d["delta"].get("content", "") for d in deltas) == "Because A is 1 and B is 2."
    assert deltas[-1]["finish_reason"] == "stop"
    assert all(c.attempt_id == 3 and c.model == "agent/deliberate" for c in chunks)


async def test_deliberate_survives_a_bad_plan_and_a_failed_solver() -> None:
    def script(targets: list[str], prompt: str) -> str | int:
        if targets == ["planner"]:
            return "I cannot plan, sorry."            # no list: answer the question whole
        if targets == ["s1", "s2"]:
            return "Whole answer."
        return "Final."

    async with agent_with(script) as (fb, models, agent, ident):
        await fb.task(ident, 1, 1, "agent/deliberate", request("Q?"))
        _, msg = await result_of(fb)
    info = json.loads(msg.body.response_json)["aigw_agent"]
    assert info["plan"] == ["Q?"] and len(models.of("s1")) == 1

    def all_fail(targets: list[str], prompt: str) -> str | int:
        return '["a?", "b?"]' if targets == ["planner"] else pb.ERR_UPSTREAM

    async with agent_with(all_fail) as (fb, models, agent, ident):
        await fb.task(ident, 1, 1, "agent/deliberate", request("Q?"))
        _, msg = await result_of(fb)
    assert msg.cmd == W.ERROR and msg.body.code == pb.ERR_UPSTREAM
    assert "every sub-question failed" in msg.body.message


async def test_cancelling_deliberate_cancels_its_sub_jobs() -> None:
    async with agent_with(deliberate_script, hold=5.0) as (fb, models, agent, ident):
        await fb.task(ident, 1, 7, "agent/deliberate", request("Why A and B?"))
        await _until(lambda: len(models.jobs) == 1)             # the planner job is out
        await fb.send_back(ident, W.CANCEL, pb.AttemptRef(attempt_id=7))
        _, ack = await fb.expect_back(W.ERROR)
        assert ack.body.code == pb.ERR_CANCELLED and ack.body.attempt_id == 7
        await _until(lambda: models.cancelled == [models.jobs[0]["id"]])


def consensus_script(judge_reply: str) -> Script:
    def script(targets: list[str], prompt: str) -> str | int:
        if targets == ["m1"]:
            return "Paris."
        if targets == ["m2"]:
            return "paris"
        if targets == ["m3"]:
            return pb.ERR_UPSTREAM
        assert targets == ["judge"] and "Answer 1 (from m1)" in prompt
        return judge_reply
    return script


async def test_consensus_reports_agreement() -> None:
    script = consensus_script('{"agree": [1, 2], "answer": "The capital of France is Paris."}')
    async with agent_with(script) as (fb, models, agent, ident):
        await fb.task(ident, 4, 9, "agent/consensus", request("Capital of France?"), stream=True)
        chunks, msg = await result_of(fb)
    assert msg.cmd == W.RESULT
    resp = json.loads(msg.body.response_json)
    text = resp["choices"][0]["message"]["content"]
    assert text.startswith("The capital of France is Paris.")
    assert "m1, m2 agreed" in text
    info = resp["aigw_agent"]
    assert info["agreed"] == ["m1", "m2"] and info["judge"] == "judge"
    assert info["method"] == "judge-json"
    assert [a.get("error", "") != "" for a in info["answers"]] == [False, False, True]
    assert {j["targets"][0] for j in models.jobs} == {"m1", "m2", "m3", "judge"}
    assert "".join(json.loads(c.delta_json)["choices"][0]["delta"].get("content", "")
                   for c in chunks) == text


async def test_consensus_without_judge_structure_compares_answers() -> None:
    async with agent_with(consensus_script("Paris, clearly.")) as (fb, models, agent, ident):
        await fb.task(ident, 4, 9, "agent/consensus", request("Capital of France?"))
        _, msg = await result_of(fb)
    info = json.loads(msg.body.response_json)["aigw_agent"]
    assert info["agreed"] == ["m1", "m2"] and info["method"] == "exact-match"


async def test_agent_rejects_a_request_without_question() -> None:
    async with agent_with(deliberate_script) as (fb, models, agent, ident):
        await fb.task(ident, 1, 1, "agent/consensus",
                      {"model": "agent/consensus", "messages": []})
        _, msg = await result_of(fb)
    assert msg.cmd == W.ERROR and msg.body.code == pb.ERR_BAD_REQUEST
    assert models.jobs == []


async def _until(pred, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < end, "condition not met in time"
        await asyncio.sleep(0.01)
