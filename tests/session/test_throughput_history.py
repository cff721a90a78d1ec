"""The Throughput history survives a restart of the app (not only Ctrl+R).

Truth: the values recorded (unit), and the first run's own snapshot arrays (session):
after a new process-level start the old points are back at the same times and values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.monitor.history import SeriesHistory
from app.monitor.history_file import load_history, save_history
from app.session import DesktopSession
from app.session_view import TOTAL_SERIES, SessionSnapshot
from tests.conftest import wait_until

T0 = 1_790_000_000.0


def test_every_resolution_comes_back_as_it_was(tmp_path: Path) -> None:
    first = SeriesHistory()
    values = np.arange(7200, dtype=np.float64) % 97  # two hours, one point a second
    for i, v in enumerate(values.tolist()):
        first.record("tps.total", v, T0 + i)
        if i % 2:
            first.record("tps.worker.1", v * 2, T0 + i)
    path = tmp_path / "h.json"
    save_history(first, path)

    again = SeriesHistory()
    assert load_history(again, path)
    times, got = again.series("tps.total", 1.0)
    assert np.array_equal(times, T0 + np.arange(3600, 7200))  # the last hour at 1 s
    assert np.array_equal(got, values[3600:])
    minutes, means = again.series("tps.total", 60.0)
    start = int(T0 // 60) * 60
    slots = ((T0 + np.arange(7200)) - start) // 60
    expected = [values[slots == s].mean() for s in np.unique(slots)]
    assert np.array_equal(minutes, start + 60 * np.unique(slots))  # the day at 1 min
    assert np.allclose(means, expected)
    for res in (1.0, 60.0):
        mine, theirs = again.series("tps.worker.1", res), first.series("tps.worker.1", res)
        assert np.array_equal(mine[0], theirs[0])
        assert np.array_equal(mine[1], theirs[1])


def test_an_unreadable_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text("{not json")
    history = SeriesHistory()
    assert not load_history(history, path)
    assert len(history) == 0


def _config(tmp_path: Path) -> ClientConfig:
    return ClientConfig.model_validate(
        {
            "terminals": [
                {"name": "sim", "symbols": ["EURUSD"], "seed": 3, "market_hours": "always"}
            ],
            "pool": {"size": 1},
            "sessions": {"enabled": False},
            "backend": {"enabled": False},
            "backfill": {"state_file": str(tmp_path / "spans.json")},
            "security": {"vault": "file", "vault_file": str(tmp_path / "vault")},
        }
    )


def _total(snap: SessionSnapshot) -> tuple[np.ndarray, np.ndarray] | None:
    return snap.monitor.series.get(TOTAL_SERIES) if snap.monitor is not None else None


@pytest.mark.slow
async def test_the_charts_come_back_after_the_app_restarts(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(_config(tmp_path))
    first = DesktopSession(store)
    await first.start()
    try:
        box: list[tuple[np.ndarray, np.ndarray]] = []

        def points() -> bool:
            got = _total(first.snapshot())
            box[:] = [got] if got is not None else []
            return got is not None and len(got[0]) >= 3

        await wait_until(points, 30, "three seconds of throughput")
    finally:
        await first.stop()
    assert first.history_path.exists()
    # All but the newest second: stop folds its last partial interval into that slot.
    before_t, before_v = box[0][0][:-1], box[0][1][:-1]

    second = DesktopSession(ConfigStore(store.path))  # a new start of the app
    await second.start()
    try:
        await wait_until(lambda: _total(second.snapshot()) is not None, 30, "the chart")
        after = _total(second.snapshot())
        assert after is not None
        kept = np.isin(after[0], before_t)
        assert np.array_equal(after[0][kept], before_t)
        assert np.array_equal(after[1][kept], before_v)
    finally:
        await second.stop()
