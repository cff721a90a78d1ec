"""File → Export: the cached ticks or bars of one symbol to an MT5 export file (or CSV,
Parquet), with progress and cancel. The writing happens in the session (a worker
thread); the dialog only collects the choice and shows how far it got."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.session import EXPORT_TIMEFRAMES as TIMEFRAMES
from app.session import DesktopSession, ExportCancelledError, ExportProgress
from ui.dialogs import palette_theme, set_message
from ui.tasks import TaskRunner

KINDS = ["Ticks", *TIMEFRAMES]
FORMATS = {
    "mt5": "MT5 export (tab-separated, reads back in MT5 and here)",
    "csv": "CSV (comma-separated, one header row)",
    "parquet": "Parquet (needs pyarrow)",
}


class ExportDialog(QDialog):
    def __init__(
        self,
        session: DesktopSession,
        tasks: TaskRunner,
        parent: QWidget | None = None,
        symbol: str | None = None,
    ) -> None:
        """``symbol``: the one the trader is looking at (the chart's), chosen first."""
        super().__init__(parent)
        self.session = session
        self.tasks = tasks
        self.setWindowTitle("Export ticks or bars")
        self.setMinimumWidth(520)
        self._stop = threading.Event()
        self._latest: ExportProgress | None = None
        self._running = False

        self.symbol = QComboBox()
        self.symbol.setToolTip("Symbol whose cached ticks are exported")
        for term in session.config.terminals:
            self.symbol.addItems(term.symbols)
        if symbol and self.symbol.findText(symbol) >= 0:
            self.symbol.setCurrentText(symbol)
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.kind.setToolTip("Every tick, or bars of a timeframe built from the cached ticks")
        self.fmt = QComboBox()
        for key, text in FORMATS.items():
            self.fmt.addItem(text, key)
        self.fmt.setToolTip("File format")
        self.path = QLineEdit()
        self.path.setPlaceholderText("file to write…")
        self.path.setToolTip("Where the file is written (an existing file is replaced)")
        browse = QPushButton("…")
        browse.setToolTip("Choose the file")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)

        form = QFormLayout()
        form.addRow("&Symbol", self.symbol)
        form.addRow("&What", self.kind)
        form.addRow("&Format", self.fmt)
        form.addRow("File", path_row)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()

        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton(
            "&Export", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.export_button.setToolTip("Write the file (Ctrl+Enter)")
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setToolTip("Stop a running export, or close (Esc)")
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.start)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

        # Progress arrives from the writer's thread: it only stores the latest state,
        # and this timer shows it (no signal per chunk).
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self._show_progress)
        self._suggest_path()
        self.kind.currentTextChanged.connect(self._suggest_path)
        self.symbol.currentTextChanged.connect(self._suggest_path)
        self.fmt.currentIndexChanged.connect(self._suggest_path)

    def _suggest_path(self) -> None:
        if self.path.isModified():
            return
        kind = self.kind.currentText()
        ext = {"mt5": "csv", "csv": "csv", "parquet": "parquet"}[self.fmt.currentData()]
        name = f"{self.symbol.currentText()}_{'ticks' if kind == 'Ticks' else kind}.{ext}"
        self.path.setText(str(Path.home() / name))

    def _browse(self) -> None:
        dialog = QFileDialog(self, "Export to", self.path.text())
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(self._chosen)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _chosen(self, path: str) -> None:
        self.path.setText(path)
        self.path.setModified(True)

    def _on_progress(self, state: ExportProgress) -> bool:
        self._latest = state
        return not self._stop.is_set()

    def _show_progress(self) -> None:
        state = self._latest
        if state is None:
            return
        self.progress.setValue(int(1000 * state.fraction))
        self.progress.setFormat(_rows(state.rows))

    def start(self) -> None:
        if self._running:
            return
        text = self.path.text().strip()
        if not text:
            set_message(self.message, "Choose a file to write.", palette_theme().bad)
            return
        self._running = True
        self._stop.clear()
        self._latest = None
        self.export_button.setEnabled(False)
        self.cancel_button.setText("&Cancel")
        set_message(self.message, "Exporting…", palette_theme().muted)
        self._timer.start()
        kind = self.kind.currentText()
        self.tasks.run(
            self.session.export_cached(
                self.symbol.currentText(),
                Path(text),
                timeframe=None if kind == "Ticks" else kind,
                fmt=self.fmt.currentData(),
                progress=self._on_progress,
            ),
            "export",
            on_done=self._done,
            on_error=self._failed,
        )

    def _finish(self) -> None:
        self._running = False
        self._timer.stop()
        self._show_progress()
        self.export_button.setEnabled(True)
        self.cancel_button.setText("Close")

    def _done(self, rows: int) -> None:
        self._finish()
        self.progress.setValue(1000)
        self.progress.setFormat(_rows(rows))
        set_message(self.message, f"Wrote {_rows(rows)} to {self.path.text()}", palette_theme().ok)

    def _failed(self, exc: BaseException) -> None:
        self._finish()
        if isinstance(exc, ExportCancelledError):
            set_message(self.message, "Cancelled; the partial file was removed.", None)
        else:
            set_message(self.message, f"Export failed: {exc}", palette_theme().bad)

    def _cancel_or_close(self) -> None:
        if self._running:
            self._stop.set()
        else:
            self.reject()


def _rows(n: int) -> str:
    """ "1 row", "2,000 rows"."""
    return f"{n:,} row" + ("" if n == 1 else "s")
