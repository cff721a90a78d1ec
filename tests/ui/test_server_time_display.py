"""The window shows time as MT5 does: the server's clock, with UTC and local time in tooltips.

A known tick at a known UTC instant goes through a real collector; the panels read it
through a stand-in for the session (only what they read: config, collector, zones).
Truth: ny-close is GMT+2 in January and GMT+3 in July (US daylight saving), written here
by hand, not computed by the code under test.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.collector import Collector
from app.config import ClientConfig
from app.connector.history_sources import ApiHistory
from app.daystats import DayBook
from app.history.chart_history import ChartHistory
from app.servertime import NY_CLOSE
from app.sessions import MarketHours, SessionBook
from app.ticks import TickBatch
from app.zones import ServerZones, server_clock_text
from tests.collector.ticks_factory import ticks_at
from tests.ui.stand_in import StandInSession
from ui.panels.market_watch import MarketWatch
from ui.panels.quotes import TIME
from ui.panels.tick_chart import TickChart
from ui.tasks import TaskRunner

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support ")

WINTER = int(dt.datetime(2024, 1, 17, 12, 0, 0, 123_000, tzinfo=dt.UTC).timestamp() * 1000)
SUMMER = int(dt.datetime(2024, 7, 17, 12, 0, 0, 123_000, tzinfo=dt.UTC).timestamp() * 1000)


def fake_session(tick_msc: int, zone_known: bool = True) -> Any:
    """Only the parts of a runtime a snapshot reads, with a tick at ``tick_msc``."""
    config = ClientConfig.model_validate({"terminals": [{"name": "sim", "symbols": ["EURUSD"]}]})
    zones = ServerZones([("sim", NY_CLOSE if zone_known else None, ["EURUSD"])])
    collector = Collector(1000, zones=zones)
    collector.ingest(TickBatch("EURUSD", ticks_at([tick_msc])))
    hours = MarketHours.build(SessionBook.default(), {}, enabled=False)  # display only
    days = DayBook(collector, zones.zone, lambda: zones.version)
    chart = ChartHistory(collector, zones, hours, lambda _s: None, ApiHistory)  # type: ignore[arg-type]
    runtime = SimpleNamespace(
        collector=collector,
        zones=zones,
        monitor=None,
        market_hours=hours,
        day_stats=days,
        pool=SimpleNamespace(health=list),
        backfill=SimpleNamespace(progress=list),
        link=None,
        embedded=None,
        embedded_error=None,
    )
    return StandInSession(config, runtime, lambda: tick_msc / 1000, chart=chart)


@pytest.mark.parametrize(("tick_msc", "hours"), [(WINTER, 2), (SUMMER, 3)], ids=["+2", "+3"])
def test_market_watch_time_is_server_time(qtbot: QtBot, tick_msc: int, hours: int) -> None:
    panel = MarketWatch(fake_session(tick_msc), TaskRunner())
    qtbot.addWidget(panel)
    panel.refresh()
    row = panel.model.row_of("EURUSD")
    assert row is not None
    cell = panel.model.index(row, TIME)
    assert cell.data() == f"{12 + hours}:00:00.123"
    tip = cell.data(Qt.ItemDataRole.ToolTipRole)
    month = "01" if hours == 2 else "07"
    assert f"2024-{month}-17 {12 + hours}:00:00.123 server time" in tip
    assert f"ny-close, GMT+{hours}" in tip
    assert "2024-" in tip
    assert " 12:00:00.123 UTC" in tip
    assert "local" in tip


def test_market_watch_says_when_server_time_is_unknown(qtbot: QtBot) -> None:
    panel = MarketWatch(fake_session(WINTER, zone_known=False), TaskRunner())
    qtbot.addWidget(panel)
    panel.refresh()
    row = panel.model.row_of("EURUSD")
    assert row is not None
    cell = panel.model.index(row, TIME)
    assert cell.data() == "12:00:00.123"  # UTC until the worker reports the zone
    assert "server time unknown" in cell.data(Qt.ItemDataRole.ToolTipRole)


@pytest.mark.parametrize(("tick_msc", "hours"), [(WINTER, 2), (SUMMER, 3)], ids=["+2", "+3"])
def test_chart_axis_labels_are_server_time(qtbot: QtBot, tick_msc: int, hours: int) -> None:
    chart = TickChart(fake_session(tick_msc), TaskRunner(), now=lambda: tick_msc / 1000 + 1)
    qtbot.addWidget(chart)
    chart.resize(900, 420)
    chart.show()
    chart.refresh()
    chart.grab()  # paint once: the axis measures its labels' font when drawn
    axis = chart.date_axis
    assert axis.offset_s == hours * 3600
    # Labels of the ticks the axis places around the known instant.
    t = tick_msc / 1000
    spaced = [(s, v) for s, v in axis.tickValues(t - 300, t + 5, 800) if len(v)]
    spacing, values = spaced[0]
    labels = axis.tickStrings(values, 1.0, spacing)
    fmt = next(s.format for s in axis.zoomLevel.tickSpecs if s.spacing == spacing)
    want = [
        (dt.datetime.fromtimestamp(v, dt.UTC) + dt.timedelta(hours=hours)).strftime(fmt)
        for v in values
    ]
    assert labels == want
    assert any(label.startswith(f"{12 + hours - 1}:5") for label in labels)  # 13:55 / 14:55
    assert f"GMT+{hours}" in axis.toolTip()
    assert "UTC is GMT" in axis.toolTip()
    assert "local time" in axis.toolTip()
    assert " 12:00:00.123 UTC" in chart.status.toolTip()


def test_server_clock_for_the_status_bar() -> None:
    at = dt.datetime(2024, 1, 17, 12, 3, 22, tzinfo=dt.UTC).timestamp()
    clock = server_clock_text(NY_CLOSE, at, "sim")
    assert clock.text == "Server 14:03:22 (GMT+2)"
    assert "UTC 2024-01-17 12:03:22" in clock.tooltip
    assert "local" in clock.tooltip
    summer = dt.datetime(2024, 7, 17, 12, 3, 22, tzinfo=dt.UTC).timestamp()
    assert server_clock_text(NY_CLOSE, summer).text == "Server 15:03:22 (GMT+3)"
    unknown = server_clock_text(None, at, "real")
    assert unknown.text == "UTC 12:03:22"
    assert "unknown" in unknown.tooltip
    zones = ServerZones([("sim", NY_CLOSE, ["EURUSD"]), ("real", None, ["GBPUSD"])])
    assert zones.clock("GBPUSD", at).text == "UTC 12:03:22"
    assert zones.clock("EURUSD", at).text == "Server 14:03:22 (GMT+2)"
    assert zones.clock("", at).text == "Server 14:03:22 (GMT+2)"  # the first terminal's
