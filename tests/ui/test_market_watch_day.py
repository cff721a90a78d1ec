"""Market Watch like MT5's: the day's high, low and change % at server midnight, the time
column in full, and adding a symbol from the terminal's own list (really captured).

The day figures are checked against an independent computation from the simulated
market's own ticks (``Market`` is a pure function of seed, symbol and time), across a
ny-close server midnight (22:00 UTC in winter), written here with plain datetime
arithmetic rather than the app's ``ServerTimeZone``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QFontMetrics
from pytestqt.qtbot import QtBot

from app.clock import ManualClock
from app.config import ClientConfig
from app.config.store import ConfigStore
from app.runtime import Runtime
from app.session import DesktopSession
from app.terminal.market import DEFAULT_PROFILES
from app.terminal.simulated import SimulatedTerminal
from app.ticks import TickBatch
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from tests.ui.stand_in import StandInSession
from ui.panels._format import MISSING, format_price
from ui.panels.market_watch import BID, CHANGE, HIGH, LOW, TIME, MarketWatch
from ui.tasks import TaskRunner

SYMBOLS = ["EURUSD", "XAUUSD", "BTCUSD"]
SEED = 11


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())  # type: ignore[misc]


def test_day_high_low_and_change_across_server_midnight(qtbot: QtBot, tmp_path: Path) -> None:
    # Wednesday 14 January 2026, winter: a ny-close server's midnight is 22:00 UTC.
    midnight = utc(2026, 1, 14, 22)
    clock = ManualClock(midnight - 30 * 60)
    config = ClientConfig.model_validate(
        {
            "terminals": [{"symbols": SYMBOLS, "seed": SEED, "market_hours": "always"}],
            "backend": {"enabled": False},
            "sessions": {"enabled": False},
            "backfill": {"state_file": str(tmp_path / "spans.json")},
            "cache": {"ticks_per_symbol": 200_000},
        }
    )
    runtime = Runtime(config, clock=clock)
    session = StandInSession(config, runtime, clock.time)
    market = SimulatedTerminal(SEED, clock=clock).market
    panel = MarketWatch(session, TaskRunner())  # type: ignore[arg-type]
    qtbot.addWidget(panel)
    panel.resize(560, 220)  # about the default dock width
    panel.show()
    start_ms = int(clock.time() * 1000)
    fed = dict.fromkeys(SYMBOLS, start_ms)

    def cell(symbol: str, column: int) -> QModelIndex:
        row = panel.model.row_of(symbol)
        assert row is not None
        return panel.model.index(row, column)

    def run_to(when: int) -> None:
        """Feed each symbol's ticks minute by minute up to ``when``, as a capture would."""
        while fed["EURUSD"] < when * 1000:
            step = min(fed["EURUSD"] + 60_000, when * 1000)
            clock.set_time(step / 1000)
            for s in SYMBOLS:
                ticks = market.ticks_range(s, fed[s], step)
                fed[s] = step
                if len(ticks):
                    runtime.collector.ingest(TickBatch(s, ticks))
            panel.refresh()

    # Capture starts at 21:30 UTC: nothing from before the server day's start (yesterday
    # 22:00 UTC) is held, so the day's figures are unknown: "—", never the last half hour.
    run_to(midnight - 60)
    for s in SYMBOLS:
        assert cell(s, BID).data() not in ("", MISSING)
        assert cell(s, HIGH).data() == MISSING
        assert cell(s, LOW).data() == MISSING
        assert cell(s, CHANGE).data() == MISSING
        assert "no tick from before" in cell(s, CHANGE).data(Qt.ItemDataRole.ToolTipRole)

    # The time column shows seconds (and milliseconds) in full at the default width.
    fixed = QFontMetrics(cell("EURUSD", TIME).data(Qt.ItemDataRole.FontRole))
    text = cell("EURUSD", TIME).data()
    assert text.count(":") == 2
    assert panel.table.columnWidth(TIME) >= panel.table.sizeHintForColumn(TIME)
    assert panel.table.columnWidth(TIME) > fixed.horizontalAdvance(text)

    # Past server midnight the day is known: compare with the market's own ticks.
    now = midnight + 40 * 60
    run_to(now)
    for s in SYMBOLS:
        digits = DEFAULT_PROFILES[s].digits
        before = market.ticks_range(s, (midnight - 30 * 60) * 1000, midnight * 1000)
        before = before[before["time_msc"] < midnight * 1000]
        today = market.ticks_range(s, midnight * 1000, now * 1000)
        assert len(before)
        assert len(today)
        prev_close = float(before["bid"][-1])
        bid = float(today["bid"][-1])
        assert cell(s, HIGH).data() == format_price(float(today["bid"].max()), digits)
        assert cell(s, LOW).data() == format_price(float(today["bid"].min()), digits)
        change = (bid - prev_close) / prev_close * 100
        assert cell(s, CHANGE).data() == f"{change:+.2f}%"
        figures = runtime.day_stats.figures(s)
        assert figures is not None
        assert figures.known
        assert figures.day_start_ms == midnight * 1000
        assert figures.prev_close == prev_close
        assert figures.open == float(today["bid"][0])
        assert f"previous close {format_price(prev_close, digits)}" in cell(s, HIGH).data(
            Qt.ItemDataRole.ToolTipRole
        )


@pytest.mark.qt_log_ignore(r"^This plugin does not support ")
async def test_add_a_symbol_from_the_terminal_list_captures_it(
    qtbot: QtBot, tmp_path: Path
) -> None:
    """Four of the terminal's five symbols are captured; USDJPY is picked from the
    list and captured by one restarted worker while the others stream on."""
    captured = ["EURUSD", "GBPUSD", "XAUUSD", "BTCUSD"]
    doc = ui_config_document(tmp_path, pool={"size": 4})
    doc["terminals"][0]["symbols"] = captured
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(doc))
    session = DesktopSession(store)
    await session.start()
    try:
        runtime = session.runtime
        assert runtime is not None
        panel = MarketWatch(session, TaskRunner())
        qtbot.addWidget(panel)
        panel.resize(700, 260)
        panel.show()

        def streaming() -> bool:
            return all(w.state == "streaming" for w in runtime.pool.health())

        await wait_until(streaming, 60, "four workers streaming")

        # FOOBAR: the terminal's symbols_get() has no such symbol; refused with that reason.
        qtbot.keyClicks(panel.add_edit, "FOOBAR")
        qtbot.keyClick(panel.add_edit, Qt.Key.Key_Return)
        await wait_until(lambda: "not added" in panel.hint.text(), 30, "FOOBAR refused")
        assert "does not offer" in panel.hint.text()
        assert "symbols_get" in panel.hint.text()
        assert "FOOBAR" not in panel.shown_symbols()
        assert session.config.terminals[0].symbols == captured
        panel.add_edit.clear()

        # Typing searches the terminal's list; picking from it and Enter captures.
        before = {w.worker_id: w for w in runtime.pool.health()}
        qtbot.keyClicks(panel.add_edit, "jp")
        completer = panel.completer

        def offered() -> bool:
            completer.setCompletionPrefix(panel.add_edit.text())
            return completer.completionCount() == 1

        await wait_until(offered, 30, "the terminal's list to complete 'jp'")
        completer.complete()
        popup = completer.popup()
        index = popup.model().index(0, 0)
        assert index.data() == "USDJPY"
        qtbot.mouseClick(
            popup.viewport(), Qt.MouseButton.LeftButton, pos=popup.visualRect(index).center()
        )
        assert panel.add_edit.text() == "USDJPY"
        qtbot.keyClick(panel.add_edit, Qt.Key.Key_Return)
        await wait_until(lambda: "added" in panel.hint.text(), 30, "USDJPY added")
        assert "USDJPY" in session.config.terminals[0].symbols
        assert "USDJPY" in store.load().config.terminals[0].symbols  # saved
        restarted = next(w.worker_id for w in runtime.pool.health() if "USDJPY" in w.symbols)
        assert f"worker {restarted} restarted" in panel.hint.text()

        def quoted() -> bool:
            panel.refresh()
            stats = runtime.collector.stats.symbols
            row = panel.model.row_of("USDJPY")
            return (
                "USDJPY" in stats
                and row is not None
                and panel.model.index(row, BID).data() not in ("", MISSING)
            )

        await wait_until(quoted, 60, "USDJPY's ticks on the board")

        # Only that worker restarted: the others kept their processes and kept streaming.
        after = {w.worker_id: w for w in runtime.pool.health()}
        for wid, w in before.items():
            if wid == restarted:
                continue
            assert after[wid].pid == w.pid
            assert after[wid].reconnects == w.reconnects

        await wait_until(
            lambda: all(
                h.ticks > before[h.worker_id].ticks
                for h in runtime.pool.health()
                if h.worker_id != restarted
            ),
            30,
            "the other workers' tick counts to grow",
        )
        assert after[restarted].pid != before[restarted].pid
    finally:
        await session.stop()
