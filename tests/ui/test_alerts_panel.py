"""Alerts panel against a running session: the bridge goes down, the alert is listed,
acknowledged, filtered and, once the bridge is back, cleared from the view."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.monitor.alerts import AlertEngine, default_rules, rule_to_dict
from app.session import DesktopSession
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from ui.panels.alerts import COL_MESSAGE, COL_SEVERITY, COL_STATE, AlertsPanel
from ui.tasks import TaskRunner

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/ui-shots")
LINK_DOWN = "link to the data bridge down"


def _always(name: str, metric: str, severity: str, message: str) -> dict[str, Any]:
    """A rule that holds from the first monitor tick (the metric is never negative)."""
    return {
        "kind": "threshold",
        "name": name,
        "metric": metric,
        "comparison": "above",
        "threshold": 0,
        "inclusive": True,
        "severity": severity,
        "message": message,
    }


@pytest.fixture
def ui_store(tmp_path: Path) -> ConfigStore:
    """The default rules plus three info alerts and one warning that are always raised,
    so every way of acknowledging has an alert of its own."""
    rules = [rule_to_dict(r) for r in default_rules()] + [
        _always("streaming_info", "pool.streaming", "info", "{value:.0f} workers streaming"),
        _always("reconnects_info", "pool.reconnects", "info", "{value:.0f} pool reconnects"),
        _always("queue_info", "queue.depth", "info", "queue holds {value:.0f} batches"),
        _always("backlog_warning", "link.backlog_ticks", "warning", "backlog {value:.0f} ticks"),
    ]
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    doc = ui_config_document(tmp_path, monitor={"rules": rules})
    store.save(ClientConfig.model_validate(doc))
    return store


def save_shot(widget: object, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert widget.grab().save(str(path))  # type: ignore[attr-defined]
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def find(panel: AlertsPanel, text: str, column: int = COL_MESSAGE) -> QModelIndex:
    for row in range(panel.proxy.rowCount()):
        if text in str(panel.proxy.index(row, COL_MESSAGE).data()):
            return panel.proxy.index(row, column)
    raise AssertionError(f"no row with {text!r}")


def shown_messages(panel: AlertsPanel) -> list[str]:
    return [str(panel.proxy.index(r, COL_MESSAGE).data()) for r in range(panel.proxy.rowCount())]


def click(
    qtbot: QtBot,
    panel: AlertsPanel,
    text: str,
    modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    rect = panel.view.visualRect(find(panel, text))
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


async def test_alerts_panel_lists_acknowledges_filters_and_clears(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    runtime = session.runtime
    assert runtime is not None
    assert runtime.monitor is not None
    assert runtime.embedded is not None
    engine: AlertEngine = runtime.monitor.alerts
    panel = AlertsPanel(session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(1000, 300)
    panel.show()
    qtbot.waitExposed(panel)
    titles: list[str] = []
    notes: list[tuple[str, str, str]] = []
    panel.title_changed.connect(titles.append)
    panel.notify.connect(lambda s, t, m: notes.append((s, t, m)))

    def rows() -> int:
        panel.refresh()
        return panel.proxy.rowCount()

    await wait_until(lambda: rows() == 4, 30, "the four always-on alerts")
    assert panel.dock_title() == "Alerts (4)"
    assert titles[-1] == "Alerts (4)"
    assert sorted(s for s, _, _ in notes) == ["info", "info", "info", "warning"]

    # The bridge goes away: after 3 s the link_down rule raises a critical alert.
    await runtime.embedded.stop()

    def listed(text: str) -> bool:
        panel.refresh()
        return any(text in m for m in shown_messages(panel))

    await wait_until(lambda: listed(LINK_DOWN), 30, "the link_down alert")
    severity = find(panel, LINK_DOWN, COL_SEVERITY)
    assert severity.data() == "Critical"
    assert severity.data(Qt.ItemDataRole.ForegroundRole) == panel.theme.color("bad")
    assert severity.data(Qt.ItemDataRole.DecorationRole) is not None
    assert find(panel, LINK_DOWN, COL_STATE).data() == "active"
    assert panel.dock_title() == "Alerts (5)"
    assert titles[-1] == "Alerts (5)"
    assert notes[-1] == ("critical", "Critical alert", engine.get("link_down").message)
    assert len(notes) == 5, "one notification per raised alert, not one per refresh"
    save_shot(panel, tmp_path, "alerts")

    # Select it and click Acknowledge: the engine records it and the count drops.
    click(qtbot, panel, LINK_DOWN)
    assert panel.ack_action.isEnabled()
    qtbot.mouseClick(panel.toolbar.widgetForAction(panel.ack_action), Qt.MouseButton.LeftButton)
    link_down = engine.get("link_down")
    assert link_down is not None
    assert link_down.acknowledged
    assert engine.unacknowledged_count() == 4
    assert panel.dock_title() == "Alerts (4)"
    assert titles[-1] == "Alerts (4)"
    assert find(panel, LINK_DOWN, COL_STATE).data() == "active · acknowledged"
    assert not panel.ack_action.isEnabled(), "nothing unacknowledged is selected"

    # Two rows at once (click, Ctrl+click), acknowledged with Ctrl+K.
    click(qtbot, panel, "workers streaming")
    click(qtbot, panel, "pool reconnects", Qt.KeyboardModifier.ControlModifier)
    assert len(panel.selected_alerts()) == 2
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert engine.get("streaming_info").acknowledged  # type: ignore[union-attr]
    assert engine.get("reconnects_info").acknowledged  # type: ignore[union-attr]
    assert panel.dock_title() == "Alerts (2)"

    # Severity filter: only the info rows; "Acknowledge all" takes what is shown only.
    panel.severity_combo.setFocus()
    qtbot.keyClick(panel.severity_combo, Qt.Key.Key_End)  # the last choice: Info
    assert panel.severity_combo.currentText() == "Info"
    assert len(shown_messages(panel)) == 3
    assert not any(LINK_DOWN in m for m in shown_messages(panel))
    qtbot.mouseClick(panel.toolbar.widgetForAction(panel.ack_all_action), Qt.MouseButton.LeftButton)
    assert engine.get("queue_info").acknowledged  # type: ignore[union-attr]
    assert not engine.get("backlog_warning").acknowledged  # type: ignore[union-attr]
    assert panel.dock_title() == "Alerts (1)"
    assert not panel.ack_all_action.isEnabled()
    qtbot.keyClick(panel.severity_combo, Qt.Key.Key_Home)  # back to all severities
    assert panel.severity_combo.currentText() == "All severities"
    assert len(shown_messages(panel)) == 5

    # Text filter on the message.
    qtbot.keyClicks(panel.filter_edit, "bridge")
    assert shown_messages(panel) == [engine.get("link_down").message]  # type: ignore[union-attr]
    qtbot.keyClicks(panel.filter_edit, " nothing like this")
    assert shown_messages(panel) == []
    panel.filter_edit.selectAll()
    qtbot.keyClick(panel.filter_edit, Qt.Key.Key_Backspace)
    assert len(shown_messages(panel)) == 5

    # Space on the list acknowledges the last one; the title loses its count.
    click(qtbot, panel, "backlog")
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key.Key_Space)
    assert engine.unacknowledged_count() == 0
    assert panel.dock_title() == "Alerts"
    assert titles[-1] == "Alerts"

    # The bridge comes back: link_down resolves; "Clear resolved" hides it from the view
    # while the engine's history keeps it.
    await runtime.embedded.start()

    def resolved() -> bool:
        panel.refresh()
        return find(panel, LINK_DOWN, COL_STATE).data() == "resolved · acknowledged"

    await wait_until(resolved, 30, "link_down to resolve")
    state = find(panel, LINK_DOWN, COL_STATE)
    assert state.data() == "resolved · acknowledged"
    assert state.data(Qt.ItemDataRole.ForegroundRole) == panel.theme.color("muted")
    assert panel.clear_action.isEnabled()
    qtbot.mouseClick(panel.toolbar.widgetForAction(panel.clear_action), Qt.MouseButton.LeftButton)
    assert not any(LINK_DOWN in m for m in shown_messages(panel))
    assert len(shown_messages(panel)) == 4
    assert any(e.alert.id == "link_down" for e in engine.history())
    assert len(notes) == 5
