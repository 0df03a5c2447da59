"""Typed errors for aigw jobs: one class per ErrorCode family, carrying code, message, attempts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ._proto import pb


class _Enum(Protocol):
    """A generated protobuf enum (pb.Outcome, pb.ErrorCode): its Name() of a value."""
    def Name(self, number: Any) -> str: ...


@dataclass
class Attempt:
    """One attempt of a job as the broker reports it (times in ms since the job was accepted)."""
    attempt_id: int
    target: str
    outcome: str                      # won / cancelled / failed / running / pending
    worker: str = ""
    started_ms: float | None = None
    first_token_ms: float | None = None
    finished_ms: float | None = None
    error: str = ""                   # ErrorCode name, e.g. "ERR_UPSTREAM"
    reason: str = ""

    @classmethod
    def from_pb(cls, a: pb.AttemptInfo) -> "Attempt":
        def ms(field: Literal["started_us", "first_token_us", "finished_us"]) -> float | None:
            if not a.HasField(field):
                return None
            us: int = getattr(a, field)
            return us / 1000.0
        return cls(
            attempt_id=a.attempt_id,
            target=a.target,
            outcome=_enum_name(pb.Outcome, a.outcome, "OUTCOME_").lower(),
            worker=a.worker,
            started_ms=ms("started_us"),
            first_token_ms=ms("first_token_us"),
            finished_ms=ms("finished_us"),
            error=_enum_name(pb.ErrorCode, a.error, "") if a.HasField("error") else "",
            reason=a.reason,
        )


def _enum_name(enum: _Enum, value: int, prefix: str) -> str:
    try:
        return enum.Name(value)[len(prefix):]
    except ValueError:
        return str(value)


def code_name(code: int) -> str:
    return _enum_name(pb.ErrorCode, code, "")


class AigwError(Exception):
    """A job (or the link to the broker) failed. code is a pb.ErrorCode value."""
    default_code = pb.ERR_INTERNAL

    def __init__(self, message: str = "", code: int | None = None,
                 attempts: list[Attempt] | None = None, job_id: int | None = None):
        self.code = self.default_code if code is None else code
        self.message = message
        self.attempts = attempts or []
        self.job_id = job_id       # set when the error is the broker's answer to a job
        super().__init__(f"{code_name(self.code)}: {message}" if message else code_name(self.code))

    @property
    def code_name(self) -> str:
        return code_name(self.code)


class BadRequest(AigwError):
    default_code = pb.ERR_BAD_REQUEST


class UnknownModel(AigwError):
    default_code = pb.ERR_UNKNOWN_MODEL


class Overloaded(AigwError):
    default_code = pb.ERR_OVERLOADED


class UpstreamError(AigwError):
    """Every upstream failed (also TTFT timeouts and lost workers)."""
    default_code = pb.ERR_UPSTREAM


class Unavailable(AigwError):
    """No worker serves the model, or the broker does not answer."""
    default_code = pb.ERR_UNAVAILABLE


class DeadlineExceeded(AigwError):
    default_code = pb.ERR_TIMEOUT


TimeoutError_ = DeadlineExceeded


class Cancelled(AigwError):
    default_code = pb.ERR_CANCELLED


_BY_CODE: dict[int, type[AigwError]] = {
    pb.ERR_BAD_REQUEST: BadRequest,
    pb.ERR_UNKNOWN_MODEL: UnknownModel,
    pb.ERR_OVERLOADED: Overloaded,
    pb.ERR_UPSTREAM: UpstreamError,
    pb.ERR_TTFT: UpstreamError,
    pb.ERR_WORKER_LOST: UpstreamError,
    pb.ERR_UPSTREAM_AUTH: UpstreamError,
    pb.ERR_RATE_LIMITED: Overloaded,
    pb.ERR_UNAVAILABLE: Unavailable,
    pb.ERR_TIMEOUT: DeadlineExceeded,
    pb.ERR_CANCELLED: Cancelled,
}


def error_for(code: int, message: str, attempts: list[Attempt] | None = None,
              job_id: int | None = None) -> AigwError:
    """The typed exception for an ErrorCode (AigwError itself for INTERNAL and unknown codes)."""
    cls = _BY_CODE.get(code, AigwError)
    return cls(message, code=code, attempts=attempts, job_id=job_id)
