"""The window's status bar: one label per key (link, pool, rate, clock…), a progress bar."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar


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
