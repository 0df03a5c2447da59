"""aigw-ask against a fake broker and the attempts table (generated code: test_agent_proto.py)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakebroker import FakeBroker, chunk_body

from aigw_agent import cli
from aigw_agent._proto import pb
from aigw_agent.errors import Attempt
from aigw_agent.wire import C

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _no_default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """aigw-ask reads config/aigw.conf from the working directory when there is one; the
    repository's turns CURVE on, which these plain fake brokers do not speak."""
    monkeypatch.chdir(tmp_path)


def test_format_attempts() -> None:
    table = cli.format_attempts([
        Attempt(1, "fast-sim", "won", "w1", 0.1, None, 41.0),
        Attempt(2, "slow-sim", "failed", "", 0.1, None, 12.5, "ERR_UPSTREAM", "HTTP 500")])
    lines = table.splitlines()
    assert lines[0].split() == ["target", "outcome", "worker", "start", "ttft", "end", "reason"]
    assert lines[1].split() == ["fast-sim", "won", "w1", "0.1", "-", "41.0"]
    assert lines[2].split()[:3] == ["slow-sim", "failed", "-"]
    assert lines[2].endswith("ERR_UPSTREAM HTTP 500")


async def test_ask_prints_answer_and_attempts(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeBroker() as fb:
        run = asyncio.create_task(asyncio.to_thread(cli.ask_main, [
            "What?", "--race", "fast-sim,slow-sim", "--policy", "hedge", "--hedge-delay-ms", "30",
            "--broker", fb.frontend]))
        ident, msg = await fb.expect_front(C.SUBMIT)
        assert list(msg.body.targets) == ["fast-sim", "slow-sim"]
        assert msg.body.policy == pb.POLICY_HEDGE and msg.body.hedge_delay_ms == 30
        await fb.result(ident, msg.body.job_id, "Forty-two.", model="fast-sim", attempts=[
            pb.AttemptInfo(attempt_id=1, target="fast-sim", outcome=pb.OUTCOME_WON, worker="w1",
                           started_us=100, finished_us=40000)])
        assert await run == 0
    out, err = capsys.readouterr()
    assert out.strip() == "Forty-two."
    assert "winner fast-sim" in err and "fast-sim  won" in err


async def test_ask_stream_and_error(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeBroker() as fb:
        run = asyncio.create_task(asyncio.to_thread(cli.ask_main, [
            "Hi", "--race", "a", "--stream", "--broker", fb.frontend]))
        ident, msg = await fb.expect_front(C.SUBMIT)
        assert msg.body.stream
        for i, t in enumerate(["Hel", "lo"]):
            await fb.send_front(ident, C.CHUNK, chunk_body(msg.body.job_id, t, i, "a"))
        await fb.send_front(ident, C.RESULT, pb.Result(job_id=msg.body.job_id, model="a"))
        assert await run == 0
        assert capsys.readouterr().out == "Hello\n"

        run = asyncio.create_task(asyncio.to_thread(cli.ask_main, [
            "Hi", "--race", "a,b", "--broker", fb.frontend]))
        ident, msg = await fb.expect_front(C.SUBMIT)
        err = pb.Error(job_id=msg.body.job_id, code=pb.ERR_UPSTREAM, message="every upstream failed")
        err.attempts.add(attempt_id=1, target="a", outcome=pb.OUTCOME_FAILED, reason="HTTP 503")
        await fb.send_front(ident, C.ERROR, err)
        assert await run == 1
        assert "ERR_UPSTREAM: every upstream failed" in capsys.readouterr().err


def test_ask_needs_targets_and_a_readable_config(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        cli.ask_main(["question"])
    assert e.value.code == 2
    assert cli.ask_main(["q", "--race", "a", "--config", str(tmp_path / "missing.conf")]) == 2


def test_agent_cli_rejects_bad_agent_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    bad = tmp_path / "agent.conf"
    bad.write_text("agent\n    colour = red\n")
    assert cli.agent_main(["--agent-config", str(bad)]) == 2
    assert "agent/colour: unknown key" in capsys.readouterr().err
