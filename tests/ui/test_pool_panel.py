"""Connection pool panel against real worker processes: kill one, disable, enable."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from app.connector.health import WorkerHealth
from app.session import DesktopSession
from tests.conftest import wait_until
from ui.panels.pool import COL_RECONNECTS, COL_STATE, COL_WORKER, PoolPanel
from ui.tasks import TaskRunner

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/ui-shots")


def save_shot(widget: object, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert widget.grab().save(str(path))  # type: ignore[attr-defined]
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def view_index(panel: PoolPanel, worker_id: int, column: int) -> QModelIndex:
    """The cell of ``worker_id`` as the (sorted) view shows it."""
    for row in range(panel.proxy.rowCount()):
        if panel.proxy.index(row, COL_WORKER).data() == str(worker_id):
            return panel.proxy.index(row, column)
    raise AssertionError(f"no row for worker {worker_id}")


def cell(panel: PoolPanel, worker_id: int, column: int) -> str:
    panel.poll()
    return str(view_index(panel, worker_id, column).data())


def health(session: DesktopSession, worker_id: int) -> WorkerHealth:
    assert session.runtime is not None
    return next(h for h in session.runtime.pool.health() if h.worker_id == worker_id)


def click_row(qtbot: QtBot, panel: PoolPanel, worker_id: int) -> None:
    rect = panel.view.visualRect(view_index(panel, worker_id, COL_WORKER))
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


async def test_pool_panel_follows_and_drives_the_workers(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    panel = PoolPanel(session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(1000, 260)
    panel.show()
    qtbot.waitExposed(panel)

    def all_streaming() -> bool:
        panel.poll()
        states = [panel.proxy.index(r, COL_STATE).data() for r in range(panel.proxy.rowCount())]
        return len(states) == 5 and all(s == "streaming" for s in states)

    await wait_until(all_streaming, 60, "five streaming rows")
    ok = panel.theme.color("ok")
    assert view_index(panel, 1, COL_STATE).data(Qt.ItemDataRole.ForegroundRole) == ok
    assert "5/5 streaming" in panel.summary.text()
    # Nothing selected: no action applies.
    assert not panel.reconnect_action.isEnabled()
    assert not panel.disable_action.isEnabled()
    assert not panel.enable_action.isEnabled()
    # The context menu offers the same actions as the toolbar.
    assert panel.view.contextMenuPolicy() is Qt.ContextMenuPolicy.ActionsContextMenu
    assert set(panel.view.actions()) >= {
        panel.reconnect_action,
        panel.disable_action,
        panel.enable_action,
    }

    # A worker process dies: its row goes to backing off / connecting, then streams again.
    pid = health(session, 2).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    seen: dict[str, object] = {}

    def recovering() -> bool:
        state = cell(panel, 2, COL_STATE)
        if state in ("backing off", "connecting"):
            seen[state] = view_index(panel, 2, COL_STATE).data(Qt.ItemDataRole.ForegroundRole)
        return bool(seen)

    await wait_until(recovering, 30, "worker 2 to back off or reconnect")
    warn = panel.theme.color("warn")
    assert all(colour == warn for colour in seen.values()), seen
    await wait_until(lambda: cell(panel, 2, COL_STATE) == "streaming", 60, "worker 2 back")
    assert cell(panel, 2, COL_RECONNECTS) == "1"
    assert health(session, 2).pid not in (None, pid)

    # Select worker 3 and click Disable: the supervisor stops it and the row says so.
    click_row(qtbot, panel, 3)
    assert [h.worker_id for h in panel.selected_workers()] == [3]
    assert panel.disable_action.isEnabled()
    assert not panel.enable_action.isEnabled()
    disable_button = panel.toolbar.widgetForAction(panel.disable_action)
    qtbot.mouseClick(disable_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: cell(panel, 3, COL_STATE) == "stopped", 30, "worker 3 stopped")
    muted = panel.theme.color("muted")
    assert view_index(panel, 3, COL_STATE).data(Qt.ItemDataRole.ForegroundRole) == muted
    assert not health(session, 3).enabled
    assert panel.enable_action.isEnabled()
    assert not panel.disable_action.isEnabled()
    assert "4/5 streaming" in panel.summary.text()
    save_shot(panel, tmp_path, "pool")

    # Enable brings it back.
    qtbot.mouseClick(panel.toolbar.widgetForAction(panel.enable_action), Qt.MouseButton.LeftButton)
    await wait_until(lambda: cell(panel, 3, COL_STATE) == "streaming", 60, "worker 3 again")
    assert health(session, 3).enabled

    # Ctrl+Shift+R on a selected row restarts that worker's process at once.
    click_row(qtbot, panel, 4)
    old_pid = health(session, 4).pid
    panel.view.setFocus()
    panel.activateWindow()
    qtbot.keyClick(
        panel.view,
        Qt.Key.Key_R,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    await wait_until(
        lambda: (
            health(session, 4).pid not in (None, old_pid)
            and cell(panel, 4, COL_STATE) == "streaming"
        ),
        60,
        "worker 4 restarted by the shortcut",
    )
