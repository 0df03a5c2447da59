#!/usr/bin/env python3
"""A TCP relay that adds a one-way delay, for the multi-host tests (tests/integration/
netns.py) on kernels without sch_netem.

    delay_relay.py --listen ADDR HOST:PORT [HOST:PORT ...]

Listens on ADDR, one ephemeral port per target, and prints `READY p1 p2 ...` (the ports
in target order). Every accepted connection is joined to a new connection to its
target; bytes go both ways, each chunk held until `delay` ms after it was read, so
order is kept and each direction gets the delay once (as netem on one link would).
Commands on stdin, one per line: `delay MS` (answered `delay MS` once applied to every
chunk read from then on). EOF on stdin stops the relay. A refused or lost target
closes the client side, and the other way round.
"""
import argparse
import asyncio
import sys
import time

READ = 65536
state = {"delay": 0.0}


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    q: asyncio.Queue = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await q.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()
    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(READ)
            if not data:
                break
            await q.put((time.monotonic() + state["delay"], data))
    except (ConnectionError, OSError):
        pass
    await q.put((0.0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


def handler(target: str):
    host, port = target.rsplit(":", 1)

    async def on_client(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(host, int(port))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, uw), pump(ur, cw), return_exceptions=True)
    return on_client


async def commands() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        parts = line.split()
        if len(parts) == 2 and parts[0] == "delay" and parts[1].isdigit():
            state["delay"] = int(parts[1]) / 1000.0
            print("delay", parts[1], flush=True)
        else:
            print("error", "unknown command", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    servers = [await asyncio.start_server(handler(t), a.listen, 0) for t in a.targets]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print("READY", *ports, flush=True)
    await commands()


if __name__ == "__main__":
    asyncio.run(main())
