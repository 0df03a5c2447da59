"""aigw Python agent: a client of the aigw broker and a worker serving agent strategies."""
from __future__ import annotations

__version__ = "0.1.0"

from .client import Chunk, Client, Completion, Stream  # noqa: E402
from .config import AgentConfig, ConfigError, load_config, parse_zpl  # noqa: E402
from .curve import CurveKeys, load_curve, load_keys  # noqa: E402
from .errors import (AigwError, Attempt, BadRequest, Cancelled, DeadlineExceeded,  # noqa: E402
                     Overloaded, TimeoutError_, Unavailable, UnknownModel, UpstreamError)
from .runner import Agent, run_agent  # noqa: E402
from .worker import TaskContext, WorkerBase  # noqa: E402

__all__ = [
    "Agent", "AgentConfig", "AigwError", "Attempt", "BadRequest", "Cancelled", "Chunk", "Client",
    "Completion", "ConfigError", "CurveKeys", "DeadlineExceeded", "Overloaded", "Stream",
    "TaskContext", "TimeoutError_", "Unavailable", "UnknownModel", "UpstreamError", "WorkerBase",
    "load_config", "load_curve", "load_keys", "parse_zpl", "run_agent",
]
