"""aigw wire framing (docs/protocol.md): [header][command][body][payload?] on DEALER<->ROUTER.

encode() builds the frames of one message; parse() validates received frames and never
raises on peer bytes: it returns (Message, "") or (None, reason).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Iterator

import zmq
from zmq.utils.monitor import parse_monitor_message

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as PbMessage

from ._proto import pb

CLIENT_HEADER = b"AIGWC1"
WORKER_HEADER = b"AIGWW1"
MAX_FRAMES = 4                 # header, command, body, payload (routing id already removed)
DEFAULT_MAX_FRAME = 8 * 1024 * 1024


class C(IntEnum):
    """Client-side commands (frontend, header AIGWC1)."""
    SUBMIT = 0x01
    CANCEL = 0x02
    PING = 0x03
    CHUNK = 0x11
    RESULT = 0x12
    ERROR = 0x13
    PONG = 0x14
    SPEND = 0x15


class W(IntEnum):
    """Worker-side commands (backend, header AIGWW1)."""
    READY = 0x01
    HEARTBEAT = 0x02
    CHUNK = 0x03
    RESULT = 0x04
    ERROR = 0x05
    DISCONNECT = 0x06
    TASK = 0x07
    CANCEL = 0x08


# (header, towards the broker?) -> {command: body message class (None = body ignored)}.
# The direction is part of the key: a HEARTBEAT carries WorkerStats from a worker and
# BrokerBeat (possibly empty, from an older broker) from the broker. The keys of each
# table are the commands allowed that way.
_BODY: dict[tuple[bytes, bool], dict[int, type[PbMessage] | None]] = {
    (CLIENT_HEADER, True): {C.SUBMIT: pb.Job, C.CANCEL: pb.JobRef, C.PING: None},
    (CLIENT_HEADER, False): {C.CHUNK: pb.Chunk, C.RESULT: pb.Result, C.ERROR: pb.Error,
                             C.PONG: pb.BrokerStatus, C.SPEND: pb.Spend},
    (WORKER_HEADER, True): {W.READY: pb.WorkerHello, W.HEARTBEAT: pb.WorkerStats,
                            W.CHUNK: pb.Chunk, W.RESULT: pb.Result, W.ERROR: pb.Error,
                            W.DISCONNECT: None},
    (WORKER_HEADER, False): {W.TASK: pb.Task, W.CANCEL: pb.AttemptRef,
                             W.HEARTBEAT: pb.BrokerBeat, W.DISCONNECT: None},
}
_NEEDS_PAYLOAD = {(CLIENT_HEADER, C.SUBMIT), (WORKER_HEADER, W.TASK)}


@dataclass
class Message:
    header: bytes
    cmd: int
    body: Any = None              # decoded protobuf message, or None for empty-body commands
    payload: bytes | None = None  # request JSON on SUBMIT / TASK

    @property
    def name(self) -> str:
        return cmd_name(self.header, self.cmd)


def cmd_name(header: bytes, cmd: int) -> str:
    enum = C if header == CLIENT_HEADER else W
    try:
        return enum(cmd).name
    except ValueError:
        return f"0x{cmd:02x}"


def encode(header: bytes, cmd: int, body: PbMessage | None = None,
           payload: bytes | None = None) -> list[bytes]:
    """Frames for one message: header, command, body (empty if None), payload if given."""
    frames = [header, bytes([cmd]), body.SerializeToString() if body is not None else b""]
    if payload is not None:
        frames.append(payload)
    return frames


def parse(frames: list[bytes], header: bytes, to_broker: bool,
          max_frame: int = DEFAULT_MAX_FRAME) -> tuple[Message | None, str]:
    """Validate and decode one message (routing id already removed).

    header: the side expected on this socket; to_broker: direction of travel.
    Returns (message, "") or (None, reason). Never raises on peer bytes.
    """
    try:
        return _parse(frames, header, to_broker, max_frame)
    except Exception as e:  # defensive: a decoder bug must not kill a receive loop
        return None, f"undecodable message ({type(e).__name__})"


def _parse(frames: list[bytes], header: bytes, to_broker: bool,
           max_frame: int) -> tuple[Message | None, str]:
    if len(frames) < 2:
        return None, "missing frames"
    if len(frames) > MAX_FRAMES:
        return None, "too many frames"
    if any(len(f) > max_frame for f in frames):
        return None, "frame too large"
    if bytes(frames[0]) != header:
        return None, "unknown header" if len(frames[0]) == 6 else "bad header"
    if len(frames[1]) != 1:
        return None, "bad command frame"
    cmd = frames[1][0]
    bodies = _BODY[(header, to_broker)]
    if cmd not in bodies:
        return None, f"unexpected command 0x{cmd:02x}"
    key = (header, cmd)
    payload = bytes(frames[3]) if len(frames) == 4 else None
    if key in _NEEDS_PAYLOAD and payload is None:
        return None, f"{cmd_name(header, cmd)} without payload"
    if key not in _NEEDS_PAYLOAD and payload is not None:
        return None, f"unexpected payload on {cmd_name(header, cmd)}"
    cls = bodies[cmd]
    body = None
    if cls is not None:
        body = cls()
        raw = bytes(frames[2]) if len(frames) > 2 else b""
        try:
            with warnings.catch_warnings():
                # the pure-Python decoder warns (instead of failing) on some truncated input
                warnings.simplefilter("error", RuntimeWarning)
                body.MergeFromString(raw)
        except (DecodeError, ValueError, RuntimeError, RuntimeWarning):
            return None, f"undecodable {cmd_name(header, cmd)} body"
        if not body.IsInitialized():
            return None, f"{cmd_name(header, cmd)} body misses required fields"
    return Message(header, cmd, body, payload), ""


Sock = Callable[[], "zmq.Socket[Any] | None"]


def pending(sock: Sock, limit: int) -> Iterator[list[bytes]]:
    """The messages waiting on sock(), at most limit of them, without blocking. sock is
    asked again before each read: the caller may close the socket (None) in between."""
    for _ in range(limit):
        s = sock()
        if s is None:
            return
        try:
            yield s.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            return


def monitor_events(mon: Sock) -> Iterator[int]:
    """The socket-monitor events waiting on mon() (their numbers), without blocking;
    events that do not parse are skipped. mon is asked again before each read."""
    while (m := mon()) is not None:
        try:
            frames = m.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            return
        try:
            yield int(parse_monitor_message(frames)["event"])
        except Exception:
            continue
