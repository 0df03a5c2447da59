"""Load the generated protobuf module (aigw_pb2), generating it with protoc on first use.

Order: aigw_agent/aigw_pb2.py if present and current; else run protoc on the repo's
proto/aigw.proto (or $AIGW_PROTO_DIR) into the package folder (or a temp folder if that is
read-only); else a top-level `aigw_pb2` on sys.path (e.g. build/gen/python); else ImportError.

"Current": the generated file's first line records the SHA-256 of the aigw.proto it was made
from (`# aigw-proto-sha256: HEX`, written here and by gen_proto.sh). When the proto is found
and its digest differs (or the line is missing), the file is regenerated, so an edited proto
is picked up without deleting anything by hand. Without protoc, a file whose recorded digest
differs is refused (ImportError saying so); one without the line is used as it is.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PKG_DIR = Path(__file__).resolve().parent
MODULE = "aigw_agent.aigw_pb2"
STAMP = "# aigw-proto-sha256: "


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


def _load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = mod
    spec.loader.exec_module(mod)
    return mod


def _generate(proto_dir: Path) -> Path:
    """Run protoc into a temp dir, then move the file into the package (atomic) or keep it there."""
    protoc = shutil.which("protoc")
    if not protoc:
        raise ImportError("aigw_agent: aigw_pb2.py is missing and protoc is not installed "
                          "(apt-get install protobuf-compiler, then python-agent/gen_proto.sh)")
    tmp = Path(tempfile.mkdtemp(prefix="aigw_pb2_"))
    res = subprocess.run([protoc, f"--proto_path={proto_dir}", f"--python_out={tmp}",
                          str(proto_dir / "aigw.proto")], capture_output=True, text=True)
    if res.returncode != 0:
        raise ImportError(f"aigw_agent: protoc failed on {proto_dir / 'aigw.proto'}: "
                          f"{res.stderr.strip()}")
    out = tmp / "aigw_pb2.py"
    out.write_text(f"{STAMP}{_digest(proto_dir)}\n" + out.read_text(encoding="utf-8"),
                   encoding="utf-8")
    try:
        os.replace(out, PKG_DIR / "aigw_pb2.py")
        return PKG_DIR / "aigw_pb2.py"
    except OSError:
        return out  # package folder is read-only: use the temp copy


def load() -> ModuleType:
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    local = PKG_DIR / "aigw_pb2.py"
    proto_dir = _proto_dir()
    if local.is_file():
        if proto_dir is None:
            return _load_file(local)
        stamp = _stamp(local)
        if stamp == _digest(proto_dir):
            return _load_file(local)
        if shutil.which("protoc"):
            return _load_file(_generate(proto_dir))  # the proto changed: regenerate
        if stamp is not None:
            raise ImportError(f"aigw_agent: {local} was generated from an older "
                              f"{proto_dir / 'aigw.proto'} and protoc is not installed to "
                              "regenerate it (apt-get install protobuf-compiler, then "
                              "python-agent/gen_proto.sh)")
        return _load_file(local)  # no record of its source: use it as it is
    if proto_dir is not None:
        return _load_file(_generate(proto_dir))
    try:
        import aigw_pb2  # type: ignore[import-not-found]
        return aigw_pb2
    except ImportError:
        pass
    raise ImportError("aigw_agent: generated protobuf code not found: run python-agent/gen_proto.sh "
                      "before installing, or set AIGW_PROTO_DIR to the folder holding aigw.proto")


pb = load()
