"""Time to first token (TTFT) and loser cancel latency: direct vs through aigw, one run.

Starts the fake upstream and an aigw system (broker, 2 workers, edge) on free ports,
then streams N requests straight to the upstream and N through the edge (one target,
and a race of a fast and a slow target), and prints p50/p99 TTFT and the time from
the winner's first upstream chunk to the loser's upstream connection closing.
Prints figures; it is not a test. Usage: python scripts/bench_ttft.py [N]
"""
from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import FakeUpstream, System, wait_until  # noqa: E402


def ttft(port: int, path: str, model: str) -> float:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    t0 = time.perf_counter()
    c.request("POST", path, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = None
    while True:
        line = r.readline()
        if not line:
            break
        if first is None and line.startswith(b"data: {") and b'"content"' in line:
            first = time.perf_counter() - t0
        if line.startswith(b"data: [DONE]"):
            break
    c.close()
    return (first if first is not None else float("nan")) * 1000


def pct(xs, p):
    xs = sorted(x for x in xs if x == x)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    tmp = Path(tempfile.mkdtemp(prefix="aigw-ttft-"))
    up = FakeUpstream(tmp)
    up.script({"fast": {"latency_ms": 0, "token_interval_ms": 1, "text": "a b c d"},
               "slow": {"latency_ms": 1000, "text": "x y"}})
    models = "".join(f"    {m}\n        provider = openai\n        base_url = {up.url}\n"
                     for m in ("fast", "slow"))
    s = System(tmp, models=models).start()
    try:
        rows = []
        for name, port, path, model in (
                ("direct", up.port, "/v1/chat/completions", "fast"),
                ("edge-1", s.http_port, "/v1/chat/completions", "fast"),
                ("edge-race2", s.http_port, "/v1/chat/completions", "slow,fast")):
            for _ in range(10):
                ttft(port, path, model)
            xs = [ttft(port, path, model) for _ in range(n)]
            rows.append((name, xs))
        up.reset()
        for _ in range(50):
            ttft(s.http_port, "/v1/chat/completions", "slow,fast")
        time.sleep(0.5)
        log = up.log()
        conns = {c["id"]: c for c in log["connections"]}
        fast = [r for r in log["requests"] if r["model"] == "fast"]
        slow = [r for r in log["requests"] if r["model"] == "slow"]
        gaps = []
        for f, sl in zip(fast, slow):
            closed = conns.get(sl["conn_id"], {}).get("closed_ns")
            if closed and f.get("first_chunk_ns"):
                gaps.append((closed - f["first_chunk_ns"]) / 1e6)
        base = statistics.median(rows[0][1])
        print(f"\n{'run':<11} {'n':>5} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12} {'p50 +ms':>8}")
        for name, xs in rows:
            print(f"{name:<11} {len(xs):>5} {pct(xs, 50):>12.3f} {pct(xs, 99):>12.3f} "
                  f"{pct(xs, 50) - base:>8.3f}")
        print(f"\nloser cancel latency (winner's first upstream chunk -> loser's upstream "
              f"connection closed), {len(gaps)} races: p50 {pct(gaps, 50):.2f} ms, "
              f"p99 {pct(gaps, 99):.2f} ms")
    finally:
        s.stop()
        up.stop()


if __name__ == "__main__":
    main()
