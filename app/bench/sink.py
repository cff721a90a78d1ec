"""A WebSocket peer that acks every message without looking inside: the raw ceiling.

Run as a separate process by the pipeline benchmark, so that the ceiling and the real
bridge are measured the same way: over loopback, from another process.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from websockets.asyncio.server import ServerConnection, serve

from app.protocol.codec import MAX_FRAME_BYTES, decode, parse_ticks


async def _handle(ws: ServerConnection) -> None:
    count = 0
    await ws.recv()  # hello
    await ws.send(orjson.dumps({"type": "welcome", "last_seq": 0}), text=True)
    async for _ in ws:
        count += 1
        await ws.send(orjson.dumps({"type": "ack", "seq": count}), text=True)


async def _handle_parsing(ws: ServerConnection) -> None:
    """Like ``_handle``, but validating each message as the bridge does (no storage)."""
    await ws.recv()
    await ws.send(orjson.dumps({"type": "welcome", "last_seq": 0}), text=True)
    async for frame in ws:
        seq, _ = parse_ticks(decode(frame))
        await ws.send(orjson.dumps({"type": "ack", "seq": seq}), text=True)


async def main() -> None:
    handler = _handle_parsing if "--parse" in sys.argv else _handle
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=MAX_FRAME_BYTES) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{port}/ws", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
