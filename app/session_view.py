"""What the window shows, as one immutable snapshot the session builds once per frame.

The window (``ui/``) used to reach through ``session.runtime`` into the pool, the
collector, the monitor, the link, the backfill, the zones, the market hours and the day
book, at some twenty places, each on its own schedule. Now its render timer asks
:meth:`app.session.DesktopSession.snapshot` once and hands the same
:class:`SessionSnapshot` to every panel and the status bar: every panel of one frame
shows the same instant, the window depends on these value types only (import-linter
keeps it so), and the core can change behind them.

Cheap by construction (``bench gui`` measures the render timer): per frame it reads what
the panels read before (per-symbol counters, pool health, link state, backfill
progress); what changes once a second (the monitor's metrics, alerts and series) is
rebuilt only when the monitor ticked, and series are read-only numpy arrays, not copies
of the history.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from app.config import ClientConfig
from app.connector.backfill import BackfillProgress, BackfillState
from app.connector.health import WorkerHealth, WorkerState
from app.daystats import DayFigures
from app.link.link import LinkState
from app.monitor.alerts import Alert, AlertState, Severity, ThresholdRule
from app.monitor.history import SeriesHistory
from app.monitor.rules import Comparison, Rule
from app.servertime import ServerTimeZone
from app.terminal.market import DEFAULT_PROFILES
from app.zones import ServerClockText, server_clock_text

if TYPE_CHECKING:
    from app.runtime import Runtime

FloatArray = npt.NDArray[np.float64]
#: A monitor metric: a number, a flag, or None (nothing measured this interval).
MetricValue = float | int | bool | None

#: Series of the monitor the window charts (the Throughput panel): the total, one per
#: worker, and the latency percentiles. Others stay in the history (export, alerts).
TOTAL_SERIES = "tps.total"
WORKER_PREFIX = "tps.worker."
LATENCY_SERIES_NAMES = (
    "latency.tick_to_collector.p50",
    "latency.tick_to_collector.p99",
    "latency.collector_to_ack.p99",
)


class SessionState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class QuoteRow:
    """One captured symbol at this instant: what Market Watch's row shows (``time_msc``
    0: no tick yet, bid and ask mean nothing)."""

    symbol: str
    #: Ticks the collector holds counted for it this run (a row redraws when it moves).
    ticks: int
    time_msc: int
    bid: float
    ask: float
    #: The day's figures (None: no tick yet, or the server zone is still being detected).
    day: DayFigures | None
    #: The symbol's server zone (None: not known yet, times shown in UTC).
    zone: ServerTimeZone | None
    #: Ticks per second over the monitor's last interval (None: no monitor, no value).
    tps: float | None
    #: Outside its trading session now.
    closed: bool


@dataclass(frozen=True, slots=True)
class SeriesView:
    """The charted series of the monitor's history (1 s resolution), read-only arrays.

    ``version`` changes only when the monitor ticked (once a second) or the history was
    handed to a new runtime, so a chart redraws only then.
    """

    version: int
    series: Mapping[str, tuple[FloatArray, FloatArray]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def get(self, name: str) -> tuple[FloatArray, FloatArray] | None:
        return self.series.get(name)

    def worker_ids(self) -> list[int]:
        """Workers that have a ticks/s series in the history (this run or earlier)."""
        ids = (n.removeprefix(WORKER_PREFIX) for n in self.series if n.startswith(WORKER_PREFIX))
        return sorted(int(s) for s in ids if s.isdigit())


@dataclass(frozen=True, slots=True)
class MonitorView:
    """The monitor at its last tick: metrics, alerts, charted series."""

    #: Grows on every monitor tick and acknowledgement: redraw only when it moved.
    version: int
    metrics: Mapping[str, MetricValue]
    #: Every alert the engine can name (active ones and those in its history).
    alerts: tuple[Alert, ...]
    unacknowledged: int
    rules: Mapping[str, Rule]
    series: SeriesView

    def number(self, name: str) -> float | None:
        """A metric as a float, None when absent, a flag or not measured."""
        value = self.metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """Everything the window renders in one frame; built by the session, never mutated."""

    #: Frame counter of the builder (grows by one per snapshot).
    frame: int
    #: Wall clock (UTC seconds) the snapshot was taken at.
    now: float
    state: SessionState
    #: Why capture failed (``state`` FAILED), else "".
    error: str
    #: Capture runs (a runtime exists: also while it starts the embedded backend,
    #: its workers already streaming); False before that and once stopped.
    running: bool
    #: Grows each time capture (re)starts: per-run counters start from zero again.
    run: int
    #: Symbols in the settings, in their order (Market Watch's rows).
    captured: tuple[str, ...]
    #: The symbols of each terminal in the settings (removing the last one is refused).
    terminals: Mapping[str, tuple[str, ...]]
    quotes: Mapping[str, QuoteRow]
    workers: tuple[WorkerHealth, ...]
    #: None: no backend configured (or not running).
    link: LinkState | None
    #: Why the embedded backend is not running: (short, whole text), or None.
    backend_problem: tuple[str, str] | None
    #: The app started the reference backend itself this run.
    embedded_backend: bool
    backfill: tuple[BackfillProgress, ...]
    #: None: capture stopped or monitoring off (``monitoring`` tells which).
    monitor: MonitorView | None
    monitoring: bool
    ticks_total: int
    #: Each captured symbol's (terminal, server zone or None while detecting).
    symbol_zones: Mapping[str, tuple[str, ServerTimeZone | None]]

    # ---------------------------------------------------------------- helpers
    def clock(self, symbol: str | None) -> ServerClockText:
        """The server clock of ``symbol``'s terminal (else the first one's) at ``now``."""
        terminal, zone = self.symbol_zones.get(symbol or "", ("", None))
        if not terminal and self.symbol_zones:
            terminal, zone = next(iter(self.symbol_zones.values()))
        return server_clock_text(zone, self.now, terminal)

    @property
    def streaming(self) -> int:
        return sum(w.state is WorkerState.STREAMING for w in self.workers)

    @property
    def backfill_running(self) -> tuple[BackfillProgress, ...]:
        return tuple(j for j in self.backfill if j.active)

    def terminal_of(self, symbol: str) -> str | None:
        return next((t for t, syms in self.terminals.items() if symbol in syms), None)


def profile_digits(symbol: str, config: ClientConfig) -> int | None:
    """The digits of ``symbol`` when a simulated terminal captures it and knows it.

    A real MT5 terminal's broker may quote the same name with other digits, so the
    simulated profiles are only trusted for simulated terminals.
    """
    for term in config.terminals:
        if symbol in term.symbols:
            profile = DEFAULT_PROFILES.get(symbol)
            if term.kind == "simulated" and profile is not None:
                return profile.digits
            return None
    return None


class SnapshotBuilder:
    """Builds :class:`SessionSnapshot` s for one session; keeps what is rebuilt only when
    the monitor ticks (its metrics dict is replaced then: one identity check a frame)."""

    def __init__(self) -> None:
        self._frame = 0
        self._monitor_key: tuple[object, int, int] | None = None
        self._monitor_view: MonitorView | None = None
        self._version = 0
        self._known_alerts: dict[str, None] = {}
        self._engine: object = None

    def build(
        self,
        *,
        now: float,
        state: SessionState,
        error: str,
        run: int,
        terminals: Mapping[str, tuple[str, ...]],
        runtime: Runtime | None,
        history: SeriesHistory,
        history_version: int,
    ) -> SessionSnapshot:
        self._frame += 1
        captured = tuple(dict.fromkeys(s for syms in terminals.values() for s in syms))
        base: dict[str, Any] = {
            "frame": self._frame,
            "now": now,
            "state": state,
            "error": error,
            "run": run,
            "captured": captured,
            "terminals": MappingProxyType(dict(terminals)),
        }
        if runtime is None:
            self._monitor_key = self._monitor_view = None
            return SessionSnapshot(
                **base,
                running=False,
                quotes=MappingProxyType({}),
                workers=(),
                link=None,
                backend_problem=None,
                embedded_backend=False,
                backfill=(),
                monitor=None,
                monitoring=False,
                ticks_total=0,
                symbol_zones=MappingProxyType({}),
            )
        monitor_view = self._monitor(runtime, history, history_version)
        metrics = monitor_view.metrics if monitor_view is not None else {}
        stats = runtime.collector.stats
        closed = runtime.market_hours.closed(now)
        zones, day = runtime.zones, runtime.day_stats
        quotes: dict[str, QuoteRow] = {}
        symbol_zones: dict[str, tuple[str, ServerTimeZone | None]] = {}
        for symbol in captured:
            zone = zones.zone(symbol)
            symbol_zones[symbol] = (zones.terminal_of(symbol) or "", zone)
            s = stats.symbols.get(symbol)
            tps = metrics.get(f"tps.symbol.{symbol}")
            quotes[symbol] = QuoteRow(
                symbol,
                s.ticks if s is not None else 0,
                s.last_time_msc if s is not None else 0,
                s.last_bid if s is not None else 0.0,
                s.last_ask if s is not None else 0.0,
                day.figures(symbol) if s is not None else None,
                zone,
                float(tps) if isinstance(tps, int | float) and not isinstance(tps, bool) else None,
                symbol in closed,
            )
        error_obj = runtime.embedded_error
        return SessionSnapshot(
            **base,
            running=True,
            quotes=MappingProxyType(quotes),
            workers=tuple(runtime.pool.health()),
            link=runtime.link.state if runtime.link is not None else None,
            backend_problem=(error_obj.short, str(error_obj)) if error_obj is not None else None,
            embedded_backend=runtime.embedded is not None,
            backfill=tuple(runtime.backfill.progress()),
            monitor=monitor_view,
            monitoring=runtime.monitor is not None,
            ticks_total=stats.ticks_total,
            symbol_zones=MappingProxyType(symbol_zones),
        )

    def _monitor(
        self, runtime: Runtime, history: SeriesHistory, history_version: int
    ) -> MonitorView | None:
        monitor = runtime.monitor
        if monitor is None:
            self._monitor_key = self._monitor_view = None
            return None
        engine = monitor.alerts
        key = (monitor.metrics, engine.unacknowledged_count(), history_version)
        if (
            self._monitor_view is not None
            and self._monitor_key is not None
            and key[0] is self._monitor_key[0]
            and key[1:] == self._monitor_key[1:]
            and engine is self._engine
        ):
            return self._monitor_view
        if engine is not self._engine:
            self._engine = engine
            self._known_alerts = {}
        metrics_changed = self._monitor_key is None or key[0] is not self._monitor_key[0]
        self._monitor_key = key
        self._version += 1
        # Every alert the engine can name: the active ones and those in its history,
        # in the order they were first seen (a resolved one stays listed).
        for alert in engine.active():
            self._known_alerts.setdefault(alert.id, None)
        for event in reversed(engine.history()):
            self._known_alerts.setdefault(event.alert.id, None)
        alerts = tuple(a for a in map(engine.get, self._known_alerts) if a is not None)
        previous = self._monitor_view
        if metrics_changed or previous is None:
            series = _series_view(history, self._version)
        else:
            series = previous.series
        self._monitor_view = MonitorView(
            self._version,
            MappingProxyType(monitor.metrics),
            alerts,
            key[1],
            MappingProxyType({r.name: r for r in engine.rules}),
            series,
        )
        return self._monitor_view


def _series_view(history: SeriesHistory, version: int) -> SeriesView:
    names = [TOTAL_SERIES, *LATENCY_SERIES_NAMES]
    names += [n for n in history.names() if n.startswith(WORKER_PREFIX)]
    out: dict[str, tuple[FloatArray, FloatArray]] = {}
    for name in names:
        if name not in history:
            continue
        times, values = history.series(name)
        times.flags.writeable = False
        values.flags.writeable = False
        out[name] = (times, values)
    return SeriesView(version, MappingProxyType(out))


__all__ = [
    "LATENCY_SERIES_NAMES",
    "TOTAL_SERIES",
    "WORKER_PREFIX",
    "Alert",
    "AlertState",
    "BackfillProgress",
    "BackfillState",
    "Comparison",
    "DayFigures",
    "LinkState",
    "MetricValue",
    "MonitorView",
    "QuoteRow",
    "Rule",
    "SeriesView",
    "ServerClockText",
    "SessionSnapshot",
    "SessionState",
    "Severity",
    "SnapshotBuilder",
    "ThresholdRule",
    "WorkerHealth",
    "WorkerState",
    "profile_digits",
]
