"""Test hosts in network namespaces: a star of veth pairs around a router namespace.

Each `Host` is a namespace of its own (`aigwN<pid>-<name>`) with one veth, `eth0`, whose
peer sits in the router namespace. Every host gets a /30 of 10.213.X.0/24 (X random per
run) and a default route through the router, which forwards between them (no bridge:
this kernel has no bridge device type). Addresses exist only on these veths and on
each namespace's own loopback; nothing reaches the machine's real network.

- `cut(host)`: the router drops everything to and from the host without a word (its
  port goes down and a blackhole route takes the host's /30: no ICMP comes back), as a
  pulled cable or a dead switch port. `heal(host)` puts it back.
- Code runs inside a host two ways: `host.popen(argv)` (a process, through
  `ip netns exec`), and `host.call(fn)` (a Python function on a thread that joined the
  namespace with setns(2), so any socket it opens is the host's).
- This kernel has no `sch_netem`, so delay between hosts comes from `DelayRelay`
  (tests/fakes/delay_relay.py in the router namespace, one listening port per relayed
  endpoint, the one-way delay settable at run time).

`Net.close()` kills every process it started and deletes every namespace (and with it
every veth). Namespaces left by a run that was killed are removed by the next one
(their owner pid is in the name).
"""
from __future__ import annotations

import ctypes
import os
import random
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

CLONE_NEWNET = 0x40000000
PREFIX = "aigwN"
ROOT = Path(__file__).resolve().parents[2]
RELAY = ROOT / "tests" / "fakes" / "delay_relay.py"
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> str | None:
    """None when this process can make namespaces here, else why not."""
    if os.geteuid() != 0:
        return "network namespace tests need root (CI runs as root)"
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        return "iproute2 (ip) is not installed"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def remove_stale() -> None:
    """Delete namespaces of earlier runs whose process is gone."""
    out = _ip("netns", "list", check=False).stdout
    for line in out.splitlines():
        m = re.match(rf"({PREFIX}(\d+)-\S+)", line)
        if m and not Path(f"/proc/{m.group(2)}").exists():
            _ip("netns", "del", m.group(1), check=False)


def in_netns(ns: str, fn: Callable[[], Any], timeout: float | None = None) -> Any:
    """Run fn on a new thread inside namespace ns; return its result or raise its error."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            enter_netns(ns)
            box["value"] = fn()
        except BaseException as e:      # handed to the caller
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"call in {ns} did not return within {timeout}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def enter_netns(ns: str) -> None:
    """Move the calling thread into namespace ns (for threads that live there)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {ns}: {os.strerror(e)}")
    finally:
        os.close(fd)


class Host:
    def __init__(self, net: "Net", name: str, index: int):
        self.net, self.name = net, name
        self.ns = f"{net.prefix}-{name}"
        self.port = f"p{index}"                     # its veth's name in the router
        base = 4 * index
        self.gw = f"{net.subnet}.{base + 1}"        # router side of the /30
        self.addr = f"{net.subnet}.{base + 2}"
        self.cidr = f"{net.subnet}.{base}/30"
        self.procs: dict[str, subprocess.Popen] = {}
        self.dir = net.tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)

    def popen(self, tag: str, argv: list[str], env: dict[str, str] | None = None,
              stdin: int | None = None, stdout: int | None = None) -> subprocess.Popen:
        """Start argv inside this host; its output goes to <dir>/<tag>.log unless
        stdout is given."""
        log = open(self.dir / f"{tag}.log", "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], stdin=stdin,
                             stdout=stdout if stdout is not None else log,
                             stderr=log, env={**os.environ, **(env or {})})
        self.procs[tag] = p
        return p

    def kill(self, tag: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[tag]
        if p.poll() is None:
            p.send_signal(sig)
        p.wait(10)

    def log(self, tag: str) -> str:
        path = self.dir / f"{tag}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def call(self, fn: Callable[[], Any], timeout: float | None = 60) -> Any:
        return in_netns(self.ns, fn, timeout)


class Net:
    def __init__(self, tmp: Path):
        remove_stale()
        self.tmp = tmp
        self.prefix = f"{PREFIX}{os.getpid()}"
        self.subnet = f"10.213.{random.randint(1, 254)}"
        self.router = f"{self.prefix}-rt"
        self.hosts: dict[str, Host] = {}
        self.relays: list[DelayRelay] = []
        self._made: list[str] = []
        _ip("netns", "add", self.router)
        self._made.append(self.router)
        _ip("-n", self.router, "link", "set", "lo", "up")
        subprocess.run(["ip", "netns", "exec", self.router, "sh", "-c",
                        "echo 1 > /proc/sys/net/ipv4/ip_forward"], check=True)

    def host(self, name: str) -> Host:
        h = Host(self, name, len(self.hosts) + 1)
        _ip("netns", "add", h.ns)
        self._made.append(h.ns)
        _ip("link", "add", "name", "eth0", "netns", h.ns, "type", "veth",
            "peer", "name", h.port, "netns", self.router)
        _ip("-n", h.ns, "addr", "add", f"{h.addr}/30", "dev", "eth0")
        _ip("-n", self.router, "addr", "add", f"{h.gw}/30", "dev", h.port)
        for ns, dev in ((h.ns, "lo"), (h.ns, "eth0"), (self.router, h.port)):
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", h.ns, "route", "add", "default", "via", h.gw)
        self.hosts[name] = h
        return h

    def cut(self, h: Host) -> None:
        """Drop the host's traffic both ways, silently."""
        _ip("-n", self.router, "link", "set", h.port, "down")
        _ip("-n", self.router, "route", "add", "blackhole", h.cidr)

    def heal(self, h: Host) -> None:
        _ip("-n", self.router, "route", "del", "blackhole", h.cidr)
        _ip("-n", self.router, "link", "set", h.port, "up")

    def relay(self, targets: list[str]) -> "DelayRelay":
        r = DelayRelay(self, targets)
        self.relays.append(r)
        return r

    def close(self) -> None:
        for r in self.relays:
            r.stop()
        for h in self.hosts.values():
            for p in h.procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in h.procs.values():
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for ns in reversed(self._made):
            _ip("netns", "del", ns, check=False)


class DelayRelay:
    """A TCP relay in the router namespace: one listening port on the router's address
    per target "HOST:PORT", forwarding both ways with a one-way delay (0 at start)."""

    def __init__(self, net: Net, targets: list[str]):
        self.net = net
        first = next(iter(net.hosts.values()))
        self.addr = first.gw                        # any router address is routable
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.router, sys.executable, str(RELAY),
             "--listen", self.addr, *targets],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(net.tmp / "relay.log", "ab"), text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"delay relay did not start: {line}")
        self.ports = [int(p) for p in line[1:]]     # one per target, same order

    def endpoint(self, i: int) -> str:
        return f"{self.addr}:{self.ports[i]}"

    def set_delay(self, ms: int) -> None:
        """Set the one-way delay; returns once the relay applies it."""
        self.proc.stdin.write(f"delay {ms}\n")
        self.proc.stdin.flush()
        ack = self.proc.stdout.readline().split()
        if ack != ["delay", str(ms)]:
            raise RuntimeError(f"delay relay answered {ack}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
