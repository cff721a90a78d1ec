"""Market Watch over a ny-close weekend: a closed market's row is greyed and says "closed".

A real :class:`Runtime` built from settings (its market hours come from the ``sessions``
settings and the terminal's zone) is fed the simulated market's own ticks on a manual
clock; it is not started, so no process runs and the weekend passes in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from types import SimpleNamespace

from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from app.clock import ManualClock
from app.config import ClientConfig
from app.runtime import Runtime
from app.sessions import SessionBook
from app.terminal.simulated import SimulatedTerminal
from app.ticks import TickBatch
from tests.ui.stand_in import StandInSession
from ui.panels.market_watch import CLOSED, MarketWatch
from ui.panels.quotes import TIME
from ui.panels.tick_chart import TickChart
from ui.tasks import TaskRunner
from ui.theme import DARK

NY = zoneinfo.ZoneInfo("America/New_York")
SYMBOLS = ["EURUSD", "XAUUSD", "BTCUSD"]


def ny(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=NY).timestamp())  # type: ignore[misc]


def test_a_closed_market_is_greyed_and_reads_closed(qtbot: QtBot, tmp_path: Path) -> None:
    clock = ManualClock(ny(2026, 1, 16, 16, 50))  # server Friday 23:50
    config = ClientConfig.model_validate(
        {
            "terminals": [{"symbols": SYMBOLS}],
            "backend": {"enabled": False},
            "backfill": {"state_file": str(tmp_path / "spans.json")},
        }
    )
    runtime = Runtime(config, clock=clock)
    session = StandInSession(config, runtime, clock.time)
    term = SimulatedTerminal(3, clock=clock, sessions=SessionBook.default())
    panel = MarketWatch(session, TaskRunner())  # type: ignore[arg-type]
    qtbot.addWidget(panel)
    fed = {s: int(clock.time() - 60) * 1000 for s in SYMBOLS}

    def time_cell(symbol: str) -> QModelIndex:
        row = panel.model.row_of(symbol)
        assert row is not None
        return panel.model.index(row, TIME)

    def render_at(when: float) -> dict[str, str]:
        clock.set_time(when)
        now_ms = int(when * 1000)
        for s in SYMBOLS:  # the last minute of each market, as a live capture sees it
            ticks = term.market.ticks_range(s, max(fed[s], now_ms - 60_000), now_ms)
            fed[s] = now_ms
            if len(ticks):
                runtime.collector.ingest(TickBatch(s, ticks))
        panel.refresh()
        return {s: time_cell(s).data() for s in SYMBOLS}

    def grey(symbol: str) -> bool:
        color = time_cell(symbol).data(Qt.ItemDataRole.ForegroundRole)
        return color is not None and color.name() == DARK.stale

    friday = render_at(clock.time() + 5)
    assert CLOSED not in friday.values()
    assert not any(grey(s) for s in SYMBOLS)

    saturday = render_at(ny(2026, 1, 17, 12))
    assert saturday["EURUSD"] == CLOSED
    assert saturday["XAUUSD"] == CLOSED
    assert saturday["BTCUSD"] not in (CLOSED, "")
    assert grey("EURUSD")
    assert grey("XAUUSD")
    assert not grey("BTCUSD")
    assert not panel.model.quote(time_cell("EURUSD").row()).stale  # closed, not stalled
    last = runtime.collector.stats.symbols["EURUSD"].last_time_msc
    assert last < ny(2026, 1, 16, 16, 57) * 1000  # Friday's last tick, before the close
    tip = time_cell("EURUSD").data(Qt.ItemDataRole.ToolTipRole)
    assert "market closed" in tip

    # Monday 00:10 server: FX is back; gold opens at 01:00 server.
    monday = render_at(ny(2026, 1, 18, 17, 10))
    assert monday["EURUSD"] not in (CLOSED, "")
    assert not grey("EURUSD")
    assert monday["XAUUSD"] == CLOSED


def test_the_chart_of_a_closed_market_says_when_it_opens(qtbot: QtBot, tmp_path: Path) -> None:
    saturday = ny(2026, 1, 17, 12)
    config = ClientConfig.model_validate(
        {
            "terminals": [{"symbols": ["EURUSD", "BTCUSD"]}],
            "backend": {"enabled": False},
            "backfill": {"state_file": str(tmp_path / "spans.json")},
        }
    )
    runtime = Runtime(config, clock=ManualClock(saturday))
    chart_reads = runtime.chart
    session = SimpleNamespace(
        config=config,
        runtime=runtime,
        capturing=True,
        chart_ticks=chart_reads.ticks,
        chart_bars=chart_reads.series,
        request_older=chart_reads.request_older,
    )
    chart = TickChart(session, TaskRunner(), now=lambda: saturday)  # type: ignore[arg-type]
    qtbot.addWidget(chart)
    chart.refresh()
    # Sunday 17:00 New York is Monday 00:00 server time at a ny-close broker.
    assert chart.status.text() == "EURUSD: market closed, opens Mon 00:00 server time"
