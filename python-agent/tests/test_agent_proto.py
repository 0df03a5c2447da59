"""The generated protobuf module: gen_proto.sh (the build step) and aigw_agent._proto, which
finds the module, refuses a stale one, and never runs protoc or writes a file on import."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from aigw_agent import _proto
from aigw_agent._proto import pb

pytestmark = pytest.mark.timeout(60)
PKG = Path(__file__).resolve().parent.parent          # python-agent/
PROTO_DIR = PKG.parent / "proto"
needs_protoc = pytest.mark.skipif(shutil.which("protoc") is None, reason="protoc not installed")


def _digest() -> str:
    return hashlib.sha256((PROTO_DIR / "aigw.proto").read_bytes()).hexdigest()


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let _proto.load() run again; the modules loaded before are put back afterwards."""
    names = (_proto.MODULE, _proto.TOP_MODULE)
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    monkeypatch.setenv("AIGW_PROTO_DIR", str(PROTO_DIR))
    yield
    for n in names:
        sys.modules.pop(n, None)
    sys.modules.update(saved)


@needs_protoc
def test_gen_proto_script_output_imports(tmp_path: Path) -> None:
    copy = tmp_path / "python-agent"
    (copy / "aigw_agent").mkdir(parents=True)
    shutil.copy(PKG / "gen_proto.sh", copy / "gen_proto.sh")
    (copy / "aigw_agent" / "aigw_pb2.pyi").write_text("# an old stub\n")
    env = {"AIGW_PROTO_DIR": str(PROTO_DIR), "PATH": "/usr/bin:/bin"}   # no protoc-gen-mypy
    res = subprocess.run(["sh", str(copy / "gen_proto.sh")], check=True, env=env,
                         capture_output=True, text=True)
    out = copy / "aigw_agent" / "aigw_pb2.py"
    code = (f"import importlib.util as u; s = u.spec_from_file_location('x', {str(out)!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); "
            "print(m.Job(job_id=1, account='k').account, m.Spend(job_id=1, attempt_id=2).job_id)")
    run = subprocess.run([sys.executable, "-B", "-c", code], capture_output=True, text=True,
                         check=True)
    assert run.stdout.split() == ["k", "1"]
    assert out.read_text().splitlines()[0] == f"{_proto.STAMP}{_digest()}"
    # without the plugin a stub from an older run is removed, not left stale
    assert not (copy / "aigw_agent" / "aigw_pb2.pyi").exists()
    assert "removed" in res.stdout
    assert sorted(p.name for p in (copy / "aigw_agent").iterdir()) == ["aigw_pb2.py"]


@needs_protoc
def test_gen_proto_script_writes_the_type_stub(tmp_path: Path) -> None:
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    if not plugin.exists():
        pytest.skip("mypy-protobuf not installed")
    copy = tmp_path / "python-agent"
    (copy / "aigw_agent").mkdir(parents=True)
    shutil.copy(PKG / "gen_proto.sh", copy / "gen_proto.sh")
    env = {"AIGW_PROTO_DIR": str(PROTO_DIR), "PATH": "/usr/bin:/bin",
           "PROTOC_GEN_MYPY": str(plugin)}
    subprocess.run(["sh", str(copy / "gen_proto.sh")], check=True, env=env, capture_output=True)
    stub = (copy / "aigw_agent" / "aigw_pb2.pyi").read_text().splitlines()
    assert stub[0] == f"{_proto.STAMP}{_digest()}"
    assert "class Job(google.protobuf.message.Message):" in stub
    assert sorted(p.name for p in (copy / "aigw_agent").iterdir()) == ["aigw_pb2.py",
                                                                       "aigw_pb2.pyi"]


def test_current_package_module_is_loaded(fresh: None, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "aigw_pb2.py").write_text(f"{_proto.STAMP}{_digest()}\nVALUE = 'current'\n")
    monkeypatch.setattr(_proto, "PKG_DIR", tmp_path)
    assert _proto.load().VALUE == "current"
    assert sys.modules[_proto.MODULE].VALUE == "current"


def test_stale_package_module_is_refused_not_regenerated(fresh: None, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "aigw_pb2.py"
    text = f"{_proto.STAMP}{'0' * 64}\nraise AssertionError('a stale module must not load')\n"
    stale.write_text(text)
    monkeypatch.setattr(_proto, "PKG_DIR", tmp_path)
    with pytest.raises(ImportError, match=r"is stale: .*gen_proto\.sh") as e:
        _proto.load()
    assert str(stale) in str(e.value) and "0000000000" in str(e.value)
    assert stale.read_text() == text                          # left as it was
    assert [p.name for p in tmp_path.iterdir()] == ["aigw_pb2.py"]
    assert _proto.MODULE not in sys.modules


def test_unstamped_module_or_no_proto_to_compare_is_used_as_is(
        fresh: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = tmp_path / "aigw_pb2.py"
    mod.write_text("VALUE = 'unstamped'\n")                   # e.g. protoc run by hand
    monkeypatch.setattr(_proto, "PKG_DIR", tmp_path)
    assert _proto.load().VALUE == "unstamped"
    # an installed package without the repository's proto/ cannot tell: it uses its file
    del sys.modules[_proto.MODULE]
    mod.write_text(f"{_proto.STAMP}{'0' * 64}\nVALUE = 'installed'\n")
    monkeypatch.setattr(_proto, "_proto_dir", lambda: None)
    assert _proto.load().VALUE == "installed"


def test_top_level_module_on_sys_path(fresh: None, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the package's copy, a top-level module (CMake: build/gen/python) is used;
    it is refused as well when it records another proto."""
    pkg, gen = tmp_path / "pkg", tmp_path / "gen"
    pkg.mkdir()
    gen.mkdir()
    name = "aigw_pb2_test_top_level"
    (gen / f"{name}.py").write_text("VALUE = 'cmake'\n")
    monkeypatch.setattr(_proto, "PKG_DIR", pkg)
    monkeypatch.setattr(_proto, "TOP_MODULE", name)
    monkeypatch.syspath_prepend(str(gen))
    try:
        assert _proto.load().VALUE == "cmake"
        del sys.modules[name]
        (gen / f"{name}.py").write_text(f"{_proto.STAMP}{'0' * 64}\nVALUE = 'stale'\n")
        with pytest.raises(ImportError, match="is stale"):
            _proto.load()
    finally:
        sys.modules.pop(name, None)


def test_missing_module_says_how_to_generate_it(fresh: None, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_proto, "PKG_DIR", tmp_path)
    monkeypatch.setattr(_proto, "TOP_MODULE", "aigw_pb2_test_not_anywhere")
    with pytest.raises(ImportError, match=r"missing .*gen_proto\.sh.*build/gen/python"):
        _proto.load()
    assert list(tmp_path.iterdir()) == []


# ---- importing the package writes nothing (subprocess on a copy of the package)

_IMPORT = """
import sys
try:
    import aigw_agent, aigw_agent.agents, aigw_agent.cli, aigw_agent.metrics
    from aigw_agent._proto import pb
except ImportError as e:
    print("ImportError:", e)
    sys.exit(3)
assert aigw_agent.__file__.startswith(sys.argv[1]), aigw_agent.__file__
print(pb.Job(job_id=7, account="k").account)
"""


def _snapshot(root: Path) -> dict[str, tuple[bool, int, int, str]]:
    """Every file and folder under root (root too): kind, size, mtime, content digest.
    A folder's mtime changes when an entry is created or removed in it, even briefly."""
    out: dict[str, tuple[bool, int, int, str]] = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.mark.parametrize("case", ["current", "stale", "missing"])
def test_importing_the_package_writes_nothing(case: str, tmp_path: Path) -> None:
    """Import from a copy of the package next to a copy of proto/: nothing in the copy (or
    in TMPDIR) changes, and protoc is never run, also when the generated module is stale
    or missing (earlier versions regenerated it there on import)."""
    tree, tmpdir, calls = tmp_path / "tree", tmp_path / "tmpdir", tmp_path / "protoc-calls"
    pkg = tree / "python-agent" / "aigw_agent"
    shutil.copytree(PKG / "aigw_agent", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "proto").mkdir()
    shutil.copy(PROTO_DIR / "aigw.proto", tree / "proto" / "aigw.proto")
    generated = Path(pb.__file__).read_text(encoding="utf-8")   # whichever copy the tests use
    if generated.startswith(_proto.STAMP):
        generated = generated.split("\n", 1)[1]
    stamp = _digest() if case == "current" else "0" * 64
    if case == "missing":
        (pkg / "aigw_pb2.py").unlink(missing_ok=True)
    else:
        (pkg / "aigw_pb2.py").write_text(f"{_proto.STAMP}{stamp}\n{generated}", encoding="utf-8")
    fake_bin = tree / "bin"
    fake_bin.mkdir()
    real = shutil.which("protoc")               # records each call, then does the real work
    run_real = f'exec {real!r} "$@"' if real else "exit 1"
    (fake_bin / "protoc").write_text(f'#!/bin/sh\necho "$@" >> {str(calls)!r}\n{run_real}\n')
    (fake_bin / "protoc").chmod(0o755)
    tmpdir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "AIGW_PROTO_DIR", "PYTHONDONTWRITEBYTECODE")}
    env.update(PYTHONPATH=str(tree / "python-agent"), TMPDIR=str(tmpdir),
               PATH=f"{fake_bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}")
    before = _snapshot(tree)
    # -B: the bytecode cache is the interpreter's, not the package's (see -B,
    # PYTHONDONTWRITEBYTECODE, PYTHONPYCACHEPREFIX); everything else must stay as it was
    res = subprocess.run([sys.executable, "-B", "-c", _IMPORT, str(tree)], env=env,
                         capture_output=True, text=True, cwd=tmpdir)
    assert _snapshot(tree) == before
    assert list(tmpdir.iterdir()) == []
    assert not calls.exists(), f"protoc was run: {calls.read_text()}"
    if case == "current":
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.strip() == "k"
    else:
        assert res.returncode == 3, res.stdout + res.stderr
        assert "gen_proto.sh" in res.stdout
        assert ("is stale" if case == "stale" else "is missing") in res.stdout
