"""scripts/include_cycles on the fixtures in tests/include_cycles/: a 2-cycle, a
3-cycle across directories (include dir, relative path, a private _int.h header),
and a DAG with self-includes and commented-out includes."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "include_cycles"
FIXTURES = ROOT / "tests" / "include_cycles"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_two_cycle():
    r = run("--root", FIXTURES / "two")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "cycle: a -> b -> a",
        "  a -> b: a.c:2",
        "  b -> a: b.h:2",
    ]


def test_three_cycle_across_directories():
    r = run("--root", FIXTURES / "three")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "cycle: common/r -> mod/p -> mod/q -> common/r",
        "  common/r -> mod/p: common/r.c:2",       # "../mod/p_int.h", part of mod/p
        "  mod/p -> mod/q: mod/p.c:2",
        "  mod/q -> common/r: mod/q.h:2",          # "r.h" found in the include dir common/
    ]


def test_three_cycle_needs_the_include_dir():
    #  Without common/ on the include path, mod/q.h's "r.h" resolves to nothing
    r = run("--root", FIXTURES / "three", "-I", "elsewhere", "-v")
    assert (r.returncode, r.stdout.strip()) == (0, "no include cycles")
    assert 'mod/q.h:2: unresolved #include "r.h" (ignored)' in r.stderr


def test_dag_has_no_cycle():
    r = run("--root", FIXTURES / "dag")
    assert (r.returncode, r.stdout) == (0, "no include cycles\n")


def test_bad_root():
    r = run("--root", FIXTURES / "nope")
    assert r.returncode == 2 and "not a directory" in r.stderr
