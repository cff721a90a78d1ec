"""Connection Pool panel: a terminal that lost its trade server shows as "offline".

A real worker process on the simulated terminal; the terminal goes offline through its
control file (the IPC keeps working), then comes back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.connector.health import WorkerState
from app.session import DesktopSession
from app.terminal.simulated import FaultMode, write_fault
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from ui.panels.pool import COL_ERROR, COL_STATE, STATE_COLOURS, PoolPanel
from ui.tasks import TaskRunner

pytestmark = pytest.mark.slow


@pytest.fixture
async def one_worker(tmp_path: Path) -> AsyncIterator[DesktopSession]:
    """One worker, no backend: only the pool matters here."""
    doc = ui_config_document(tmp_path, pool={"size": 1})
    doc["terminals"][0]["symbols"] = ["EURUSD"]
    doc["backend"]["enabled"] = False
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(doc))
    session = DesktopSession(store)
    await session.start()
    try:
        yield session
    finally:
        await session.stop()


async def test_offline_terminal_row(
    one_worker: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    control = tmp_path / "terminal-control.json"
    panel = PoolPanel(one_worker, TaskRunner())
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)

    def state() -> str:
        panel.poll()
        return str(panel.proxy.index(0, COL_STATE).data())

    await wait_until(lambda: state() == "streaming", 60, "streaming")
    write_fault(control, FaultMode.OFFLINE)
    await wait_until(lambda: state() == "offline", 15, "the offline row")
    cell = panel.proxy.index(0, COL_STATE)
    assert STATE_COLOURS[WorkerState.OFFLINE] == "offline"
    colour = cell.data(Qt.ItemDataRole.ForegroundRole)
    assert colour == panel.theme.color("offline")
    assert colour not in (panel.theme.color(c) for c in ("ok", "warn", "bad", "muted"))
    tip = str(cell.data(Qt.ItemDataRole.ToolTipRole))
    assert tip.startswith("offline: Terminal offline")
    assert "trade server" in tip
    assert "offline" in str(panel.proxy.index(0, COL_ERROR).data())
    assert "1 terminal offline" in panel.summary.text()

    write_fault(control, FaultMode.OK)
    await wait_until(lambda: state() == "streaming", 15, "streaming again")
    assert panel.proxy.index(0, COL_STATE).data(Qt.ItemDataRole.ForegroundRole) == (
        panel.theme.color("ok")
    )
    assert "offline" not in panel.summary.text()
    assert panel.proxy.index(0, COL_ERROR).data() == ""
