"""Journal panel: log lines from anywhere in the process appear, filter, copy and clear."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.journal import install_journal
from app.session import DesktopSession
from tests.conftest import wait_until
from ui.panels.journal import COL_LEVEL, COL_MESSAGE, COL_SOURCE, JournalPanel
from ui.tasks import TaskRunner

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/ui-shots")


@pytest.fixture
def journal_installed(session: DesktopSession) -> Iterator[DesktopSession]:
    """The journal on the root logger at INFO, as the window sets it up; undone after."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    install_journal(session.journal)
    try:
        yield session
    finally:
        root.removeHandler(session.journal)
        root.setLevel(level)


def save_shot(widget: object, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert widget.grab().save(str(path))  # type: ignore[attr-defined]
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def rows(panel: JournalPanel) -> list[tuple[str, str, str]]:
    p = panel.proxy
    return [
        (
            str(p.index(r, COL_LEVEL).data()),
            str(p.index(r, COL_SOURCE).data()),
            str(p.index(r, COL_MESSAGE).data()),
        )
        for r in range(p.rowCount())
    ]


async def test_journal_panel_shows_filters_copies_and_clears(
    journal_installed: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    session = journal_installed
    panel = JournalPanel(session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(1000, 320)
    panel.show()
    qtbot.waitExposed(panel)

    # The running session logs on its own (worker restarts, the link...); ours is one more.
    assert session.runtime is not None
    session.restart_worker(1)  # logs "worker 1: reconnect requested" from app.session
    logging.getLogger("test.source").warning("hello journal")
    logging.getLogger("test.other").info("a quieter line")
    logging.getLogger("test.source").debug("below the root level: never recorded")

    def shown(message: str) -> bool:
        panel.refresh()
        return any(m == message for _, _, m in rows(panel))

    await wait_until(lambda: shown("hello journal"), 10, "the warning in the journal")
    assert ("WARNING", "test.source", "hello journal") in rows(panel)
    assert ("INFO", "test.other", "a quieter line") in rows(panel)
    assert ("INFO", "app.session", "worker 1: reconnect requested") in rows(panel)
    assert not any("never recorded" in m for _, _, m in rows(panel))
    warning = next(
        panel.proxy.index(r, COL_LEVEL)
        for r in range(panel.proxy.rowCount())
        if panel.proxy.index(r, COL_MESSAGE).data() == "hello journal"
    )
    assert warning.data(Qt.ItemDataRole.ForegroundRole) == panel.theme.color("warn")
    # Following the end: the newest line is in view.
    bar = panel.view.verticalScrollBar()
    assert bar.value() == bar.maximum()

    logging.getLogger("test.source").error("an error line")
    await wait_until(lambda: shown("an error line"), 10, "the error line")
    save_shot(panel, tmp_path, "journal")

    # Minimum level ERROR hides the warning and the info lines.
    panel.level_combo.setFocus()
    qtbot.keyClick(panel.level_combo, Qt.Key.Key_Down)  # Info -> Warning
    qtbot.keyClick(panel.level_combo, Qt.Key.Key_Down)  # Warning -> Error
    assert panel.level_combo.currentText() == "Error"
    assert not shown("hello journal")
    assert shown("an error line")
    assert all(level in ("ERROR", "CRITICAL") for level, _, _ in rows(panel))
    qtbot.keyClick(panel.level_combo, Qt.Key.Key_Up)
    qtbot.keyClick(panel.level_combo, Qt.Key.Key_Up)
    assert panel.level_combo.currentText() == "Info"

    # Source filter: a substring of the logger name.
    qtbot.keyClicks(panel.source_combo.lineEdit(), "test.sou")
    assert {source for _, source, _ in rows(panel)} == {"test.source"}
    assert shown("hello journal")
    assert not shown("a quieter line")
    # A new source arriving meanwhile joins the list without touching the typed text.
    logging.getLogger("test.newcomer").warning("from elsewhere")
    await wait_until(
        lambda: (panel.refresh(), panel.source_combo.findText("test.newcomer") > 0)[1],
        10,
        "the new source in the list",
    )
    assert panel.source_combo.currentText() == "test.sou"
    assert not shown("from elsewhere")
    sources = [panel.source_combo.itemText(i) for i in range(panel.source_combo.count())]
    assert sources[0] == ""
    assert sources[1:] == sorted(sources[1:])
    assert {"test.source", "test.other", "app.session"} <= set(sources)
    panel.source_combo.lineEdit().clear()
    # Text filter on the message.
    qtbot.keyClicks(panel.text_edit, "QUIETER")
    assert [m for _, _, m in rows(panel)] == ["a quieter line"]
    panel.text_edit.clear()
    assert shown("worker 1: reconnect requested")

    # Select the warning row and press Ctrl+C: the clipboard holds the line as text.
    row = next(r for r in range(panel.proxy.rowCount()) if rows(panel)[r][2] == "hello journal")
    rect = panel.view.visualRect(panel.proxy.index(row, COL_MESSAGE))
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    copied = QApplication.clipboard().text()
    assert copied.endswith("\tWARNING\ttest.source\thello journal")
    assert "\n" not in copied

    # Clear empties the view; new lines still arrive after it.
    qtbot.mouseClick(panel.toolbar.widgetForAction(panel.clear_action), Qt.MouseButton.LeftButton)
    assert panel.proxy.rowCount() == 0
    panel.refresh()
    assert not shown("hello journal")
    logging.getLogger("test.source").warning("after the clear")
    await wait_until(lambda: shown("after the clear"), 10, "a line after the clear")
    assert not shown("hello journal")
