"""agent/deliberate: plan sub-questions (one call), answer them in parallel as race jobs,
then synthesize the final answer with one more call, streamed as chunks."""
from __future__ import annotations

import asyncio
import re
from typing import Any

from ..client import Client, Completion
from ..config import AgentConfig
from ..errors import AigwError, DeadlineExceeded, UpstreamError
from ..worker import TaskContext
from .common import add_usage, answer, forwarded, json_in, prompt, question_of, sub_deadline

MAX_SUBQUESTION_CHARS = 500
_ITEM = re.compile(r"^\s*(?:\(?\d{1,2}\s*[.):]|[-*\u2022]|Q\d{1,2}\s*[.):]?)\s+(.+?)\s*$",
                   re.IGNORECASE)
_LIST_KEYS = ("questions", "sub_questions", "subquestions", "sub-questions", "steps", "plan")


def _json_items(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        for k in _LIST_KEYS:
            if isinstance(value.get(k), list):
                value = value[k]
                break
        else:
            return None
    if not isinstance(value, list):
        return None
    items = []
    for v in value:
        if isinstance(v, dict):
            v = v.get("question") or v.get("q") or v.get("text")
        if isinstance(v, str):
            items.append(v)
    return items


def _list_items(text: str) -> list[str]:
    items = []
    for line in text.splitlines():
        m = _ITEM.match(line)
        if m:
            items.append(m.group(1).replace("**", "").strip())
    return items


def parse_plan(text: str, question: str, max_items: int = 4) -> list[str]:
    """Sub-questions from planner output (JSON array/object or a numbered/bulleted list).

    Falls back to [question] when nothing usable is found. Deduplicated, at most max_items.
    """
    items = _json_items(json_in(text)) or _list_items(text)
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        item = " ".join(item.split())[:MAX_SUBQUESTION_CHARS]
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
        if len(out) == max_items:
            break
    return out or [question]


class Deliberate:
    """Handler for agent/deliberate (callable as handler(request, ctx))."""

    def __init__(self, cfg: AgentConfig, client: Client):
        self.cfg = cfg
        self.client = client

    async def __call__(self, request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        question = question_of(request)
        params = forwarded(request)
        usage: dict[str, int] = {}
        info: dict[str, Any] = {"strategy": "deliberate"}

        subqs, info["planner"] = await self._plan(question, params, ctx, usage)
        info["plan"] = subqs
        results = await asyncio.gather(*(self._solve(question, q, params, ctx) for q in subqs),
                                       return_exceptions=True)
        notes, info["answers"] = self._notes(subqs, results, usage)
        if not notes:
            first = next(r for r in results if isinstance(r, BaseException))
            if isinstance(first, DeadlineExceeded):
                raise first
            raise UpstreamError(f"every sub-question failed, first: {first}")

        synth_prompt = prompt("deliberate_synth", question=question, notes="\n\n".join(notes))
        final = await self._synthesize(synth_prompt, params, ctx)
        add_usage(usage, final.usage)
        info["synthesizer"] = {"model": final.model, "latency_ms": round(final.latency_ms, 1)}
        return answer(ctx, final.content, info, usage)

    async def _plan(self, question: str, params: dict[str, Any], ctx: TaskContext,
                    usage: dict[str, int]) -> tuple[list[str], dict[str, Any]]:
        n = self.cfg.deliberate_max_subquestions
        text = prompt("deliberate_plan", question=question, max_items=str(n))
        try:
            plan = await self.client.complete(text, targets=[self.cfg.deliberate_planner],
                                              deadline_ms=sub_deadline(ctx), **params)
        except DeadlineExceeded:
            raise
        except AigwError as e:  # no plan: answer the question as a whole
            return [question], {"model": self.cfg.deliberate_planner, "error": str(e)}
        add_usage(usage, plan.usage)
        return parse_plan(plan.content, question, n), {"model": plan.model,
                                                       "latency_ms": round(plan.latency_ms, 1)}

    async def _solve(self, question: str, sub_question: str, params: dict[str, Any],
                     ctx: TaskContext) -> Completion:
        text = prompt("deliberate_solve", question=question, sub_question=sub_question)
        return await self.client.complete(text, targets=self.cfg.deliberate_solvers,
                                          policy=self.cfg.deliberate_policy,
                                          deadline_ms=sub_deadline(ctx), **params)

    @staticmethod
    def _notes(subqs: list[str], results: list[Any],
               usage: dict[str, int]) -> tuple[list[str], list[dict[str, Any]]]:
        notes, trace = [], []
        for i, (q, r) in enumerate(zip(subqs, results), 1):
            if isinstance(r, Completion):
                add_usage(usage, r.usage)
                notes.append(f"{i}. {q}\nAnswer (from {r.model}): {r.content}")
                trace.append({"question": q, "model": r.model, "content": r.content,
                              "latency_ms": round(r.latency_ms, 1)})
            else:
                trace.append({"question": q, "error": str(r) or type(r).__name__})
        return notes, trace

    async def _synthesize(self, text: str, params: dict[str, Any], ctx: TaskContext) -> Completion:
        targets = [self.cfg.deliberate_synth]
        if not ctx.stream:
            return await self.client.complete(text, targets=targets,
                                              deadline_ms=sub_deadline(ctx), **params)
        async with self.client.stream(text, targets=targets, deadline_ms=sub_deadline(ctx),
                                      **params) as stream:
            async for chunk in stream:
                if chunk.text:
                    ctx.emit_text(chunk.text)
        final = stream.completion
        assert final is not None
        if ctx.chunks_sent == 0 and final.content:
            ctx.emit_text(final.content)  # the broker answered without chunks
        ctx.emit_text("", finish_reason="stop")
        return final
