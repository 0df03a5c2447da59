"""ZPL config files (ZeroMQ RFC 4, as CZMQ zconfig reads them) and the agent's settings.

The broker endpoints, heartbeat and CURVE settings come from the main aigw config (the same
file the C binaries read); strategy settings come from a separate agent file
(python-agent/agent.conf), because the C loader rejects unknown sections.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

MAX_FILE = 1024 * 1024
BROKERS_MAX = 8                  # endpoints in a broker list (CFG_BROKERS_MAX in common/cfg.h)
_ENDPOINT_PREFIXES = ("tcp://", "ipc://", "inproc://")
_NAME = re.compile(r"[A-Za-z0-9$\-_@.&+/:]+")
_CERT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")   # as the C loader: < 64 chars
_BOOL = {"on": True, "true": True, "yes": True, "1": True,
         "off": False, "false": False, "no": False, "0": False}


class ConfigError(ValueError):
    pass


@dataclass
class Node:
    name: str
    value: str | None = None
    children: list["Node"] = field(default_factory=list)

    def child(self, name: str) -> "Node | None":
        for c in self.children:
            if c.name == name:
                return c
        return None

    def get(self, path: str, default: str | None = None) -> str | None:
        """Value at a slash path such as "broker/frontend" (default if absent)."""
        node: Node | None = self
        for part in path.strip("/").split("/"):
            node = node.child(part) if node else None
        return node.value if node is not None and node.value is not None else default

    def walk(self, prefix: str = "") -> Iterator[tuple[str, "Node"]]:
        for c in self.children:
            path = f"{prefix}{c.name}"
            yield path, c
            yield from c.walk(path + "/")


def parse_zpl(text: str, source: str = "(string)") -> Node:
    """Parse ZPL text into a tree of Nodes; raises ConfigError naming the file and line."""
    root = Node("root")
    stack: list[Node] = [root]
    for lineno, raw in enumerate(text.splitlines(), 1):
        def fail(why: str) -> ConfigError:
            return ConfigError(f"config {source}:{lineno}: {why}")
        line = raw.rstrip()
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        if "\t" in line[: len(line) - len(body) + 1]:
            raise fail("tab in indentation (indent by 4 spaces)")
        indent = len(line) - len(body)
        if indent % 4:
            raise fail("indentation is not a multiple of 4 spaces")
        level = indent // 4
        if level > len(stack) - 1:
            raise fail("indented too deep")
        m = _NAME.match(body)
        if not m:
            raise fail(f"bad name in {body!r}")
        name, rest = m.group(0), body[m.end():].lstrip()
        value = None
        if rest.startswith("="):
            value = _value(rest[1:].strip(), fail)
        elif rest and not rest.startswith("#"):
            raise fail(f"expected 'name = value' after {name!r}")
        node = Node(name, value)
        del stack[level + 1:]
        stack[level].children.append(node)
        stack.append(node)
    return root


def _value(text: str, fail: Callable[[str], ConfigError]) -> str:
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end < 0:
            raise fail("unterminated quoted value")
        tail = text[end + 1:].strip()
        if tail and not tail.startswith("#"):
            raise fail(f"text after quoted value: {tail!r}")
        return text[1:end]
    hash_at = text.find("#")
    return (text[:hash_at] if hash_at >= 0 else text).strip()


def load_zpl(path: str | os.PathLike[str]) -> Node:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"config {p}: cannot open: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise ConfigError(f"config {p}: file larger than {MAX_FILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config {p}: not UTF-8") from None
    return parse_zpl(text, str(p))


def split_list(value: str) -> list[str]:
    """"a, b c" -> ["a", "b", "c"] (commas and blanks separate, as in group targets)."""
    return [v for v in re.split(r"[,\s]+", value) if v]


def parse_endpoints(value: "str | Iterable[str]", what: str = "broker endpoints") -> list[str]:
    """A broker list: a comma (or blank) separated string, or a sequence of endpoints, of
    1..BROKERS_MAX zmq endpoints, none twice. Raises ConfigError naming `what`."""
    items = split_list(value) if isinstance(value, str) else [
        p for v in value for p in split_list(str(v))]
    if not items:
        raise ConfigError(f"{what}: expected 1 to {BROKERS_MAX} zmq endpoints like "
                          "tcp://127.0.0.1:5555, got none")
    if len(items) > BROKERS_MAX:
        raise ConfigError(f"{what}: more than {BROKERS_MAX} brokers ({len(items)})")
    seen: set[str] = set()
    for ep in items:
        if not ep.startswith(_ENDPOINT_PREFIXES) or ep in _ENDPOINT_PREFIXES:
            raise ConfigError(f"{what}: expected a zmq endpoint like tcp://127.0.0.1:5555, "
                              f"got {ep!r}")
        if ep in seen:
            raise ConfigError(f"{what}: {ep} is listed twice")
        seen.add(ep)
    return items


@dataclass
class AgentConfig:
    # Broker lists: one endpoint or a comma list of up to BROKERS_MAX (all used at once)
    frontend: str = "tcp://127.0.0.1:5555"   # broker frontend(s) (agent as client)
    backend: str = "tcp://127.0.0.1:5556"    # broker backend(s) (agent as worker)
    heartbeat_ms: int = 1000
    liveness: int = 3
    max_frame: int = 8 * 1024 * 1024
    deadline_ms: int = 120000                # broker default deadline (client-side wait bound)
    worker_id: str = field(default_factory=lambda: f"agent-{socket.gethostname()}-{os.getpid()}")
    capacity: int = 16
    deliberate_service: str = "agent/deliberate"  # "" disables the strategy
    deliberate_planner: str = "fast-sim"
    deliberate_solvers: list[str] = field(default_factory=lambda: ["fast-sim", "slow-sim"])
    deliberate_policy: str = "race"
    deliberate_synth: str = "fast-sim"
    deliberate_max_subquestions: int = 4
    consensus_service: str = "agent/consensus"
    consensus_models: list[str] = field(default_factory=lambda: ["fast-sim", "slow-sim"])
    consensus_judge: str = "fast-sim"
    curve: bool = False                      # fabric/curve: CURVE on the broker links
    cert_dir: str | None = None              # fabric/cert_dir, made absolute
    broker_cert: str = "broker"              # broker/cert: NAME of cert_dir/NAME.cert
    agent_cert: str = "agent"                # agent/cert: NAME of cert_dir/NAME.cert_secret

    @property
    def frontends(self) -> list[str]:
        """The client side's brokers (frontend as a list)."""
        return parse_endpoints(self.frontend, "frontend")

    @property
    def backends(self) -> list[str]:
        """The worker side's brokers (backend as a list)."""
        return parse_endpoints(self.backend, "backend")


def _int(path: str, value: str, lo: int, hi: int, source: str) -> int:
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise ConfigError(f"config {source}: {path}: expected an integer from {lo} to {hi}, got {value!r}")
    return int(value)


def _endpoints(path: str, value: str, source: str) -> str:
    """A broker list (one endpoint or a comma list), checked; returned as ", "-joined."""
    return ", ".join(parse_endpoints(value, f"config {source}: {path}"))


def _cert_name(path: str, value: str, source: str) -> str:
    if not _CERT_NAME.fullmatch(value):
        raise ConfigError(f"config {source}: {path}: expected a certificate name (letters, "
                          f"digits, '.', '_', '-'; at most 63 characters), got {value!r}")
    return value


def apply_main(cfg: AgentConfig, root: Node, source: str) -> None:
    """Take endpoints, heartbeat and CURVE settings from the main aigw config (other keys
    ignored). fabric/cert_dir is relative to the directory of `source`."""
    # The client side is like an edge (edge/broker, else broker/frontend), the worker side
    # like a worker (worker/broker, else broker/backend); each may list several brokers
    for attr, keys in (("frontend", ("edge/broker", "broker/frontend")),
                       ("backend", ("worker/broker", "broker/backend"))):
        for key in keys:
            v = root.get(key)
            if v:
                setattr(cfg, attr, _endpoints(key, v, source))
                break
    for key, lo, hi in (("heartbeat_ms", 1, 3600000), ("liveness", 1, 1000),
                        ("max_frame", 4096, 1 << 30), ("deadline_ms", 1, 3600000)):
        v = root.get(f"broker/{key}")
        if v is not None:
            setattr(cfg, key, _int(f"broker/{key}", v, lo, hi, source))
    v = root.get("fabric/curve")
    if v is not None:
        if v not in _BOOL:   # the C loader's booleans: on/off, true/false, yes/no, 1/0
            raise ConfigError(f"config {source}: fabric/curve: expected on or off, got {v!r}")
        cfg.curve = _BOOL[v]
    v = root.get("fabric/cert_dir")
    if v is not None:
        if not v:
            raise ConfigError(f"config {source}: fabric/cert_dir: must not be empty")
        cfg.cert_dir = os.path.abspath(os.path.join(os.path.dirname(source), v))
    v = root.get("broker/cert")
    if v is not None:
        cfg.broker_cert = _cert_name("broker/cert", v, source)
    v = root.get("agent/cert")
    if v is not None:
        cfg.agent_cert = _cert_name("agent/cert", v, source)
    if cfg.curve and cfg.cert_dir is None:
        raise ConfigError(f"config {source}: fabric/cert_dir: required when fabric/curve = on")


_AGENT_KEYS = {
    "agent/id": "worker_id", "agent/capacity": "capacity", "agent/frontend": "frontend",
    "agent/backend": "backend", "agent/cert": "agent_cert",
    "deliberate/service": "deliberate_service", "deliberate/planner": "deliberate_planner",
    "deliberate/solvers": "deliberate_solvers", "deliberate/policy": "deliberate_policy",
    "deliberate/synth": "deliberate_synth",
    "deliberate/max_subquestions": "deliberate_max_subquestions",
    "consensus/service": "consensus_service", "consensus/models": "consensus_models",
    "consensus/judge": "consensus_judge",
}


def apply_agent(cfg: AgentConfig, root: Node, source: str) -> None:
    """Apply the agent file; unknown sections or keys are errors (as in the C loader)."""
    for path, node in root.walk():
        if "/" not in path:
            if node.name not in ("agent", "deliberate", "consensus"):
                raise ConfigError(f"config {source}: {path}: unknown section "
                                  "(expected agent, deliberate, consensus)")
            continue
        attr = _AGENT_KEYS.get(path)
        if attr is None or node.children:
            raise ConfigError(f"config {source}: {path}: unknown key")
        value = node.value or ""
        if attr == "capacity":
            cfg.capacity = _int(path, value, 1, 100000, source)
        elif attr == "deliberate_max_subquestions":
            cfg.deliberate_max_subquestions = _int(path, value, 1, 16, source)
        elif attr in ("frontend", "backend"):
            setattr(cfg, attr, _endpoints(path, value, source))
        elif attr == "agent_cert":
            cfg.agent_cert = _cert_name(path, value, source)
        elif attr in ("deliberate_solvers", "consensus_models"):
            names = split_list(value)
            if not names:
                raise ConfigError(f"config {source}: {path}: needs at least one model")
            setattr(cfg, attr, names)
        elif attr == "deliberate_policy" and value not in ("race", "hedge", "fallback"):
            raise ConfigError(f"config {source}: {path}: unknown policy {value!r}")
        elif attr in ("deliberate_planner", "deliberate_synth", "consensus_judge",
                      "worker_id") and not value:
            raise ConfigError(f"config {source}: {path}: must not be empty")
        else:
            setattr(cfg, attr, value)


def load_config(main: str | os.PathLike[str] | None = None,
                agent: str | os.PathLike[str] | None = None) -> AgentConfig:
    """Defaults, then the main aigw config, then the agent file (either may be None)."""
    cfg = AgentConfig()
    if main is not None:
        apply_main(cfg, load_zpl(main), str(main))
    if agent is not None:
        apply_agent(cfg, load_zpl(agent), str(agent))
    return cfg
