"""agent/consensus: ask several models the same question at once, then a judge call picks
or merges an answer; reports which models agreed (in the text and under "aigw_agent")."""
from __future__ import annotations

import asyncio
import re
from typing import Any

from ..client import Client, Completion
from ..config import AgentConfig
from ..errors import AigwError, DeadlineExceeded, UpstreamError
from ..worker import TaskContext
from .common import add_usage, answer, forwarded, json_in, prompt, question_of, sub_deadline

_AGREE_LINE = re.compile(r"^\s*agree(?:d|ing|ment)?\s*[:=]\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_ANSWER_PREFIX = re.compile(r"^\s*(?:final\s+)?answer\s*[:=]\s*", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _agreeing(refs: Any, models: list[str]) -> list[str]:
    """Map judge references (1-based numbers or model names) to model names, in order."""
    if isinstance(refs, (str, int)):
        refs = re.split(r"[,\s]+", str(refs))
    if not isinstance(refs, list):
        return []
    out: list[str] = []
    for r in refs:
        r = str(r).strip().strip("#").strip()
        name = None
        if r.isdigit() and 1 <= int(r) <= len(models):
            name = models[int(r) - 1]
        elif r in models:
            name = r
        if name and name not in out:
            out.append(name)
    return out


def parse_verdict(text: str, answers: list[tuple[str, str]]) -> dict[str, Any]:
    """Read the judge's reply: {"answer", "agreed" (model names), "method"}.

    Accepts JSON ({"agree": [1, 2], "answer": "..."}), an "AGREE: 1, 2" line, or anything
    else, in which case agreement is found by comparing the answers' normalized text.
    """
    models = [m for m, _ in answers]
    value = json_in(text)
    if isinstance(value, dict) and isinstance(value.get("answer"), str) and value["answer"].strip():
        refs = value.get("agree", value.get("agreed", value.get("agreeing", [])))
        return {"answer": value["answer"].strip(), "agreed": _agreeing(refs, models),
                "method": "judge-json"}
    m = _AGREE_LINE.search(text)
    if m:
        rest = (text[:m.start()] + text[m.end():]).strip()
        rest = _ANSWER_PREFIX.sub("", rest).strip()
        if rest:
            return {"answer": rest, "agreed": _agreeing(m.group(1), models), "method": "judge-text"}
    groups: dict[str, list[str]] = {}
    for model, content in answers:
        groups.setdefault(_norm(content), []).append(model)
    best = max(groups.values(), key=len)
    agreed = best if len(best) > 1 else []
    fallback = next(c for mo, c in answers if mo == best[0])
    return {"answer": text.strip() or fallback, "agreed": agreed, "method": "exact-match"}


def agreement_line(agreed: list[str], asked: list[str], judge: str | None) -> str:
    judged = f"; judge: {judge}" if judge else ""
    if len(agreed) > 1:
        return f"Consensus: {', '.join(agreed)} agreed (asked: {', '.join(asked)}{judged})."
    if len(agreed) == 1:
        return f"Consensus: only {agreed[0]} supports this answer (asked: {', '.join(asked)}{judged})."
    return f"Consensus: no two models agreed (asked: {', '.join(asked)}{judged})."


class Consensus:
    """Handler for agent/consensus (callable as handler(request, ctx))."""

    def __init__(self, cfg: AgentConfig, client: Client):
        self.cfg = cfg
        self.client = client

    async def __call__(self, request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        question = question_of(request)
        params = forwarded(request)
        messages = [m for m in request["messages"] if isinstance(m, dict)]
        models = self.cfg.consensus_models
        usage: dict[str, int] = {}
        results = await asyncio.gather(
            *(self.client.complete(messages, targets=[m], deadline_ms=sub_deadline(ctx), **params)
              for m in models), return_exceptions=True)
        ok: list[tuple[str, str]] = []
        trace = []
        for model, r in zip(models, results):
            if isinstance(r, Completion):
                add_usage(usage, r.usage)
                ok.append((model, r.content))
                trace.append({"model": model, "content": r.content,
                              "latency_ms": round(r.latency_ms, 1)})
            else:
                trace.append({"model": model, "error": str(r) or type(r).__name__})
        if not ok:
            first = results[0]
            if isinstance(first, DeadlineExceeded):
                raise first
            raise UpstreamError(f"every model failed, first: {first}")

        verdict, judge = await self._judge(question, ok, params, ctx, usage)
        asked = [m for m, _ in ok]
        text = f"{verdict['answer']}\n\n{agreement_line(verdict['agreed'], asked, judge)}"
        if ctx.stream:
            ctx.emit_text(text)
            ctx.emit_text("", finish_reason="stop")
        info = {"strategy": "consensus", "models": models, "answers": trace,
                "agreed": verdict["agreed"], "judge": judge, "method": verdict["method"]}
        if "judge_error" in verdict:
            info["judge_error"] = verdict["judge_error"]
        return answer(ctx, text, info, usage)

    async def _judge(self, question: str, ok: list[tuple[str, str]], params: dict[str, Any],
                     ctx: TaskContext, usage: dict[str, int]) -> tuple[dict[str, Any], str | None]:
        if len(ok) == 1:
            return {"answer": ok[0][1], "agreed": [ok[0][0]], "method": "single"}, None
        listing = "\n\n".join(f"Answer {i} (from {m}):\n{c}" for i, (m, c) in enumerate(ok, 1))
        text = prompt("consensus_judge", question=question, answers=listing, count=str(len(ok)))
        try:
            judged = await self.client.complete(text, targets=[self.cfg.consensus_judge],
                                                deadline_ms=sub_deadline(ctx), **params)
        except DeadlineExceeded:
            raise
        except AigwError as e:  # no judge: fall back to comparing the answers themselves
            verdict = parse_verdict("", ok)
            verdict["judge_error"] = str(e)
            return verdict, None
        add_usage(usage, judged.usage)
        return parse_verdict(judged.content, ok), judged.model
