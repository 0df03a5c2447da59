"""Subscriber to the broker's metrics stream (topic frame + one msgpack map, docs/metrics-stream.md)."""
from __future__ import annotations

from typing import Any, AsyncIterator, Iterable

import msgpack
import zmq
import zmq.asyncio

from . import curve as _curve


async def subscribe(endpoint: str, topics: Iterable[str] = ("",),
                    context: zmq.asyncio.Context | None = None,
                    curve: _curve.CurveKeys | None = None) -> AsyncIterator[tuple[str, Any]]:
    """Yield (topic, decoded map) from the broker PUB; malformed messages are skipped.

    curve: keys from curve.load_curve(cfg) when the broker's PUB is a CURVE server."""
    sock = (context or zmq.asyncio.Context.instance()).socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, 8 * 1024 * 1024)
    for t in topics:
        sock.setsockopt(zmq.SUBSCRIBE, t.encode())
    _curve.apply(sock, curve)
    sock.connect(endpoint)
    try:
        while True:
            frames = await sock.recv_multipart()
            if len(frames) != 2:
                continue
            try:
                yield frames[0].decode("utf-8"), msgpack.unpackb(frames[1], raw=False)
            except (UnicodeDecodeError, ValueError, msgpack.ExtraData, msgpack.FormatError,
                    msgpack.StackError):
                continue
    finally:
        sock.close()
