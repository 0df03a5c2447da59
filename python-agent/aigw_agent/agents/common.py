"""Helpers shared by the agent strategies: prompt templates, request reading, answers."""
from __future__ import annotations

import json
import re
import string
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..client import completion_dict
from ..errors import BadRequest

if TYPE_CHECKING:
    from ..worker import TaskContext

# OpenAI parameters forwarded from the agent's request to its sub-calls.
FORWARDED_PARAMS = ("temperature", "top_p", "max_tokens")
SUB_DEADLINE_MARGIN_MS = 50


@lru_cache(maxsize=None)
def _template(name: str) -> string.Template:
    text = resources.files("aigw_agent").joinpath("prompts", f"{name}.txt").read_text("utf-8")
    return string.Template(text)


def prompt(name: str, **values: str) -> str:
    """Fill prompts/<name>.txt ($placeholders; a missing value is left as is)."""
    return _template(name).safe_substitute(values).strip()


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def question_of(request: dict[str, Any]) -> str:
    """The last user message of an OpenAI chat request; BadRequest if there is none."""
    messages = request.get("messages")
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                text = content_text(m.get("content")).strip()
                if text:
                    return text
    raise BadRequest("the request has no user message")


def forwarded(request: dict[str, Any]) -> dict[str, Any]:
    return {k: request[k] for k in FORWARDED_PARAMS if k in request}


def sub_deadline(ctx: TaskContext | None) -> int | None:
    """Deadline for a sub-job: what is left of this attempt's budget, minus a margin."""
    remaining = ctx.remaining_ms() if ctx is not None else None
    if remaining is None:
        return None
    return max(1, remaining - SUB_DEADLINE_MARGIN_MS)


def answer(ctx: TaskContext, content: str, agent_info: dict[str, Any],
           usage: dict[str, int] | None = None) -> dict[str, Any]:
    """The agent's final OpenAI chat.completion, with its trace under "aigw_agent"."""
    extra: dict[str, Any] = {"aigw_agent": agent_info}
    if usage:
        extra["usage"] = usage
    return completion_dict(ctx.target, content, ctx.completion_id, **extra)


def add_usage(total: dict[str, int], usage: dict[str, Any] | None) -> None:
    for k in ("prompt_tokens", "completion_tokens"):
        v = (usage or {}).get(k)
        if isinstance(v, int):
            total[k] = total.get(k, 0) + v


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def json_in(text: str) -> Any:
    """The first JSON object or array found in text (also inside ``` fences); None if none."""
    text = _FENCE.sub("", text.strip())
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "[{":
            try:
                value, _ = decoder.raw_decode(text, i)
                return value
            except ValueError:
                continue
    return None
