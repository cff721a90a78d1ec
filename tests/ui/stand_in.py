"""A stand-in for :class:`~app.session.DesktopSession` over core parts a test drives by
hand (a runtime that is not started, fed through its collector on a ManualClock): the
panels read it exactly as the window does, through a snapshot the real
:class:`~app.session_view.SnapshotBuilder` builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.config import ClientConfig
from app.history.chart_history import ChartHistory, ChartSeries
from app.monitor.history import SeriesHistory
from app.session_view import SessionSnapshot, SessionState, SnapshotBuilder


class StandInSession:
    def __init__(
        self,
        config: ClientConfig,
        runtime: Any,
        now: Callable[[], float],
        chart: ChartHistory | None = None,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self._now = now
        self._views = SnapshotBuilder()
        self._history = SeriesHistory()
        self._chart = chart

    # The chart's reads, as DesktopSession answers them (app/session.py).
    @property
    def capturing(self) -> bool:
        return self.runtime is not None

    def chart_bars(self, symbol: str, timeframe: str) -> ChartSeries | None:
        return None if self._chart is None else self._chart.series(symbol, timeframe)

    def chart_ticks(self, symbol: str, start_msc: int, seen: int) -> ChartSeries | None:
        return None if self._chart is None else self._chart.ticks(symbol, start_msc, seen)

    def request_older(self, symbol: str, timeframe: str, before_ms: int) -> None:
        if self._chart is not None:
            self._chart.request_older(symbol, timeframe, before_ms)

    def snapshot(self) -> SessionSnapshot:
        return self._views.build(
            now=self._now(),
            state=SessionState.RUNNING,
            error="",
            run=1,
            terminals={t.name: tuple(t.symbols) for t in self.config.terminals},
            runtime=self.runtime,
            history=self._history,
            history_version=1,
        )
