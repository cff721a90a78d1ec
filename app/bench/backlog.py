"""The backlog phase of ``bench pipeline``: capture with the bridge down, then time the
drain and check that the bridge stored every captured tick."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from pathlib import Path
from typing import Any, Final

from websockets.asyncio.client import connect

from app.bench.harness import BENCH_CREDENTIAL, Progress, Settings, backend_args, server_process
from app.bench.runs import fresh_spool, pipeline_config, running, ticks_acked, ticks_captured
from app.config import DEFAULT_SYMBOLS
from app.ports import free_ports
from app.protocol import codec
from app.runtime import Runtime
from app.server.store import TickStore

#: Per symbol in the backlog phase: 200,000 ticks/s in all.
BACKLOG_RATE: Final = 40_000.0
#: Caught up after an outage: every tick captured longer ago than this is acked.
CAUGHT_UP_LAG_S: Final = 0.1


# ------------------------------------------------------------------ the backlog phase
async def _announced_limit(url: str) -> int | None:
    """``max_frame_bytes`` of the bridge's welcome, asked as a separate client."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10), connect(url, compression=None) as ws:
            await ws.send(
                codec.encode(codec.Hello("bench", "limit", 0, credential=BENCH_CREDENTIAL.reveal()))
            )
            welcome = codec.decode_bridge(await ws.recv())
            if isinstance(welcome, codec.Welcome):
                return welcome.max_frame_bytes
    return None


def _stored_ticks(db: Path, client_id: str) -> dict[str, int]:
    with TickStore(db) as store:
        stats = store.stats()
    return {
        "ticks": sum(s["ticks"] for s in stats["sessions"] if s["client_id"] == client_id),
        "duplicate_batches": int(stats["duplicate_batches"]),
        "refused_messages": int(stats["refused_messages"]),
    }


async def backlog_phase(settings: Settings, progress: Progress, tmp: Path) -> dict[str, Any]:
    """Capture with the bridge down for ``settings.outage`` seconds, then bring it up on
    the ports the link already dials, and time the drain."""
    ports = free_ports(3)
    urls = [
        f"ws://127.0.0.1:{ports[0]}/ws",
        f"http://127.0.0.1:{ports[1]}",
        f"http://127.0.0.1:{ports[2]}",
    ]
    db = tmp / "backlog.sqlite"
    config = pipeline_config(BACKLOG_RATE, fresh_spool(tmp), urls)
    drain_deadline = settings.seconds * 4 + 60
    result: dict[str, Any] = {"offered_ticks_per_s": BACKLOG_RATE * len(DEFAULT_SYMBOLS)}
    # The backend is entered after the runtime but must stop after it (the runtime drains
    # into it on the way out): it goes on an outer exit stack.
    async with (
        contextlib.AsyncExitStack() as outer,
        running(config, settings, progress, "backlog", need_link=False) as rt,
    ):
        assert rt.link is not None
        down_since = time.monotonic()
        progress.say(f"  backlog: bridge down for {settings.outage:g} s")
        await asyncio.sleep(settings.outage)
        await outer.enter_async_context(
            server_process("backend", settings.startup_timeout, *backend_args(settings, db, ports))
        )
        up_at = time.monotonic()
        captured_at_up = ticks_captured(rt)
        progress.say(f"  backlog: bridge up; {captured_at_up:,} ticks captured while it was down")
        result["outage_s"] = round(up_at - down_since, 2)
        result["ticks_captured_during_outage"] = captured_at_up
        delivered_s, drain_s = await _drain(rt, captured_at_up, up_at, drain_deadline)
        state = rt.link.state
        result["outage_backlog_delivered_s"] = _round(delivered_s)
        result["drain_s"] = _round(drain_s)
        result["drained"] = drain_s is not None
        if drain_s is None:
            progress.say(f"  backlog: not drained within {drain_deadline:.0f} s")
        result["largest_frame_bytes"] = getattr(state, "largest_frame_bytes", None)
        limit = getattr(state, "max_frame_bytes", None) or await _announced_limit(urls[0])
        result["max_frame_bytes"] = limit
    # Runtime stopped (drained into the bridge), then the backend: read what it stored.
    captured = ticks_captured(rt)
    state = rt.link.state
    stored = await asyncio.to_thread(_stored_ticks, db, "bench")
    result.update(
        {
            "ticks_captured": captured,
            "ticks_acked": state.ticks_acked,
            "backlog_ticks_at_stop": state.backlog_ticks,
            "ticks_stored_by_bridge": stored["ticks"],
            "duplicate_batches": stored["duplicate_batches"],
            "refused_messages": stored["refused_messages"],
            "every_tick_delivered": stored["ticks"] == captured,
        }
    )
    return result


async def _drain(
    rt: Runtime, captured_at_up: int, up_at: float, deadline: float
) -> tuple[float | None, float | None]:
    """Seconds from bridge up until the outage's ticks are acked, and until the link has
    caught up: every tick captured more than ``CAUGHT_UP_LAG_S`` earlier acked.

    Capture goes on meanwhile, so "acked == captured" holds only in the instants the
    link is idle, which a busy link may never show to a poll; a lag bound is what can be
    observed. The exact check — every captured tick stored — is made after the stop.
    """
    assert rt.link is not None
    history: collections.deque[tuple[float, int]] = collections.deque()
    delivered_s: float | None = None
    while time.monotonic() - up_at < deadline:
        now, captured, acked = time.monotonic(), ticks_captured(rt), ticks_acked(rt)
        history.append((now, captured))
        while len(history) > 1 and history[1][0] <= now - CAUGHT_UP_LAG_S:
            history.popleft()
        if delivered_s is None and acked >= captured_at_up:
            delivered_s = now - up_at
        old_enough = history[0][0] <= now - CAUGHT_UP_LAG_S
        if delivered_s is not None and old_enough and acked >= history[0][1]:
            return delivered_s, now - up_at
        await asyncio.sleep(0.01)
    return delivered_s, None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
