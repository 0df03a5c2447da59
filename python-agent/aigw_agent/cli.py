"""Command lines: aigw-agent (serve the agent strategies) and aigw-ask (one question)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

import zmq.asyncio

from .client import Client, Completion
from .config import ConfigError, load_config, parse_endpoints
from .curve import CurveKeys, load_curve
from .errors import AigwError, Attempt
from .runner import Agent

DEFAULT_MAIN = "config/aigw.conf"
DEFAULT_AGENT = ("python-agent/agent.conf", "agent.conf")
CLOSE_LINGER_MS = 200


def _existing(path: str | None, defaults: Sequence[str]) -> str | None:
    if path:
        return path
    return next((p for p in defaults if Path(p).is_file()), None)


# ---- aigw-agent

def agent_main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aigw-agent",
                                 description="Serve the aigw agent strategies as a broker worker.")
    ap.add_argument("--config", help=f"main aigw config (default {DEFAULT_MAIN} if present)")
    ap.add_argument("--agent-config", help="agent settings (default python-agent/agent.conf "
                                           "or ./agent.conf if present)")
    ap.add_argument("--id", help="worker id announced in READY")
    ap.add_argument("--capacity", type=int, help="concurrent agent tasks")
    ap.add_argument("--frontend", help="broker frontend endpoint(s), a comma list (sub-jobs)")
    ap.add_argument("--backend", help="broker backend endpoint(s), a comma list (tasks)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s aigw-agent %(levelname)s %(message)s")
    try:
        cfg = load_config(_existing(args.config, [DEFAULT_MAIN]),
                          _existing(args.agent_config, DEFAULT_AGENT))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    for attr, value in (("worker_id", args.id), ("capacity", args.capacity)):
        if value is not None:
            setattr(cfg, attr, value)
    try:
        for attr, flag, value in (("frontend", "--frontend", args.frontend),
                                  ("backend", "--backend", args.backend)):
            if value is not None:
                setattr(cfg, attr, ", ".join(parse_endpoints(value, flag)))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    ctx = zmq.asyncio.Context()
    try:
        try:
            agent = Agent(cfg, ctx)   # loads the CURVE certificates when fabric/curve = on
        except ConfigError as e:
            print(e, file=sys.stderr)
            return 2
        asyncio.run(_serve(agent))
    except KeyboardInterrupt:
        pass
    finally:
        ctx.term()
    return 0


async def _serve(agent: Agent) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    logging.getLogger("aigw_agent").info(
        "serving %s: tasks from %s, sub-jobs to %s", ", ".join(agent.worker.services),
        agent.cfg.backend, agent.cfg.frontend)
    keys = agent.client.curve
    if keys is not None:
        logging.getLogger("aigw_agent").info(
            "CURVE on: certificate %s (public key %s), broker certificate %s",
            keys.cert, keys.public.decode(), keys.server_cert)
    try:
        await agent.run()
    except asyncio.CancelledError:
        pass


# ---- aigw-ask

def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_attempts(attempts: list[Attempt]) -> str:
    """A compact table of attempts (times in ms since the job was accepted)."""
    head = ("target", "outcome", "worker", "start", "ttft", "end", "reason")
    rows = [head] + [(a.target, a.outcome, a.worker or "-", _ms(a.started_ms),
                      _ms(a.first_token_ms), _ms(a.finished_ms),
                      (f"{a.error} {a.reason}".strip())[:60] or "") for a in attempts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return "\n".join(("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
                     .rstrip() for r in rows)


def _summary(c: Completion) -> str:
    return f"winner {c.model or '?'}  latency {c.latency_ms:.1f} ms  job {c.job_id}"


def _ask_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="aigw-ask",
                                 description="Ask the aigw broker one question and show the race.")
    ap.add_argument("question", nargs="?", help="the question ('-' or absent: read stdin)")
    ap.add_argument("--race", "-m", "--targets", dest="targets", metavar="A,B",
                    help="models to run, in order (e.g. fast-sim,slow-sim or agent/deliberate)")
    ap.add_argument("--policy", choices=("race", "hedge", "fallback"), default="race")
    ap.add_argument("--hedge-delay-ms", type=int)
    ap.add_argument("--deadline-ms", type=int)
    ap.add_argument("--ttft-timeout-ms", type=int)
    ap.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    ap.add_argument("--system", help="system prompt")
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--broker", help="broker frontend(s), a comma list (default: edge/broker "
                                     "or broker/frontend of --config)")
    ap.add_argument("--config", help=f"main aigw config (default {DEFAULT_MAIN} if present)")
    ap.add_argument("--json", action="store_true", help="print the full response JSON")
    ap.add_argument("--status", action="store_true", help="show the broker's live models and exit")
    return ap


def ask_main(argv: Sequence[str] | None = None) -> int:
    ap = _ask_parser()
    args = ap.parse_args(argv)
    if not args.status and not args.targets:
        ap.error("name the models with --race a,b (or use --status)")
    if not args.status and (args.question in (None, "-")):
        args.question = sys.stdin.read().strip()
        if not args.question:
            ap.error("no question given")
    try:
        cfg = load_config(_existing(args.config, [DEFAULT_MAIN]), None)
        keys = load_curve(cfg)
        brokers = parse_endpoints(args.broker, "--broker") if args.broker else cfg.frontends
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    ctx = zmq.asyncio.Context()
    try:
        return asyncio.run(_ask(args, brokers, cfg.deadline_ms, ctx, keys, cfg.heartbeat_ms,
                                cfg.liveness))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\naigw-ask: cancelled", file=sys.stderr)
        return 130
    finally:
        ctx.term()


async def _ask(args: argparse.Namespace, brokers: str | list[str], default_deadline_ms: int,
               ctx: zmq.asyncio.Context, curve: CurveKeys | None = None,
               heartbeat_ms: int = 1000, liveness: int = 3) -> int:
    client = Client(brokers, context=ctx, default_deadline_ms=default_deadline_ms,
                    close_linger_ms=CLOSE_LINGER_MS, curve=curve, heartbeat_ms=heartbeat_ms,
                    liveness=liveness)
    task = asyncio.current_task()
    assert task is not None
    try:  # SIGTERM like Ctrl-C: cancel the job (CANCEL goes out), then exit
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    except (ValueError, RuntimeError, NotImplementedError):
        pass  # not the main thread (tests)
    try:
        if args.status:
            print(json.dumps(await client.status(), indent=2))
            return 0
        messages: list[dict[str, Any]] = []
        if args.system:
            messages.append({"role": "system", "content": args.system})
        messages.append({"role": "user", "content": args.question})
        params: dict[str, Any] = {}
        if args.temperature is not None:
            params["temperature"] = args.temperature
        if args.max_tokens is not None:
            params["max_tokens"] = args.max_tokens
        opts = dict(targets=args.targets, policy=args.policy, hedge_delay_ms=args.hedge_delay_ms,
                    deadline_ms=args.deadline_ms, ttft_timeout_ms=args.ttft_timeout_ms, **params)
        if args.stream:
            completion = await _ask_stream(client, messages, opts, args.json)
        else:
            completion = await client.complete(messages, **opts)
            print(json.dumps(completion.response, indent=2) if args.json else completion.content)
        print(f"\n{_summary(completion)}\n{format_attempts(completion.attempts)}", file=sys.stderr)
        return 0
    except AigwError as e:
        print(f"aigw-ask: {e}", file=sys.stderr)
        if e.attempts:
            print(format_attempts(e.attempts), file=sys.stderr)
        return 1
    finally:
        await client.close()


async def _ask_stream(client: Client, messages: list[dict[str, Any]], opts: dict[str, Any],
                      as_json: bool) -> Completion:
    printed = False
    async with client.stream(messages, **opts) as stream:
        async for chunk in stream:
            if as_json:
                print(json.dumps(chunk.data), flush=True)
            elif chunk.text:
                print(chunk.text, end="", flush=True)
                printed = True
    completion = stream.completion
    assert completion is not None
    if as_json:
        print(json.dumps(completion.response, indent=2))
    elif not printed:
        print(completion.content)  # the broker answered without chunks
    else:
        print()
    return completion
