"""How fast the bridge stores: ``python -m tests.server.bench_bridge [--sync FULL]``.

The backend runs in its own process (as in production, so client and bridge do not share
one event loop); a raw websockets client sends 1,000-tick protocol v2 messages as fast as
a window of 32 unacked messages allows. The tick payloads are encoded before the clock
starts and only the seq is spliced in per message (one memcpy), so the figure is the
bridge's (decode + validate + store + ack), not the client's encoder.
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

import msgspec

from app.protocol.codec import Ack, Hello, Welcome, decode_bridge, encode, encode_ticks
from app.ticks import TickBatch
from tests.server.conftest import make_ticks, new_session, open_ws

SERVER = """
import asyncio, sys
from app.server.server import ReferenceBackend, serve_forever
backend = ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=sys.argv[1],
                           synchronous=sys.argv[2])
asyncio.run(serve_forever(backend, ready=lambda b: print(b.bridge_url, flush=True)))
"""


#: What every ``Ticks`` frame starts with: fixmap(3), "type": "ticks", "seq" (msgspec
#: writes the tag first and then the fields in their declared order).
_HEAD = b"\x83" + b"".join(msgspec.msgpack.encode(s) for s in ("type", "ticks", "seq"))


class Frames:
    """Ticks frames for seqs 1..count; the payloads repeat every ``distinct`` messages.

    Keeping every frame would take ``count`` x 60 KB; instead the part after the seq is
    encoded once per payload and the seq spliced in, byte-identical to ``encode_ticks``.
    """

    def __init__(self, count: int, ticks_per_message: int, distinct: int = 64) -> None:
        self.count = count
        self._tails = []
        for i in range(distinct):
            frame = encode_ticks(1, [TickBatch("EURUSD", make_ticks(ticks_per_message, seed=i))])
            assert frame.startswith(_HEAD + b"\x01")
            self._tails.append(frame[len(_HEAD) + 1 :])
        probe = [TickBatch("EURUSD", make_ticks(ticks_per_message, seed=0))]
        # One seq per MessagePack integer width (fixint, uint8, uint16, uint32, uint64).
        for seq in (1 + k * distinct for k in (0, 2, 4, 2**10, 2**26)):
            assert self[seq] == encode_ticks(seq, probe)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, seq: int) -> bytes:
        return _HEAD + msgspec.msgpack.encode(seq) + self._tails[(seq - 1) % len(self._tails)]


async def run(url: str, frames: Frames, window: int) -> float:
    async with open_ws(url) as ws:
        await ws.send(encode(Hello("bench", new_session(), 0)))
        welcome = decode_bridge(await ws.recv())
        assert isinstance(welcome, Welcome), welcome
        acked = 0
        started = time.perf_counter()
        next_seq = 1

        async def sender() -> None:
            nonlocal next_seq
            while next_seq <= len(frames):
                if next_seq - acked > window:
                    await asyncio.sleep(0)  # wait for the receiver to move the window
                    await ack_moved.wait()
                    ack_moved.clear()
                    continue
                await ws.send(frames[next_seq])
                next_seq += 1

        ack_moved = asyncio.Event()
        task = asyncio.create_task(sender())
        while acked < len(frames):
            ack = decode_bridge(await ws.recv())
            assert isinstance(ack, Ack), ack
            acked = ack.seq
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
    frames = Frames(args.messages, args.ticks)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(db), args.sync], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            url = re.sub(r"\s+", "", server.stdout.readline())
            elapsed = await run(url, frames, args.window)
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
        f"(frame {len(frames[1]) / 1024:.0f} KiB, db {size / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    asyncio.run(main())
