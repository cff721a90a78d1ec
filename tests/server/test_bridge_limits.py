"""Limits and value validation on a real bridge (issue #13 items 3 and 4): impossible tick
values refused whole with the reason and counted; too many blocks refused before they are
decoded; a hello that resumes beyond any plausible gap refused; and a hostile client next
to an honest one on a backend in its own process: the honest one's tick-to-ack latency
and the backend's memory stay bounded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.clock import now_msc
from app.protocol.codec import (
    MAX_BLOCKS_PER_MESSAGE,
    Error,
    Hello,
    Ticks,
    encode,
    encode_ticks,
)
from app.protocol.validation import Reason
from app.server import ReferenceBackend
from app.server.accept import INT64_MAX
from app.server.limits import BridgeLimits
from app.server.process import BackendProcess
from app.ticks import TICK_DTYPE, TickArray, TickBatch
from tests.server.conftest import (
    ADMIN_KEY,
    KEYS,
    add_user,
    new_session,
    open_ws,
    say_hello,
    send_ticks,
    wait_ack,
    wait_closed,
)


def live_ticks(n: int, start_msc: int | None = None) -> TickArray:
    """``n`` plausible ticks ending about now (the bridge's time window is around now)."""
    start = (now_msc() - 10 * n - 60_000) if start_msc is None else start_msc
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["time_msc"] = start + np.arange(n) * 10
    t["time"] = t["time_msc"] // 1000
    t["bid"] = 1.1 + (np.arange(n) % 50) * 1e-5
    t["ask"] = t["bid"] + 2e-5
    t["volume"] = 1
    t["volume_real"] = 1.0
    t["flags"] = 6
    return t


BAD_VALUES = [
    ("volume", 2**64 - 1, Reason.VOLUME_RANGE),
    ("time_msc", -(10**15), Reason.TIME_WINDOW),
    ("bid", 1e308, Reason.PRICE_RANGE),
    ("flags", 0x100, Reason.UNKNOWN_FLAGS),
    ("volume_real", float("nan"), Reason.NOT_FINITE),
    ("ask", 0.5, Reason.ASK_BELOW_BID),
]


@pytest.mark.parametrize(("column", "value", "reason"), BAD_VALUES, ids=[r for *_, r in BAD_VALUES])
async def test_a_message_with_an_invalid_tick_is_refused_whole_naming_seq_and_reason(
    backend: ReferenceBackend, column: str, value: float, reason: Reason
) -> None:
    session = new_session()
    good = live_ticks(5)
    bad = live_ticks(5, start_msc=int(good["time_msc"][-1]) + 10)
    bad[column][3] = value
    if column == "time_msc":
        bad["time"] = bad["time_msc"] // 1000
    async with open_ws(backend.bridge_url) as ws:
        await say_hello(ws, "desk-v", session)
        await send_ticks(ws, 1, [TickBatch("EURUSD", good)])
        await wait_ack(ws, 1)
        await send_ticks(ws, 2, [TickBatch("XAUUSD", good), TickBatch("EURUSD", bad)])
        got, code = await wait_closed(ws)
    assert isinstance(got[-1], Error), got
    error = got[-1]
    assert (error.code, code) == ("bad_tick", 1008)
    assert error.message.startswith("seq 2 block 1 ('EURUSD') tick 3:"), error.message
    assert reason.value in error.message
    stored = backend.store.read_ticks(session=session)
    assert np.array_equal(stored, good)  # nothing of message 2, not even its good block
    stats = backend.store.stats()
    assert stats["refused_by_reason"] == {reason.value: 1}
    assert stats["refused_messages"] == 1
    assert backend.store.last_seq("desk-v", session) == 1


async def test_a_frame_of_too_many_blocks_is_refused_before_it_is_decoded(
    backend: ReferenceBackend,
) -> None:
    """The issue's 15 MB frames of one-tick blocks: refused from the array header."""
    one = live_ticks(1).tobytes()
    n = 215_000
    frame = encode(Ticks(1, [("EURUSD", one)] * n))
    assert len(frame) > 15 * 10**6
    async with open_ws(backend.bridge_url) as ws:
        await say_hello(ws, "desk-blocks", new_session())
        started = time.monotonic()
        await ws.send(frame)
        got, code = await wait_closed(ws)
        elapsed = time.monotonic() - started
    assert isinstance(got[-1], Error)
    assert got[-1].code == "too_many_blocks"
    assert f"{n} blocks" in got[-1].message
    assert str(MAX_BLOCKS_PER_MESSAGE) in got[-1].message
    assert code == 1008
    assert elapsed < 5.0
    assert backend.store.stats()["refused_by_reason"] == {"too_many_blocks": 1}


async def test_a_hello_resuming_beyond_any_plausible_gap_is_refused_and_storage_goes_on(
    backend: ReferenceBackend,
) -> None:
    """Issue #13: two hellos with resume_from 2^63-1 stopped all storage. Now refused
    (bad_resume), nothing counted as lost, the session stays usable from 0."""
    session = new_session()
    for _ in range(2):
        async with open_ws(backend.bridge_url) as ws:
            await ws.send(encode(Hello("desk-h", session, INT64_MAX, credential=ADMIN_KEY)))
            got, _code = await wait_closed(ws)
        assert isinstance(got[-1], Error)
        assert got[-1].code == "bad_resume"
        assert "resume_from" in got[-1].message
    async with open_ws(backend.bridge_url) as ws:
        assert await say_hello(ws, "desk-h", session) == 0
        await send_ticks(ws, 1, [TickBatch("EURUSD", live_ticks(3))])
        await wait_ack(ws, 1)
    stats = backend.store.stats()
    assert stats["lost_batches"] == 0
    assert stats["ticks_stored"] == 3
    assert stats["refused_by_reason"] == {"bad_resume": 2}


# ---------------------------------------------------------------- hostile and honest
def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


#: The backend process's users-file login for these tests (an admin: any client id).
CREDENTIAL = "tester:a-long-enough-test-password"


async def _flood_one_tick_blocks(url: str, rounds: int) -> int:
    """15 MB frames of one-tick blocks (refused now), reconnecting after each refusal."""
    frame = encode(Ticks(1, [("EURUSD", live_ticks(1).tobytes())] * 215_000))
    refused = 0
    for _ in range(rounds):
        async with open_ws(url) as ws:
            await say_hello(ws, "hostile-blocks", new_session(), credential=CREDENTIAL)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)
                await ws.send(frame)
            got, _ = await wait_closed(ws, timeout=60)
            refused += any(isinstance(m, Error) for m in got)
    return refused


async def _flood_big_valid_frames(url: str, frames: int) -> None:
    """Full 15 MB frames of valid ticks, as fast as the bridge reads them."""
    big = live_ticks(250_000)
    async with open_ws(url) as ws:
        await say_hello(ws, "hostile-big", new_session(), credential=CREDENTIAL)
        for seq in range(1, frames + 1):
            await ws.send(encode_ticks(seq, [TickBatch("BIG", big)]))
        await wait_ack(ws, frames, timeout=120)


async def _idle_sockets(port: int, n: int, stop: asyncio.Event) -> None:
    """Connections that never finish their handshake."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # half a request, then nothing
            socks.append(s)
        await stop.wait()
    finally:
        for s in socks:
            s.close()


async def test_a_hostile_client_does_not_stall_an_honest_one_or_grow_the_backend(
    tmp_path: Path,
) -> None:
    name, password = CREDENTIAL.split(":")
    add_user(tmp_path / "b.db", name, password, (), admin=True)
    proc = BackendProcess(bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "b.db")
    await proc.start()
    try:
        assert proc.pid is not None
        pid = proc.pid
        url = proc.bridge_url
        session = new_session()
        latencies: list[float] = []
        peak = 0
        async with open_ws(url) as honest:
            await say_hello(honest, "honest", session, credential=CREDENTIAL)
            # Warm up (imports, first commit) before the baseline.
            await send_ticks(honest, 1, [TickBatch("EURUSD", live_ticks(10))])
            await wait_ack(honest, 1)
            baseline = _rss_bytes(pid)
            stop = asyncio.Event()

            async def sample_rss() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, _rss_bytes(pid))
                    await asyncio.sleep(0.05)

            async def honest_loop() -> None:
                seq = 1
                last = int(live_ticks(1)["time_msc"][0])
                while not stop.is_set() or len(latencies) < 20:
                    seq += 1
                    last = max(last + 10, now_msc() - 1000)
                    ticks = live_ticks(10, start_msc=last)
                    last = int(ticks["time_msc"][-1])
                    started = time.monotonic()
                    await send_ticks(honest, seq, [TickBatch("EURUSD", ticks)])
                    await wait_ack(honest, seq, timeout=60)
                    latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample_rss())
            idle = asyncio.create_task(_idle_sockets(proc.bridge_port, 50, stop))
            runner = asyncio.create_task(honest_loop())
            hostile = [
                *(_flood_one_tick_blocks(url, 3) for _ in range(4)),
                *(_flood_big_valid_frames(url, 4) for _ in range(4)),
            ]
            results = await asyncio.gather(*hostile)
            stop.set()
            await asyncio.wait_for(runner, 60)
            await sampler
            await idle
        assert results[:4] == [3, 3, 3, 3]  # every one-tick-block flood was refused
        stats = proc.stats()
        assert stats["refused_by_reason"]["too_many_blocks"] == 12
        honest_stored = [s for s in stats["sessions"] if s["session"] == session]
        assert honest_stored[0]["ticks"] == 10 * (len(latencies) + 1)
    finally:
        await proc.stop()
    growth = peak - baseline
    worst = max(latencies)
    median = sorted(latencies)[len(latencies) // 2]
    print(
        f"\nhonest tick->ack latency: median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms "
        f"over {len(latencies)} messages; backend RSS {baseline / 2**20:.0f} MB -> peak "
        f"{peak / 2**20:.0f} MB (+{growth / 2**20:.0f} MB)"
    )
    assert worst < 10.0, f"honest client stalled {worst:.1f} s"
    assert growth < 900 * 2**20, f"backend grew by {growth / 2**20:.0f} MB"


async def test_connections_beyond_the_limit_are_refused_at_the_handshake(db_path: Path) -> None:
    async with ReferenceBackend(
        keys=KEYS,
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=db_path,
        bridge_limits=BridgeLimits(max_connections=2),
    ) as backend:
        async with open_ws(backend.bridge_url) as one, open_ws(backend.bridge_url) as two:
            with pytest.raises(InvalidStatus) as refused:
                async with open_ws(backend.bridge_url):
                    pass
            assert refused.value.response.status_code == 503
            for i, ws in enumerate((one, two)):
                await say_hello(ws, f"desk-{i}", new_session())
        async with open_ws(backend.bridge_url) as again:  # room again once they closed
            await say_hello(again, "desk-again", new_session())
        assert backend.store.stats()["refused_by_reason"] == {"too_many_connections": 1}


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_frame_bytes"):
        BridgeLimits(max_frame_bytes=10)
    with pytest.raises(ValueError, match="max_queue"):
        BridgeLimits(max_queue=0)
