"""The window's status bar: one label per key (link, pool, rate, clock…), a progress bar,
and the HALT control (always visible: the kill switch of automatic trading).

:meth:`StatusBar.show_snapshot` turns each frame's snapshot into the labels' texts and
colours; a label's text changes only when its value does (the frame rate is 33 Hz).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar, QPushButton, QWidget

from app.session import SessionSnapshot, SessionState
from app.session_view import BackfillProgress, LinkState, WorkerState
from app.trading.view import RiskState, RiskStatus
from ui.theme import Theme

#: Theme colour of each trading state.
RISK_COLOUR: dict[RiskState, str] = {
    RiskState.ACTIVE: "ok",
    RiskState.REDUCING: "warn",
    RiskState.HALTED: "bad",
}


class HaltButton(QPushButton):
    """Shows the risk engine's state; a click halts (or, when halted, offers to resume:
    the window asks first). Flat, in the state's colour, so it reads as a status."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("trading –", parent)
        self.setObjectName("haltButton")
        self.setFlat(True)
        self.state: RiskState | None = None
        self._shown: object = None

    def show_status(self, status: RiskStatus | None, theme: Theme) -> None:
        key = (status, theme.name)
        if key == self._shown:
            return
        self._shown = key
        self.state = status.state if status is not None else None
        if status is None:
            self.setText("trading off")
            self.setStyleSheet(f"color: {theme.muted};")
            self.setToolTip("Trading is not running (capture stopped or trading disabled)")
            self.setEnabled(False)
            return
        self.setEnabled(True)
        colour = getattr(theme, RISK_COLOUR[status.state])
        if status.state is RiskState.HALTED:
            self.setText("■ HALTED")
            tip = f"Automatic trading is halted: {status.reason or 'no reason given'}"
            tip += "\nClick to resume (asks first)"
        else:
            label = "ACTIVE" if status.state is RiskState.ACTIVE else "REDUCING"
            self.setText(f"● {label} · HALT")
            tip = (
                "Trading is active"
                if status.state is RiskState.ACTIVE
                else f"Only orders that reduce exposure: {status.reason}"
            )
            tip += "\nClick or Ctrl+Shift+H: halt all automatic trading at once"
        self.setStyleSheet(f"color: {colour}; font-weight: bold; padding: 0 8px;")
        self.setToolTip(tip)


class StatusBar:
    """Permanent labels: capture state, link, pool health, TPS, p99, alerts."""

    def __init__(self, window: QMainWindow) -> None:
        bar = window.statusBar()
        self.labels: dict[str, QLabel] = {}
        tips = {
            "server": "The trade server's clock of the symbol in the Tick Chart",
            "session": "Capture state",
            "link": "Data bridge connection: acknowledged ticks and unacknowledged backlog",
            "pool": "Terminal connections streaming / total",
            "tps": "Ticks captured per second (last second)",
            "p99": "99th percentile latency from tick time to the collector (last second)",
            "alerts": "Unacknowledged alerts (Alt+5 shows the Alerts panel)",
        }
        self.backfill = QProgressBar(bar)
        self.backfill.setObjectName("status_backfill")
        self.backfill.setRange(0, 1000)
        self.backfill.setMaximumWidth(220)
        self.backfill.setToolTip(
            "History missed since the last run, being fetched from the terminal "
            "(Ctrl+Shift+B cancels; live capture is not held up)"
        )
        self.backfill.hide()
        bar.addPermanentWidget(self.backfill)
        for key, tip in tips.items():
            label = QLabel(parent=bar)
            label.setObjectName(f"status_{key}")
            label.setToolTip(tip)
            label.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(label)
            self.labels[key] = label
        self._texts: dict[str, str] = {}
        self._tips = tips
        self.halt = HaltButton(bar)
        bar.addPermanentWidget(self.halt)

    def set(self, key: str, text: str, color: str | None = None, tip: str | None = None) -> None:
        """Show ``text``; ``tip`` replaces the label's tooltip (None: the usual one)."""
        value = f"{text}|{color}|{tip}"
        if self._texts.get(key) == value:
            return
        self._texts[key] = value
        label = self.labels[key]
        label.setText(text)
        label.setStyleSheet(f"color: {color};" if color else "")
        label.setToolTip(tip if tip is not None else self._tips[key])

    def text(self, key: str) -> str:
        return self.labels[key].text()

    # ------------------------------------------------------------------ per frame
    def show_snapshot(self, snap: SessionSnapshot, t: Theme, symbol: str | None) -> bool:
        """Every label from one frame's snapshot (``symbol``: the chart's, for the server
        clock); True while a history backfill runs (its cancel action is enabled)."""
        state = snap.state
        if state is SessionState.FAILED:
            self.set("session", f"capture failed: {snap.error}", t.bad)
        elif state is not SessionState.RUNNING:
            self.set("session", f"capture {state.value}…", t.warn)
        else:
            self.set("session", "capturing", t.ok)
        if not snap.running:
            for key in ("server", "link", "pool", "tps", "p99", "alerts"):
                self.set(key, "")
            return self.show_backfill(())
        if snap.link is None:
            self.set("link", "no backend", t.muted)
        else:
            self.show_link(snap.link, snap.backend_problem, t)
        clock = snap.clock(symbol)
        self.set("server", clock.text, None, clock.tooltip)
        workers = snap.workers
        streaming = snap.streaming
        failed = sum(w.state is WorkerState.FAILED for w in workers)
        offline = sum(w.state is WorkerState.OFFLINE for w in workers)
        color = t.ok if streaming == len(workers) else t.bad if failed else t.warn
        text = f"pool {streaming}/{len(workers)} streaming"
        self.set("pool", text + (f", {offline} terminal offline" if offline else ""), color)
        view = snap.monitor
        if view is not None:
            tps = view.number("tps.total")
            self.set("tps", f"{tps:,.0f} ticks/s" if tps is not None else "– ticks/s")
            p99 = view.number("latency.tick_to_collector.p99")
            self.set("p99", f"p99 {p99 * 1000:.1f} ms" if p99 is not None else "p99 –")
            unacked = view.unacknowledged
            self.set(
                "alerts",
                f"⚠ {unacked} alerts" if unacked else "no alerts",
                t.bad if unacked else t.muted,
            )
        return self.show_backfill(snap.backfill)

    def show_link(self, link: LinkState, problem: tuple[str, str] | None, t: Theme) -> None:
        """The link label says the cause, not only "down": the tooltip has the whole text."""
        backlog = f"backlog {link.backlog_ticks:,}"
        if link.halted:
            self.set("link", f"link HALTED · {backlog}", t.bad, link.halted)
        elif link.spool_disk_error:
            text = f"spool disk full · capture held · {backlog}"
            self.set("link", text, t.bad, link.spool_disk_error)
        elif link.connected:
            held = " · capture held" if link.intake_paused else ""
            self.set("link", f"link up · {backlog}{held}", t.warn if held else t.ok)
        elif problem is not None:
            # The cause, not only "down": the embedded backend did not start.
            self.set("link", f"link DOWN · {problem[0]} · {backlog}", t.bad, problem[1])
        else:
            self.set("link", f"link DOWN · {backlog}", t.bad, link.last_error or None)

    def show_backfill(self, jobs: Sequence[BackfillProgress]) -> bool:
        """The backfill progress bar (hidden when none runs); True while one runs."""
        bar = self.backfill
        if not any(j.active for j in jobs):
            bar.setVisible(False)
            return False
        fraction = sum(j.fraction for j in jobs) / len(jobs)
        ticks = sum(j.ticks for j in jobs)
        bar.setValue(int(1000 * fraction))
        bar.setFormat(f"backfill {fraction:.0%} · {ticks:,} ticks")
        bar.setVisible(True)
        return True
