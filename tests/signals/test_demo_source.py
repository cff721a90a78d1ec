"""The demo signal source over the bridge's store: crafted ticks whose M1 closes cross,
stored as the bridge stores them; the crossings are computed here independently
(vectorised: last bid per minute, SMAs by convolution) and compared with the signals
stored, and the default backend sends one to a connected client."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.server import ReferenceBackend
from app.server.demo_signals import DEMO_SHAPE, SOURCE, DemoSignalSource
from app.server.signal_store import SignalStore
from app.server.store import TickStore
from app.ticks import TickArray, TickBatch, empty_ticks
from tests.conftest import wait_until
from tests.server.conftest import ADMIN_KEY, KEYS, new_session
from tests.signals.conftest import RecordingExecutor, signal_client

pytestmark = pytest.mark.timeout(120)

MIN = 60_000


def wave_ticks(start_ms: int, minutes: int, seed: int = 1) -> TickArray:
    """A few ticks a minute on a slow sine with noise: the averages cross several times."""
    rng = np.random.default_rng(seed)
    per = 7
    n = minutes * per
    ticks = empty_ticks(n)
    offsets = np.sort(rng.integers(0, MIN, n).reshape(minutes, per), axis=1)
    tm = (start_ms + np.arange(minutes)[:, None] * MIN + offsets).ravel()
    ticks["time_msc"] = tm
    ticks["time"] = tm // 1000
    phase = (tm - start_ms) / (17 * MIN) * 2 * np.pi
    ticks["bid"] = np.round(1.1 + 0.002 * np.sin(phase) + rng.normal(0, 2e-5, n), 5)
    ticks["ask"] = ticks["bid"] + 1e-4
    ticks["flags"] = 6
    return ticks


def crossings(
    ticks: TickArray, fast: int = 5, slow: int = 20, bar_ms: int = MIN
) -> list[tuple[int, str]]:
    """(bar open ms, side) of every crossing on closed bars, computed independently."""
    minute = ticks["time_msc"] // bar_ms
    last = np.flatnonzero(np.r_[minute[1:] != minute[:-1], True])
    bars, closes = minute[last][:-1], ticks["bid"][last][:-1]  # the last bar is not closed

    def sma(k: int) -> np.ndarray:
        return np.convolve(closes, np.ones(k) / k, "valid")

    diff = sma(fast)[slow - fast :] - sma(slow)
    out = []
    for i in range(1, len(diff)):
        if diff[i - 1] <= 0 < diff[i]:
            out.append((int(bars[i + slow - 1]) * bar_ms, "buy"))
        elif diff[i - 1] >= 0 > diff[i]:
            out.append((int(bars[i + slow - 1]) * bar_ms, "sell"))
    return out


def test_the_source_emits_exactly_the_crossings(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    store, signals = TickStore(db, synchronous="OFF"), SignalStore(db)
    source = DemoSignalSource(db, signals, max_age_s=10**9)
    assert source.step() == []  # starts where the table ends
    ticks = wave_ticks(1_760_000_000_000, 120)
    session = new_session()
    chunks = np.array_split(ticks, 9)  # several messages, as the bridge stores them
    store.store(
        "desk-1", session, [(i + 1, [TickBatch("EURUSD", c)]) for i, c in enumerate(chunks)]
    )
    made = source.step()
    expected = crossings(ticks)
    assert len(expected) >= 6
    got = [(s.id.rsplit("-", 1)[1], s.side) for _, s in made]
    assert got == [(str(ms), side) for ms, side in expected]
    for _, s in made:
        assert s.source == SOURCE
        assert s.volume == 0.01
        assert s.symbol == "EURUSD"
        assert s.price is not None
        assert s.sl is not None
        assert s.tp is not None
        sign = 1 if s.side == "buy" else -1
        assert s.sl == pytest.approx(s.price - sign * 0.0010, abs=1e-9)
        assert s.tp == pytest.approx(s.price + sign * 0.0020, abs=1e-9)
        assert s.valid_until_ms - s.created_at_ms == 60_000
    # Seen again (a restarted source re-reading the same rows) nothing is stored twice.
    again = DemoSignalSource(db, signals, max_age_s=10**9)
    again._after = 0
    assert again.step() == []
    assert len(signals.list("desk-1")) == len(expected)
    store.close()
    signals.close()


async def test_the_default_backend_sends_a_demo_signal_to_the_client(tmp_path: Path) -> None:
    """Ticks that cross on the bar that just closed, stored by the bridge itself (sent
    over the link): the client receives the demo signal and it waits for the trader."""
    from app.collector import SequencedBatch  # noqa: PLC0415

    bar_s, fast, slow = DEMO_SHAPE  # the reference backend's demo: 10 s bars, 5/12
    bar = int(bar_s * 1000)
    now = int(time.time() * 1000)
    bars = 30
    first = now // bar - bars  # the last closed bar opens one bar before this one
    ticks = empty_ticks(bars + 1)
    tm = np.r_[(first + np.arange(bars)) * bar + bar // 2, now]
    tm[-2] = min(tm[-2], now - 1)
    ticks["time_msc"] = tm
    ticks["time"] = tm // 1000
    # A slow fall, then a jump on the last closed bar: the fast average crosses upwards.
    ticks["bid"] = np.r_[1.1 - 1e-5 * np.arange(bars - 1), 1.105, 1.105]
    ticks["ask"] = ticks["bid"] + 1e-4
    ticks["flags"] = 6
    expected = crossings(ticks, fast, slow, bar)
    assert expected == [((first + bars - 1) * bar, "buy")]
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "b.sqlite", keys=KEYS
    ) as backend:
        assert backend.demo is not None
        async with signal_client(
            backend.bridge_url, "desk-1", ADMIN_KEY, None, RecordingExecutor()
        ) as (desk, link):
            await wait_until(lambda: link.state.connected, 30, "the link")
            link.offer(SequencedBatch(1, TickBatch("EURUSD", ticks, 1, time.time()), time.time()))
            await wait_until(lambda: len(desk.snapshot().entries) >= len(expected), 30, "demo")
            got = sorted(
                (int(e.id.rsplit("-", 1)[1]), e.signal.side) for e in desk.snapshot().entries
            )
            assert got == sorted(expected)
            assert all(e.signal.source == SOURCE for e in desk.snapshot().entries)
    async with ReferenceBackend(
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=tmp_path / "c.sqlite",
        keys=KEYS,
        demo_signals=False,
    ) as quiet:
        assert quiet.demo is None
