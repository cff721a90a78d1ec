"""How fast the bridge stores: ``python -m tests.server.bench_bridge [--sync FULL]``.

The backend runs in its own process (as in production, so client and bridge do not share
one event loop); a raw websockets client sends 1,000-tick messages as fast as a window of
32 unacked messages allows. Frames are encoded before the clock starts, so the figure is
the bridge's (parse + validate + store + ack), not the client's encoder.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from app.protocol.codec import Block, encode_hello, encode_ticks
from tests.server.conftest import make_ticks, new_session, open_ws

SERVER = """
import asyncio, sys
from app.server.server import ReferenceBackend, serve_forever
backend = ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=sys.argv[1],
                           synchronous=sys.argv[2])
asyncio.run(serve_forever(backend, ready=lambda b: print(b.bridge_url, flush=True)))
"""


def frames(count: int, ticks_per_message: int, distinct: int = 64) -> list[bytes]:
    """``count`` ticks frames; the tick payloads repeat every ``distinct`` messages."""
    bodies = []
    for i in range(distinct):
        doc = orjson.loads(
            encode_ticks(1, [Block("EURUSD", make_ticks(ticks_per_message, seed=i))])
        )
        bodies.append(orjson.dumps(doc["blocks"]))
    return [
        b'{"type":"ticks","seq":%d,"blocks":%s}' % (seq, bodies[(seq - 1) % distinct])
        for seq in range(1, count + 1)
    ]


async def run(url: str, messages: list[bytes], window: int) -> float:
    async with open_ws(url) as ws:
        await ws.send(encode_hello("bench", new_session(), 0).decode())
        await ws.recv()
        acked = 0
        started = time.perf_counter()
        next_seq = 1

        async def sender() -> None:
            nonlocal next_seq
            while next_seq <= len(messages):
                if next_seq - acked > window:
                    await asyncio.sleep(0)  # wait for the receiver to move the window
                    await ack_moved.wait()
                    ack_moved.clear()
                    continue
                await ws.send(messages[next_seq - 1], text=True)
                next_seq += 1

        ack_moved = asyncio.Event()
        task = asyncio.create_task(sender())
        while acked < len(messages):
            doc = orjson.loads(await ws.recv())
            assert doc["type"] == "ack", doc
            acked = doc["seq"]
            ack_moved.set()
        await task
        return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=1000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--sync", default="FULL", choices=["OFF", "NORMAL", "FULL"])
    args = parser.parse_args()
    messages = frames(args.messages, args.ticks)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(db), args.sync], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            url = re.sub(r"\s+", "", server.stdout.readline())
            elapsed = await run(url, messages, args.window)
        finally:
            server.terminate()
            server.wait(30)
        size = db.stat().st_size + (
            db.with_suffix(".sqlite-wal").stat().st_size
            if db.with_suffix(".sqlite-wal").exists()
            else 0
        )
    n = args.messages
    print(
        f"synchronous={args.sync} window={args.window}: {n} messages x {args.ticks} ticks "
        f"in {elapsed:.2f} s = {n / elapsed:,.0f} messages/s, "
        f"{n * args.ticks / elapsed:,.0f} ticks/s stored and acked "
        f"(frame {len(messages[0]) / 1024:.0f} KiB, db {size / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    asyncio.run(main())
