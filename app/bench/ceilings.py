"""The ceilings of ``bench pipeline``: acked ticks/s through the protocol's encoder and
websockets alone, to a sink that acks with or without parsing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from websockets.asyncio.client import connect

from app.bench.harness import PhaseError, Progress, Settings, server_process
from app.config import DEFAULT_SYMBOLS
from app.protocol import codec
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TickBatch

#: Ticks per message and messages in flight for the ceilings (the link's defaults).
CEILING_BATCH_TICKS: Final = 5_000
CEILING_WINDOW: Final = 64


# ------------------------------------------------------------------ ceilings
def _ceiling_batches(batch_ticks: int, per_symbol: int = 8) -> list[TickBatch]:
    """Distinct batches to send round-robin, cut from one generated run per symbol (the
    market generates whole seconds: one call per batch would take seconds at start-up)."""
    market = Market(42, DEFAULT_PROFILES, dict.fromkeys(DEFAULT_SYMBOLS, 50_000.0))
    now = int(time.time() * 1000)
    batches = []
    for sym in DEFAULT_SYMBOLS:
        ticks = market.ticks_from(sym, now - 60_000, batch_ticks * per_symbol, now)
        batches += [
            TickBatch(sym, ticks[i : i + batch_ticks]) for i in range(0, len(ticks), batch_ticks)
        ]
    return batches


async def raw_ceiling(
    url: str,
    seconds: float,
    batch_ticks: int,
    window: int,
    report: Callable[[str], None] | None = None,
) -> float:
    """Acked ticks/s for the protocol's encoder and websockets alone; ``report`` gets a
    progress line a second."""
    batches = _ceiling_batches(batch_ticks)
    async with connect(url, compression=None, max_size=codec.DEFAULT_MAX_FRAME_BYTES) as ws:
        await ws.send(codec.encode(codec.Hello("bench", "raw", 0)))
        welcome = codec.decode_bridge(await ws.recv())
        if not isinstance(welcome, codec.Welcome):
            raise PhaseError(f"the peer answered the hello with {type(welcome).__name__}")
        acked, sent = 0, 0
        room = asyncio.Event()
        room.set()
        done = False

        async def receive() -> None:
            nonlocal acked
            async for frame in ws:
                message = codec.decode_bridge(frame)
                if not isinstance(message, codec.Ack):
                    raise PhaseError(f"the peer sent {message!r}")
                acked = message.seq
                room.set()
                if done and acked == sent:
                    return

        receiver = asyncio.create_task(receive())
        t0 = time.perf_counter()
        next_report, last_acked = t0 + 1, 0
        try:
            while time.perf_counter() - t0 < seconds:
                if report is not None and time.perf_counter() >= next_report:
                    report(f"acked {(acked - last_acked) * batch_ticks:>11,} ticks/s")
                    next_report, last_acked = next_report + 1, acked
                if sent - acked >= window:
                    room.clear()
                    await room.wait()
                    continue
                sent += 1
                await ws.send(codec.encode_ticks(sent, [batches[sent % len(batches)]]))
            done = True
            if acked < sent:
                await asyncio.wait_for(receiver, 30)
            elapsed = time.perf_counter() - t0
            if report is not None:
                report(
                    f"acked {acked * batch_ticks / elapsed:>11,.0f} ticks/s over {elapsed:.1f} s"
                )
            return acked * batch_ticks / elapsed
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver


async def ceiling_phase(settings: Settings, progress: Progress, *, parse: bool) -> float:
    args = ["app.bench.sink", *(["--parse"] if parse else [])]
    async with server_process("sink", settings.startup_timeout, *args) as url:
        name = "parse_ceiling" if parse else "raw_ceiling"
        return await raw_ceiling(
            url,
            settings.seconds,
            CEILING_BATCH_TICKS,
            CEILING_WINDOW,
            lambda text: progress.say(f"  {name}: {text}"),
        )
