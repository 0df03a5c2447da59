"""scripts/checksrc, the banned-call check: exact findings on the fixtures in
tests/checksrc/, the lexing corner cases, and the repository itself being clean."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKSRC = ROOT / "scripts" / "checksrc"
FIXTURES = ROOT / "tests" / "checksrc"
ALT = {
    "sprintf": "snprintf and check for truncation",
    "strcpy": "memcpy with a known length, or snprintf",
    "strcat": "memcpy at a tracked offset, or snprintf",
    "strtok": "strtok_r",
    "atoi": "strtol with end-pointer, errno and range checks",
    "gets": "fgets",
}
OK_TAIL = "no banned calls (atoi, gets, sprintf, strcat, strcpy, strtok)"


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(CHECKSRC), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def finding(path, line, name):
    return f"{path}:{line}: banned call {name} (use {ALT[name]})"


def test_banned_fixture_exact_findings():
    r = run("tests/checksrc/banned.c")
    assert r.returncode == 1, r.stderr
    f = "tests/checksrc/banned.c"
    assert r.stdout.splitlines() == [
        finding(f, 11, "sprintf"),
        finding(f, 12, "strcpy"),
        finding(f, 13, "strcat"),
        finding(f, 14, "strtok"),
        finding(f, 15, "atoi"),
        finding(f, 16, "gets"),
        finding(f, 17, "atoi"),         # "atoi\n        (src)": the line of the name
    ]
    assert r.stderr.strip() == "checksrc: 7 banned calls in 1 file"


def test_clean_fixture_only_decoys():
    r = run("tests/checksrc/clean.c")
    assert (r.returncode, r.stdout.strip()) == (0, f"checksrc: OK, 1 file, {OK_TAIL}")


def test_several_files_in_the_given_order():
    r = run(FIXTURES / "clean.c", FIXTURES / "banned.c")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 7 and all(l.startswith(f"{FIXTURES / 'banned.c'}:") for l in lines)


@pytest.mark.parametrize("src, expected", [
    ("x = atoi(s);\n", [(1, "atoi")]),
    ("x = atoi  \t(s);\n", [(1, "atoi")]),
    ("if (a) strcpy(d, s); else strcat(d, s);\n", [(1, "strcpy"), (1, "strcat")]),
    ("int n = sprintf\n\n  (b, \"x\");\n", [(1, "sprintf")]),
    ("/* one\n * two */ gets (b);\n", [(2, "gets")]),
    ("// a comment \\\n   continued: atoi (s)\natoi (t);\n", [(3, "atoi")]),
    ("s = \"atoi (\\\"x\\\")\"; atoi (s);\n", [(1, "atoi")]),
    ("c = '\"'; strtok (s, \",\");\n", [(1, "strtok")]),
    ("c = '\\''; t = strtok (s, \" \");\n", [(1, "strtok")]),
    ("x = o.atoi (s) + p->gets (b) + q -> strcpy (d, s);\n", []),
    ("x = snprintf (b, 1, \"\") + vsnprintf (b, 1, f, ap) + strtok_r (s, \",\", &v);\n", []),
    ("x = my_atoi (s) + atoi_x (s) + _gets (b) + gets_line (b);\n", []),
    ("int atoi_count; size_t gets;\n", []),
    ("#include <string.h>  // strcpy (a, b)\n", []),
])
def test_lexing(tmp_path, src, expected):
    p = tmp_path / "t.c"
    p.write_text(src)
    r = run(p)
    if expected:
        assert r.returncode == 1
        assert r.stdout.splitlines() == [finding(p, l, n) for l, n in expected]
    else:
        assert (r.returncode, r.stdout.strip()) == (0, f"checksrc: OK, 1 file, {OK_TAIL}")


def test_missing_file_is_an_error(tmp_path):
    r = run(tmp_path / "nope.c")
    assert r.returncode == 2 and "nope.c" in r.stderr


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs the git checkout")
def test_repository_is_clean():
    r = run(cwd="/")                   # default file list: git, whatever the cwd
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("checksrc: OK, ") and r.stdout.strip().endswith(OK_TAIL)
