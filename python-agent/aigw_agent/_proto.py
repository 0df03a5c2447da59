"""Find the generated protobuf module (aigw_pb2). Importing this never runs protoc and never
writes a file: generating the module is a build step.

Build steps: `python-agent/gen_proto.sh` writes aigw_agent/aigw_pb2.py (and, when mypy-protobuf's
protoc-gen-mypy is installed, the type stub aigw_pb2.pyi) for an editable or plain pip install;
the CMake build writes build/gen/python/aigw_pb2.py (target proto_python).

Order: aigw_agent/aigw_pb2.py if present; else a top-level `aigw_pb2` on sys.path (e.g.
PYTHONPATH=build/gen/python); else ImportError saying how to generate it.

Stale files: gen_proto.sh writes the SHA-256 of the aigw.proto it compiled on the file's first
line (`# aigw-proto-sha256: HEX`). When that line is there and the proto is found ($AIGW_PROTO_DIR,
or the repository's proto/ next to python-agent/), a digest that differs is refused with an
ImportError naming the file and how to regenerate it. A file without the line (the CMake output,
which the build itself keeps current) or without a proto to compare against is used as it is.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

PKG_DIR = Path(__file__).resolve().parent
MODULE = "aigw_agent.aigw_pb2"
TOP_MODULE = "aigw_pb2"              # the CMake build's output, on PYTHONPATH
STAMP = "# aigw-proto-sha256: "
HOWTO = ("run python-agent/gen_proto.sh (needs protoc: apt-get install protobuf-compiler), "
         "or build with CMake and put build/gen/python on PYTHONPATH")

__all__ = ["MODULE", "PKG_DIR", "STAMP", "load", "pb"]


def _proto_dir() -> Path | None:
    candidates = [os.environ.get("AIGW_PROTO_DIR"), PKG_DIR.parent.parent / "proto"]
    for c in candidates:
        if c and (Path(c) / "aigw.proto").is_file():
            return Path(c)
    return None


def _digest(proto_dir: Path) -> str:
    return hashlib.sha256((proto_dir / "aigw.proto").read_bytes()).hexdigest()


def _stamp(path: Path) -> str | None:
    """The proto digest recorded on the generated file's first line (None if absent)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        return None
    return first[len(STAMP):].strip() if first.startswith(STAMP) else None


def _check_current(path: Path) -> None:
    """Raise ImportError if `path` records a proto digest other than the proto's now."""
    stamp = _stamp(path)
    proto_dir = _proto_dir()
    if stamp is None or proto_dir is None:
        return
    digest = _digest(proto_dir)
    if stamp != digest:
        raise ImportError(
            f"aigw_agent: {path} is stale: it was generated from another version of "
            f"{proto_dir / 'aigw.proto'} (recorded sha256 {stamp[:12]}…, now {digest[:12]}…); "
            f"regenerate it: {HOWTO}")


def _load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"aigw_agent: cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[MODULE]
        raise
    return mod


def load() -> ModuleType:
    """The generated module: the package's copy, else the top-level one (see the module doc)."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    local = PKG_DIR / "aigw_pb2.py"
    if local.is_file():
        _check_current(local)
        return _load_file(local)
    spec = importlib.util.find_spec(TOP_MODULE)
    if spec is not None:
        if spec.origin and spec.has_location:
            _check_current(Path(spec.origin))
        return importlib.import_module(TOP_MODULE)
    raise ImportError(f"aigw_agent: the generated protobuf module is missing ({local} or a "
                      f"top-level {TOP_MODULE} on sys.path): {HOWTO}")


if TYPE_CHECKING:
    # The types come from aigw_pb2.pyi, written by gen_proto.sh with mypy-protobuf.
    from . import aigw_pb2 as pb
else:
    pb = load()
