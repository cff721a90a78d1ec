"""WebSocket peers of the pipeline benchmark's ceilings, speaking protocol v2.

* default: acks every message without looking inside — the raw ceiling (loopback,
  websockets and the client's encoder, nothing else);
* ``--parse``: validates each message as the bridge does (``ticks_batches`` of
  ``decode_client``, then the value rules of ``validate_blocks``), without storing —
  what any bridge that reads the ticks can reach.

Run as a separate process by the pipeline benchmark, so that the ceilings and the real
bridge are measured the same way: over loopback, from another process. The first line
printed is the URL to connect to.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Final, TypeVar

from websockets.asyncio.server import ServerConnection, serve

from app.clock import now_msc
from app.protocol import codec
from app.protocol.validation import validate_blocks

_M = TypeVar("_M")

#: Nothing is stored, so the session always starts from scratch.
WELCOME: Final = codec.encode(codec.Welcome(0))


async def _handle(ws: ServerConnection) -> None:
    """Ack by counting: the client numbers its messages 1, 2, 3… and never resends here."""
    count = 0
    await ws.recv()  # hello
    await ws.send(WELCOME)
    async for _ in ws:
        count += 1
        await ws.send(codec.encode(codec.Ack(count)))


async def _handle_parsing(ws: ServerConnection) -> None:
    """Like ``_handle``, but decoding and validating each message as the bridge does."""
    codec.check_hello(_expect(codec.decode_client(await ws.recv()), codec.Hello))
    await ws.send(WELCOME)
    async for frame in ws:
        message = _expect(codec.decode_client(frame), codec.Ticks)
        verdict, _ = validate_blocks(codec.ticks_batches(message), now_msc=now_msc())
        if not verdict.ok:
            raise codec.ProtocolError("bad_tick", "invalid tick values")
        await ws.send(codec.encode(codec.Ack(message.seq)))


def _expect(message: object, kind: type[_M]) -> _M:
    if not isinstance(message, kind):
        raise codec.ProtocolError("bad_message", f"expected {kind.__name__}")
    return message


async def main() -> None:
    handler = _handle_parsing if "--parse" in sys.argv else _handle
    async with serve(
        handler, "127.0.0.1", 0, compression=None, max_size=codec.DEFAULT_MAX_FRAME_BYTES
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{port}/ws", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
