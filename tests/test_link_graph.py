"""scripts/link_graph on small C trees compiled here: a call cycle hidden behind a
shared header, prefix mismatches, and a clean tree (edge_ namespace, a main file, a
source outside its target's directory, a stale object)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "link_graph"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

pytestmark = pytest.mark.skipif(CC is None or shutil.which("nm") is None,
                                reason="needs a C compiler and nm")


def tree(tmp: Path, sources: dict[str, str], target_dir: str = "") -> tuple[Path, Path]:
    """Write sources under tmp/src and compile each into a CMake-like build tree:
    build/[target_dir/]CMakeFiles/t.dir/<path relative to target_dir>.o"""
    src, build = tmp / "src", tmp / "build"
    for rel, text in sources.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
        inner = rel
        if target_dir:
            inner = rel[len(target_dir) + 1:] if rel.startswith(target_dir + "/") \
                else "__/" + rel                      # CMake's spelling of ../
        obj = build / target_dir / "CMakeFiles" / "t.dir" / (inner + ".o")
        obj.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([CC, "-c", "-o", str(obj), str(src / rel)], check=True)
    return src, build


def run(src: Path, build: Path):
    return subprocess.run([sys.executable, str(SCRIPT), "--build", str(build), "--root",
                           str(src)], capture_output=True, text=True, timeout=60)


def test_call_cycle_behind_a_shared_header(tmp_path):
    #  No include cycle (both include only core.h), but each calls the other
    core = "void loop_run (void); void http_start (void);\n"
    src, build = tree(tmp_path, {
        "workers/core.h": core,
        "workers/loop.c": '#include "core.h"\nvoid loop_run (void) { http_start (); }\n',
        "workers/http.c": '#include "core.h"\nvoid http_start (void) {}\n'
                          'void http_done (void) { loop_run (); }\n',
        "workers/timer.c": '#include "core.h"\nvoid loop_timer (void) { loop_run (); }\n',
    })
    r = run(src, build)
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "prefix: workers/timer.c defines loop_timer (expected timer_*)",
        "call cycle: workers/http -> workers/loop -> workers/http",
        "  workers/http -> workers/loop: loop_run",
        "  workers/loop -> workers/http: http_start",
    ]


def test_two_way_calls_are_a_cycle(tmp_path):
    src, build = tree(tmp_path, {
        "brokers/a.c": "void b_pong (void);\nvoid a_ping (void) { b_pong (); }\n",
        "brokers/b.c": "void a_ping (void);\nvoid b_pong (void) {}\n"
                       "void b_start (void) { a_ping (); }\n",
        "brokers/c.c": "void a_ping (void);\nvoid c_go (void) { a_ping (); }\n",
    })
    r = run(src, build)
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "call cycle: brokers/a -> brokers/b -> brokers/a",
        "  brokers/a -> brokers/b: b_pong",
        "  brokers/b -> brokers/a: a_ping",
    ]


def test_prefixes(tmp_path):
    src, build = tree(tmp_path, {
        "common/hmap.c": "int hmap_size;\nvoid hmap_put (void) {}\nvoid hash_put (void) {}\n"
                         "static void s_local (void) {}\nvoid hmap_use (void) { s_local (); }\n",
        "edge/jobmap.c": "void edge_jobmap_take (void) {}\nvoid jobmap_get (void) {}\n"
                         "void edge_take (void) {}\n",
        "edge/main.c": "int main (void) { return 0; }\nvoid edge_main_helper (void) {}\n",
    })
    r = run(src, build)
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "prefix: common/hmap.c defines hash_put (expected hmap_*)",
        "prefix: edge/jobmap.c defines edge_take (expected jobmap_* or edge_jobmap_*)",
        "prefix: edge/main.c defines edge_main_helper (a main file defines only main)",
    ]


def test_clean_tree(tmp_path):
    src, build = tree(tmp_path, {
        "edge/server.c": "void edge_server_run (void) {}\n",
        "edge/http.c": "void edge_server_run (void);\nvoid http_on (void) { edge_server_run (); }\n",
        "edge/main.c": "void http_on (void);\nint main (void) { http_on (); return 0; }\n",
        "common/log.c": "void log_info (void) {}\n",                 # ../common from edge/
    }, target_dir="edge")
    #  A stale object: its source was renamed away, and it would break every rule
    stale = build / "edge" / "CMakeFiles" / "t.dir" / "old.c.o"
    shutil.copy(build / "edge" / "CMakeFiles" / "t.dir" / "http.c.o", stale)
    r = run(src, build)
    assert (r.returncode, r.stdout) == (0, "no call cycles, every prefix matches its file\n"), \
        r.stdout + r.stderr


def test_no_build_tree_is_a_usage_error(tmp_path):
    r = run(tmp_path, tmp_path / "nothing")
    assert r.returncode == 2 and "no build tree" in r.stderr
