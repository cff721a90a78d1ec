"""DesktopSession without Qt: a real capture (simulated terminal in worker processes),
read only through ``snapshot()`` and driven only through the session's intents, as the
window does. Truth comes from elsewhere: the terminal's own deterministic history (a
fresh ``SimulatedTerminal`` from the same settings), the settings file on disk, and the
spans file the test wrote.

No module of this test imports Qt: the session is the window's whole interface to the
core, and it runs without it (checked at the end of the module).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson
import pytest

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.session import DesktopSession, SessionSnapshot, SessionState
from app.session_view import BackfillState, WorkerState
from app.terminal.simulated import SimulatedTerminal
from tests.conftest import wait_until

pytestmark = pytest.mark.slow

#: Whether Qt was already imported by other test modules of this process.
_QT_BEFORE = "PySide6" in sys.modules

TERMINAL = "sim"
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY"]
POOL = 2
#: The previous run ended this long ago: a backfill that takes a while (1-min chunks).
GAP_H = 6


def _config(tmp_path: Path) -> ClientConfig:
    return ClientConfig.model_validate(
        {
            "terminals": [
                {
                    "name": TERMINAL,
                    "symbols": SYMBOLS,
                    "seed": 11,
                    "market_hours": "always",
                    "server_time_zone": "UTC",
                }
            ],
            "pool": {"size": POOL, "backoff": {"initial_s": 0.2, "maximum_s": 1.0}},
            "sessions": {"enabled": False},
            "backend": {"enabled": False},
            "backfill": {
                "state_file": str(tmp_path / "spans.json"),
                "chunk_minutes": 1,
                "max_span_h": GAP_H + 1,
            },
            "monitor": {
                "rules": [
                    {
                        "name": "ticks_flowing",
                        "metric": "tps.total",
                        "comparison": "above",
                        "threshold": 0,
                    }
                ]
            },
            "security": {"vault": "file", "vault_file": str(tmp_path / "vault")},
        }
    )


def _write_spans(path: Path, end_ms: int) -> None:
    """An earlier run captured an hour up to ``end_ms``: the gap after it is backfilled."""
    start_ms = end_ms - 3_600_000
    spans = {f"{TERMINAL}/{s}": [[start_ms, 0, end_ms, 0]] for s in SYMBOLS}
    path.write_bytes(orjson.dumps({"version": 1, "spans": spans}))


async def _snapshot_when(session: DesktopSession, test, what: str) -> SessionSnapshot:  # type: ignore[no-untyped-def]
    box: list[SessionSnapshot] = []

    def check() -> bool:
        snap = session.snapshot()
        if test(snap):
            box.append(snap)
            return True
        return False

    await wait_until(check, 60, what)
    return box[-1]


async def test_snapshot_and_intents_of_a_running_session(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _write_spans(tmp_path / "spans.json", int((time.time() - GAP_H * 3600) * 1000))
    store = ConfigStore(tmp_path / "client-config.json")
    store.save(config)
    session = DesktopSession(store)
    stopped = session.snapshot()
    assert stopped.state is SessionState.STOPPED
    assert not stopped.running
    assert stopped.captured == tuple(SYMBOLS)
    await session.start()
    try:
        await _intents(session, config, store)
    finally:
        await session.stop()
    assert session.snapshot().state is SessionState.STOPPED


async def _intents(session: DesktopSession, config: ClientConfig, store: ConfigStore) -> None:
    snap = await _snapshot_when(
        session,
        lambda s: (
            s.running
            and s.streaming == len(s.workers)
            and all(q.time_msc > 0 for q in s.quotes.values())
        ),
        "every worker streaming and a quote for every symbol",
    )
    # Workers: the pool's size from the settings, together capturing every symbol once.
    assert len(snap.workers) == POOL
    assert sorted(s for w in snap.workers for s in w.symbols) == sorted(SYMBOLS)
    # Each quote is the terminal's own last tick at that millisecond (its history is a
    # pure function of seed, symbol and time).
    market = SimulatedTerminal.from_spec(config.terminals[0].to_spec(None)).market
    for symbol, q in snap.quotes.items():
        ticks = market.ticks_range(symbol, q.time_msc, q.time_msc + 1)
        assert len(ticks), symbol
        assert (q.bid, q.ask) == (float(ticks["bid"][-1]), float(ticks["ask"][-1]))
    assert snap.clock("EURUSD").text.startswith("Server ")

    # The backfill of the 6 h gap runs; cancelling it stops every job.
    assert snap.backfill_running, "the gap since the spans file's run is being fetched"
    assert session.cancel_backfill()
    await _snapshot_when(
        session,
        lambda s: (
            not s.backfill_running and any(j.state is BackfillState.CANCELLED for j in s.backfill)
        ),
        "the backfill cancelled",
    )
    assert not session.cancel_backfill(), "nothing left to cancel"

    # An alert (the test's rule: ticks are flowing) shows, and acknowledging it counts.
    snap = await _snapshot_when(
        session,
        lambda s: s.monitor is not None and s.monitor.unacknowledged > 0,
        "the ticks_flowing alert",
    )
    assert snap.monitor is not None
    alert = next(a for a in snap.monitor.alerts if a.rule == "ticks_flowing")
    assert session.acknowledge_alert(alert.id)
    acked = session.snapshot()
    assert acked.monitor is not None
    assert next(a for a in acked.monitor.alerts if a.id == alert.id).acknowledged
    assert not session.acknowledge_alert("no-such-alert")

    # Restarting a worker: the snapshot shows it restarting, then streaming again.
    first = snap.workers[0]
    session.restart_worker(first.worker_id)

    def worker(s: SessionSnapshot) -> WorkerState:
        return next(w for w in s.workers if w.worker_id == first.worker_id).state

    await _snapshot_when(session, lambda s: worker(s) is not WorkerState.STREAMING, "restarting")
    restarted = await _snapshot_when(
        session, lambda s: worker(s) is WorkerState.STREAMING, "streaming again"
    )
    again = next(w for w in restarted.workers if w.worker_id == first.worker_id)
    assert again.pid != first.pid

    # Removing a symbol: saved, its worker alone changes, its row leaves the snapshot.
    removed = await session.remove_symbol("usdjpy")
    assert removed.ok, removed.message
    assert "USDJPY" not in store.load().config.terminals[0].symbols
    snap = session.snapshot()
    assert "USDJPY" not in snap.captured
    assert "USDJPY" not in snap.quotes
    assert all("USDJPY" not in w.symbols for w in snap.workers)
    assert (await session.remove_symbol("GBPUSD")).ok
    last = await session.remove_symbol("EURUSD")
    assert not last.ok
    assert "last symbol" in last.message
    assert store.load().config.terminals[0].symbols == ["EURUSD"]

    # Adding one back: saved, captured again, quoted from the terminal's history.
    added = await session.add_symbol("USDJPY")
    assert added.ok, added.message
    assert store.load().config.terminals[0].symbols == ["EURUSD", "USDJPY"]
    snap = await _snapshot_when(
        session,
        lambda s: "USDJPY" in s.quotes and s.quotes["USDJPY"].time_msc > 0,
        "a quote for the added symbol",
    )
    q = snap.quotes["USDJPY"]
    ticks = market.ticks_range("USDJPY", q.time_msc, q.time_msc + 1)
    assert (q.bid, q.ask) == (float(ticks["bid"][-1]), float(ticks["ask"][-1]))
    refused = await session.add_symbol("FOOBAR")
    assert not refused.ok
    assert "does not offer it" in refused.message


def test_the_session_runs_without_qt() -> None:
    """Last in the module: nothing above imported Qt (unless an earlier module of the
    same pytest process did; run this file alone to see it)."""
    assert _QT_BEFORE or "PySide6" not in sys.modules
