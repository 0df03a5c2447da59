"""Wire framing: good frames round-trip, malformed frames are rejected with a reason."""
from __future__ import annotations

import random

import pytest

from aigw_agent import wire
from aigw_agent._proto import pb
from aigw_agent.wire import CLIENT_HEADER, WORKER_HEADER, C, W

pytestmark = pytest.mark.timeout(20)


def test_submit_roundtrip() -> None:
    job = pb.Job(job_id=7, targets=["a", "b"], policy=pb.POLICY_HEDGE, hedge_delay_ms=50)
    frames = wire.encode(CLIENT_HEADER, C.SUBMIT, job, b'{"model":"a"}')
    assert frames[:2] == [b"AIGWC1", b"\x01"]
    msg, why = wire.parse(frames, CLIENT_HEADER, to_broker=True)
    assert why == "" and msg is not None
    assert msg.name == "SUBMIT" and msg.body.job_id == 7 and list(msg.body.targets) == ["a", "b"]
    assert msg.body.policy == pb.POLICY_HEDGE and msg.body.hedge_delay_ms == 50
    assert not msg.body.HasField("deadline_ms")
    assert msg.payload == b'{"model":"a"}'


@pytest.mark.parametrize("header,to_broker,cmd,body", [
    (CLIENT_HEADER, True, C.CANCEL, pb.JobRef(job_id=1)),
    (CLIENT_HEADER, True, C.PING, None),
    (CLIENT_HEADER, False, C.CHUNK, pb.Chunk(job_id=1, delta_json=b"{}")),
    (CLIENT_HEADER, False, C.RESULT, pb.Result(job_id=1, model="m")),
    (CLIENT_HEADER, False, C.ERROR, pb.Error(job_id=1, code=pb.ERR_UPSTREAM, message="x")),
    (CLIENT_HEADER, False, C.PONG, pb.BrokerStatus(workers=2)),
    (CLIENT_HEADER, False, C.SPEND, pb.Spend(job_id=1, attempt_id=2, target="m", account="k")),
    (WORKER_HEADER, True, W.READY, pb.WorkerHello(worker_id="w", models=["a"], capacity=2)),
    (WORKER_HEADER, True, W.HEARTBEAT, pb.WorkerStats(in_flight=1)),
    (WORKER_HEADER, False, W.HEARTBEAT, pb.BrokerBeat(instance=7)),
    (WORKER_HEADER, True, W.CHUNK, pb.Chunk(job_id=1, attempt_id=2)),
    (WORKER_HEADER, True, W.RESULT, pb.Result(job_id=1, attempt_id=2)),
    (WORKER_HEADER, True, W.ERROR, pb.Error(job_id=1, attempt_id=2, code=pb.ERR_CANCELLED)),
    (WORKER_HEADER, True, W.DISCONNECT, None),
    (WORKER_HEADER, False, W.DISCONNECT, None),
    (WORKER_HEADER, False, W.CANCEL, pb.AttemptRef(attempt_id=9)),
])
def test_roundtrip(header: bytes, to_broker: bool, cmd: int, body: object) -> None:
    msg, why = wire.parse(wire.encode(header, cmd, body), header, to_broker)
    assert msg is not None, why
    assert msg.cmd == cmd and msg.payload is None
    if body is not None:
        assert msg.body == body


def test_heartbeat_body_depends_on_direction() -> None:
    beat = pb.BrokerBeat(instance=0xDEADBEEF12345678)
    msg, why = wire.parse(wire.encode(WORKER_HEADER, W.HEARTBEAT, beat), WORKER_HEADER, False)
    assert msg is not None, why
    assert isinstance(msg.body, pb.BrokerBeat) and msg.body.instance == 0xDEADBEEF12345678
    # an older broker's empty body: a BrokerBeat without an instance
    msg, _ = wire.parse([WORKER_HEADER, bytes([W.HEARTBEAT]), b""], WORKER_HEADER, False)
    assert msg is not None and isinstance(msg.body, pb.BrokerBeat)
    assert not msg.body.HasField("instance")
    stats = pb.WorkerStats(in_flight=3, capacity=8)
    msg, _ = wire.parse(wire.encode(WORKER_HEADER, W.HEARTBEAT, stats), WORKER_HEADER, True)
    assert msg is not None and isinstance(msg.body, pb.WorkerStats) and msg.body.capacity == 8
    # a broker HEARTBEAT body that does not decode is refused, not ignored
    msg, why = wire.parse([WORKER_HEADER, bytes([W.HEARTBEAT]), b"\xff"], WORKER_HEADER, False)
    assert msg is None and why == "undecodable HEARTBEAT body"


def test_task_with_payload_and_without_body_frame_for_empty_commands() -> None:
    task = pb.Task(job_id=1, attempt_id=2, target="agent/deliberate", stream=True)
    msg, _ = wire.parse(wire.encode(WORKER_HEADER, W.TASK, task, b"{}"), WORKER_HEADER, False)
    assert msg is not None and msg.body.stream and msg.payload == b"{}"
    # the body frame may be absent for empty-body commands
    msg, _ = wire.parse([WORKER_HEADER, bytes([W.HEARTBEAT])], WORKER_HEADER, False)
    assert msg is not None and msg.cmd == W.HEARTBEAT
    msg, _ = wire.parse([CLIENT_HEADER, bytes([C.PONG])], CLIENT_HEADER, False)
    assert msg is not None and msg.body.workers == 0


GOOD_ERROR = pb.Error(job_id=1, code=pb.ERR_UPSTREAM).SerializeToString()


@pytest.mark.parametrize("frames,reason", [
    ([], "missing frames"),
    ([CLIENT_HEADER], "missing frames"),
    ([CLIENT_HEADER, b"\x13", GOOD_ERROR, b"", b""], "too many frames"),
    ([b"AIGWX1", b"\x13", GOOD_ERROR], "unknown header"),
    ([b"AIGW", b"\x13", GOOD_ERROR], "bad header"),
    ([WORKER_HEADER, b"\x05", GOOD_ERROR], "unknown header"),   # worker header on client socket
    ([CLIENT_HEADER, b"", GOOD_ERROR], "bad command frame"),
    ([CLIENT_HEADER, b"\x13\x00", GOOD_ERROR], "bad command frame"),
    ([CLIENT_HEADER, b"\x7f", GOOD_ERROR], "unexpected command 0x7f"),
    ([CLIENT_HEADER, b"\x01", b"", b"{}"], "unexpected command 0x01"),  # SUBMIT towards client
    ([CLIENT_HEADER, b"\x13", b"\xff\xff\xff"], "undecodable ERROR body"),
    ([CLIENT_HEADER, b"\x13", pb.Error(job_id=1).SerializePartialToString()],
     "ERROR body misses required fields"),
    ([CLIENT_HEADER, b"\x13", b""], "ERROR body misses required fields"),
    ([CLIENT_HEADER, b"\x12", pb.Result(job_id=1).SerializeToString(), b"x"],
     "unexpected payload on RESULT"),
])
def test_malformed_client_side(frames: list[bytes], reason: str) -> None:
    msg, why = wire.parse(frames, CLIENT_HEADER, to_broker=False)
    assert msg is None
    assert why == reason


def test_malformed_worker_side() -> None:
    task = pb.Task(job_id=1, attempt_id=2, target="t").SerializeToString()
    assert wire.parse([WORKER_HEADER, b"\x07", task], WORKER_HEADER, False) == (
        None, "TASK without payload")
    assert wire.parse([WORKER_HEADER, b"\x07", b"\x08\x01", b"{}"], WORKER_HEADER, False) == (
        None, "TASK body misses required fields")
    assert wire.parse([WORKER_HEADER, b"\x04", b""], WORKER_HEADER, False)[1] == (
        "unexpected command 0x04")  # RESULT never travels to a worker
    assert wire.parse([WORKER_HEADER, b"\x07", task, b"x" * 100], WORKER_HEADER, False,
                      max_frame=64) == (None, "frame too large")


def test_random_bytes_never_raise() -> None:
    rnd = random.Random(42)
    headers = [CLIENT_HEADER, WORKER_HEADER, b"", b"AIGWC", b"\x00" * 6]
    for _ in range(3000):
        n = rnd.randint(0, 6)
        frames = [rnd.choice(headers)] if n else []
        for _ in range(max(0, n - 1)):
            frames.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 24))))
        if len(frames) > 1 and rnd.random() < 0.7:
            frames[1] = bytes([rnd.choice(list(C) + list(W) + [0, 0x99])])
        for header in (CLIENT_HEADER, WORKER_HEADER):
            for to_broker in (True, False):
                msg, why = wire.parse(frames, header, to_broker)
                assert (msg is None) == bool(why)


def test_cmd_names() -> None:
    assert wire.cmd_name(CLIENT_HEADER, 0x14) == "PONG"
    assert wire.cmd_name(WORKER_HEADER, 0x07) == "TASK"
    assert wire.cmd_name(WORKER_HEADER, 0x42) == "0x42"
