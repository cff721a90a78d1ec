"""A stand-in for :class:`~app.session.DesktopSession` over core parts a test drives by
hand (a runtime that is not started, fed through its collector on a ManualClock): the
panels read it exactly as the window does, through a snapshot the real
:class:`~app.session_view.SnapshotBuilder` builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.config import ClientConfig
from app.monitor.history import SeriesHistory
from app.session_view import SessionSnapshot, SessionState, SnapshotBuilder


class StandInSession:
    def __init__(self, config: ClientConfig, runtime: Any, now: Callable[[], float]) -> None:
        self.config = config
        #: Read by the tick chart only (it reads the runtime until it is rewritten).
        self.runtime = runtime
        self._now = now
        self._views = SnapshotBuilder()
        self._history = SeriesHistory()

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
