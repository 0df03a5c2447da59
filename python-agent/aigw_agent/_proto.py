"""Load the generated protobuf module (aigw_pb2), generating it with protoc on first use.

Order: aigw_agent/aigw_pb2.py if present; else run protoc on the repo's proto/aigw.proto
(or $AIGW_PROTO_DIR) into the package folder (or a temp folder if that is read-only);
else a top-level `aigw_pb2` on sys.path (e.g. build/gen/python); else ImportError.
"""
from __future__ import annotations

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


def _proto_dir() -> Path | None:
    candidates = [os.environ.get("AIGW_PROTO_DIR"), PKG_DIR.parent.parent / "proto"]
    for c in candidates:
        if c and (Path(c) / "aigw.proto").is_file():
            return Path(c)
    return None


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
    try:
        os.replace(out, PKG_DIR / "aigw_pb2.py")
        return PKG_DIR / "aigw_pb2.py"
    except OSError:
        return out  # package folder is read-only: use the temp copy


def load() -> ModuleType:
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    local = PKG_DIR / "aigw_pb2.py"
    if local.is_file():
        return _load_file(local)
    proto_dir = _proto_dir()
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
