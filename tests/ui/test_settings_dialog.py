"""The settings dialog against a real running session: inline problems from the core's
validation, Apply saving the file and restarting capture, OK/Esc, and a gateway sync
whose conflict is shown side by side and settled by taking the gateway's settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QLabel, QWidget
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.connector.health import WorkerState
from app.link.gateway import GatewayClient
from app.runtime import Runtime
from app.security.secret import Secret
from app.session import DesktopSession
from tests.conftest import wait_until
from tests.server.conftest import add_user
from tests.ui.conftest import ui_config_document
from ui.dialogs.master_password import MasterPasswordDialog
from ui.dialogs.schema_form import FieldEditor
from ui.dialogs.settings import SettingsDialog
from ui.dialogs.sync_conflict import EndpointChangeDialog
from ui.tasks import TaskRunner
from ui.theme import DARK, apply_theme

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/ui-shots")
MASTER = "master-pass-123"


def shot(widget: QWidget, tmp_path: Path, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    image = widget.grab()
    assert image.save(str(tmp_path / f"{name}.png"))
    assert image.save(str(SHOTS / f"{name}.png"))
    return SHOTS / f"{name}.png"


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[None]:
    """The window's default theme, for screenshots that look like the application."""
    palette, style = qapp.palette(), qapp.style().name()
    apply_theme(qapp, DARK)
    yield
    qapp.setPalette(palette)
    qapp.setStyle(style)


def open_dialog(session: DesktopSession, qtbot: QtBot) -> SettingsDialog:
    """The dialog over a stand-in main window, as the window opens it (closing a
    parentless dialog would be "the last window closed" and quit the loop)."""
    host = QWidget()
    qtbot.addWidget(host)
    host.show()
    dialog = SettingsDialog(session, TaskRunner(), host)
    dialog.host = host  # type: ignore[attr-defined]  # keeps the parent alive with it
    dialog.resize(900, 660)
    dialog.show()
    dialog.activateWindow()
    return dialog


async def activate(dialog: QDialog) -> None:
    """Make ``dialog`` the active window, as a click on it would (shortcuts need it)."""
    dialog.activateWindow()
    await wait_until(dialog.isActiveWindow, 5, "the dialog to be the active window")


def show_tab(qtbot: QtBot, dialog: SettingsDialog, key: str) -> None:
    """Click the section's tab, as a person would."""
    bar = dialog.form.tabBar()
    index = dialog.form.indexOf(dialog.form.section(key).page)
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    assert dialog.form.currentIndex() == index


def retype(qtbot: QtBot, editor: FieldEditor, text: str) -> None:
    """Select all in the field and type over it."""
    qtbot.mouseClick(editor.input, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    qtbot.keyClick(editor.input, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(editor.input, text)


def streaming(session: DesktopSession, old: Runtime | None = None) -> bool:
    runtime = session.runtime
    return (
        runtime is not None
        and runtime is not old
        and session.state == "running"
        and all(h.state == WorkerState.STREAMING and h.ticks > 0 for h in runtime.pool.health())
    )


async def test_inline_problems_tooltips_apply_ok_and_cancel(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path, dark: None
) -> None:
    dialog = open_dialog(session, qtbot)
    form = dialog.form
    assert {"Terminals", "Pool", "Cache", "Monitor", "Security", "Backend"} <= {
        form.tabText(i) for i in range(form.count())
    }

    # Tooltips are the schema's descriptions, with default and range.
    size = form.editor("pool.size")
    assert "Number of terminal connections (worker processes)." in size.input.toolTip()
    assert "Default: 5" in size.input.toolTip()
    assert "Range: 1 … 64" in size.input.toolTip()
    ticks = form.editor("cache.ticks_per_symbol")
    assert "Ticks kept in memory per symbol (60 bytes each)." in ticks.input.toolTip()
    symbols = form.editor("terminals.0.symbols")
    assert "Symbols to capture from this terminal." in symbols.input.toolTip()
    assert (
        form.editor("backend.embedded")
        .input.toolTip()
        .startswith("Start the reference backend in-process")
    )
    assert dialog.ok_button.isEnabled()
    assert not dialog.apply_button.isEnabled()  # nothing changed yet

    # Sync without a gateway login configured: a clear sentence, no traceback. The
    # vault does not exist yet, so its master password is chosen (and confirmed).
    qtbot.mouseClick(dialog.sync_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: visible_master(dialog) is not None, 10, "the master password prompt")
    master = visible_master(dialog)
    assert master is not None
    assert master.confirm is not None
    qtbot.keyClicks(master.password.line, MASTER)
    qtbot.keyClicks(master.confirm, MASTER)
    qtbot.mouseClick(master.ok_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "Not synced" in dialog.status.text(), 30, "the sync outcome")
    assert "no API gateway login configured" in dialog.status.text()
    assert "Traceback" not in dialog.status.text()
    assert DARK.bad in dialog.status.styleSheet()

    # A path field's "…" opens a file dialog (not modal to the loop); cancelling changes
    # nothing.
    show_tab(qtbot, dialog, "backend")
    spool = form.editor("backend.spool_dir")
    before_text = spool.input.text()  # type: ignore[attr-defined]
    qtbot.mouseClick(spool.browse, Qt.MouseButton.LeftButton)  # type: ignore[attr-defined]
    await wait_until(
        lambda: any(d.isVisible() for d in spool.findChildren(QFileDialog)), 5, "file dialog"
    )
    chooser = next(d for d in spool.findChildren(QFileDialog) if d.isVisible())
    assert chooser.fileMode() == QFileDialog.FileMode.Directory
    chooser.reject()
    assert spool.input.text() == before_text  # type: ignore[attr-defined]

    # A problem inside a sub-form: the terminal's symbols.
    show_tab(qtbot, dialog, "terminals")
    original = symbols.input.text()  # type: ignore[attr-defined]
    retype(qtbot, symbols, "EURUSD, EURUSD")
    await wait_until(
        lambda: (
            "EURUSD is listed twice" in symbols.error_label.text()
            and symbols.error_label.isVisible()
        ),
        5,
        "the duplicate symbol to be flagged under the field",
    )
    assert form.tabText(0) == "Terminals (1)"
    assert not dialog.ok_button.isEnabled()
    retype(qtbot, symbols, original)
    await wait_until(lambda: not symbols.error_label.isVisible(), 5, "the problem to clear")

    # pool.size 0: the rule under the field and in the summary; OK and Apply disabled.
    show_tab(qtbot, dialog, "pool")
    retype(qtbot, size, "0")
    await wait_until(
        lambda: size.error_label.isVisible() and "below the minimum 1" in size.error_label.text(),
        5,
        "the inline problem under pool.size",
    )
    assert size.error_label.text() == "0 is below the minimum 1"
    assert not dialog.ok_button.isEnabled()
    assert not dialog.apply_button.isEnabled()
    assert dialog.summary.isVisible()
    assert "pool.size: 0 is below the minimum 1" in dialog.summary.text()
    assert form.tabText(form.currentIndex()) == "Pool (1)"
    shot(dialog, tmp_path, "settings-dialog-inline-error")

    # Ctrl+Enter does nothing while invalid.
    qtbot.keyClick(size.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert dialog.isVisible()

    # Fixed, and a real change elsewhere: Apply saves the file and restarts capture.
    retype(qtbot, size, "5")
    show_tab(qtbot, dialog, "monitor")
    interval = form.editor("monitor.interval_s")
    retype(qtbot, interval, "0.5")
    await wait_until(dialog.apply_button.isEnabled, 5, "Apply to be enabled")
    assert not size.error_label.isVisible()
    assert not dialog.summary.isVisible()
    old_runtime = session.runtime
    before = session.store.path.read_bytes()
    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    await wait_until(
        lambda: session.store.path.read_bytes() != before, 30, "the settings file to change"
    )
    assert json.loads(session.store.path.read_bytes())["monitor"]["interval_s"] == 0.5
    assert session.store.read().monitor.interval_s == 0.5
    await wait_until(lambda: streaming(session, old_runtime), 60, "capture to stream again")
    assert session.config.monitor.interval_s == 0.5
    await wait_until(lambda: "Saved to" in dialog.status.text(), 10, "the outcome line")
    assert "capture restarted" in dialog.status.text()
    assert not dialog.apply_button.isEnabled()  # applied: nothing left to apply

    # OK (Ctrl+Enter) applies and closes.
    show_tab(qtbot, dialog, "cache")
    retype(qtbot, ticks, "30000")
    await wait_until(dialog.apply_button.isEnabled, 5, "Apply to be enabled")
    old_runtime = session.runtime
    await activate(dialog)  # the file and password dialogs had the focus before
    qtbot.keyClick(ticks.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    await wait_until(lambda: not dialog.isVisible(), 60, "OK to apply and close the dialog")
    assert dialog.result() == QDialog.DialogCode.Accepted.value
    assert session.config.cache.ticks_per_symbol == 30000
    assert json.loads(session.store.path.read_bytes())["cache"]["ticks_per_symbol"] == 30000
    await wait_until(lambda: streaming(session, old_runtime), 60, "capture to stream again")

    # Esc discards: nothing saved, nothing restarted.
    dialog = open_dialog(session, qtbot)
    assert dialog.form.editor("cache.ticks_per_symbol").input.text() == "30000"  # type: ignore[attr-defined]
    bars = dialog.form.editor("cache.bar_history")
    show_tab(qtbot, dialog, "cache")
    retype(qtbot, bars, "999")
    before, runtime = session.store.path.read_bytes(), session.runtime
    qtbot.keyClick(bars.input, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert dialog.result() == QDialog.DialogCode.Rejected.value
    assert session.store.path.read_bytes() == before
    assert session.runtime is runtime
    assert session.config.cache.bar_history != 999


# --------------------------------------------------------------------------- sync
@pytest.fixture
async def gateway_session(tmp_path: Path) -> AsyncIterator[DesktopSession]:
    """A running session whose settings name a gateway login (a user of the embedded
    backend's users file: there is no default one) and whose vault holds its password."""
    doc = ui_config_document(tmp_path, backend={"gateway_username": "trader"})
    add_user(tmp_path / "backend.sqlite", admin=True)
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(doc))
    session = DesktopSession(store)
    session.set_master_password(Secret(MASTER))
    await session.store_credential("gateway/trader", Secret("trader"))
    session.set_master_password(None)  # as after a restart: the dialog has to ask
    await session.start()
    try:
        yield session
    finally:
        await session.stop()


def visible_master(parent: QWidget) -> MasterPasswordDialog | None:
    found = [d for d in parent.findChildren(MasterPasswordDialog) if d.isVisible()]
    return found[0] if found else None


async def test_sync_conflict_side_by_side_and_take_the_gateways(
    gateway_session: DesktopSession, qtbot: QtBot, tmp_path: Path, dark: None
) -> None:
    session = gateway_session
    dialog = open_dialog(session, qtbot)

    # First sync: the master password is asked, then the local settings are pushed.
    qtbot.mouseClick(dialog.sync_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: visible_master(dialog) is not None, 10, "the master password prompt")
    master = visible_master(dialog)
    assert master is not None
    assert master.confirm is None  # the vault exists: no confirmation field
    qtbot.keyClicks(master.password.line, MASTER)
    qtbot.mouseClick(master.ok_button, Qt.MouseButton.LeftButton)
    await wait_until(
        lambda: "stored at the gateway" in dialog.status.text(), 30, "the push to the gateway"
    )
    assert not session.needs_master_password()

    # Another desk changes the gateway's copy; this machine changes its own (through Apply).
    client_id = session.config.backend.effective_client_id()
    async with GatewayClient(session.config.backend.gateway_url, "trader", "trader") as other:
        current = await other.get_settings(client_id)
        remote = dict(current.settings)
        remote["cache"] = {**remote["cache"], "bar_history": 2000}
        stored = await other.put_settings(client_id, remote, current.version)
    show_tab(qtbot, dialog, "cache")
    bars = dialog.form.editor("cache.bar_history")
    retype(qtbot, bars, "3000")
    await wait_until(dialog.apply_button.isEnabled, 5, "Apply to be enabled")
    assert not dialog.sync_button.isEnabled()  # unapplied edits are not synced
    old_runtime = session.runtime
    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    await wait_until(
        lambda: session.config.cache.bar_history == 3000 and dialog.sync_button.isEnabled(),
        60,
        "the local change to be applied",
    )
    await wait_until(lambda: streaming(session, old_runtime), 60, "capture to stream again")

    # Second sync: both changed, so nothing is overwritten and both sides are shown.
    qtbot.mouseClick(dialog.sync_button, Qt.MouseButton.LeftButton)
    await wait_until(
        lambda: dialog.conflict_dialog is not None and dialog.conflict_dialog.isVisible(),
        30,
        "the conflict view",
    )
    conflict = dialog.conflict_dialog
    assert conflict is not None
    assert conflict.model.rows == [("cache.bar_history", "3000", "2000")]
    assert conflict.model.headerData(2, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole) == (
        f"Gateway (v{stored.version})"
    )
    assert conflict.table.model().rowCount() == 1
    assert session.store.read().cache.bar_history == 3000  # nothing overwritten yet
    conflict.resize(760, 300)
    shot(conflict, tmp_path, "settings-sync-conflict")

    old_runtime = session.runtime
    qtbot.mouseClick(conflict.take_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: session.config.cache.bar_history == 2000, 60, "the gateway's settings")
    assert session.store.read() == ClientConfig.model_validate(remote)
    assert session.config == ClientConfig.model_validate(remote)
    await wait_until(lambda: "took the gateway's settings" in dialog.status.text(), 30, "outcome")
    assert bars.input.text() == "2000"  # type: ignore[attr-defined]  # the editor reloaded
    await wait_until(lambda: streaming(session, old_runtime), 60, "capture to stream again")


async def test_a_gateway_redirect_is_shown_old_to_new_and_applied_only_on_request(
    gateway_session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    session = gateway_session
    session.set_master_password(Secret(MASTER))
    dialog = open_dialog(session, qtbot)
    qtbot.mouseClick(dialog.sync_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "stored at the gateway" in dialog.status.text(), 30, "the push")

    # Someone with the gateway login moves this desk's audit log and changes a harmless one.
    mine = session.config.security.audit_log
    elsewhere = str(tmp_path / "elsewhere" / "audit.jsonl")
    client_id = session.config.backend.effective_client_id()
    async with GatewayClient(session.config.backend.gateway_url, "trader", "trader") as other:
        current = await other.get_settings(client_id)
        remote = dict(current.settings)
        remote["security"] = {**remote["security"], "audit_log": elsewhere}
        remote["cache"] = {**remote["cache"], "bar_history": 2000}
        stored = await other.put_settings(client_id, remote, current.version)

    async def ask() -> EndpointChangeDialog:
        qtbot.mouseClick(dialog.sync_button, Qt.MouseButton.LeftButton)
        await wait_until(
            lambda: dialog.endpoint_dialog is not None and dialog.endpoint_dialog.isVisible(),
            30,
            "the endpoint change dialog",
        )
        assert dialog.endpoint_dialog is not None
        return dialog.endpoint_dialog

    asked = await ask()
    assert asked.model.rows == [
        ("security.audit_log", "(not set)" if mine is None else str(mine), elsewhere)
    ]
    assert asked.model.headers[2] == f"Gateway (v{stored.version})"
    # The harmless change is already in; the redirect is not.
    await wait_until(lambda: session.config.cache.bar_history == 2000, 30, "the rest taken")
    assert session.store.read().security.audit_log == mine
    qtbot.mouseClick(asked.keep_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "Kept this machine's endpoints" in dialog.status.text(), 10, "kept")
    assert session.store.read().security.audit_log == mine

    asked = await ask()  # asked again at the next sync, never applied by itself
    qtbot.mouseClick(asked.apply_button, Qt.MouseButton.LeftButton)
    await wait_until(
        lambda: str(session.config.security.audit_log) == elsewhere, 60, "the redirect applied"
    )
    assert str(session.store.read().security.audit_log) == elsewhere
    await wait_until(lambda: "took the gateway's settings" in dialog.status.text(), 30, "outcome")


async def test_terminals_show_the_fields_of_their_kind_and_a_clean_login(
    ui_store: ConfigStore, qtbot: QtBot
) -> None:
    """A simulated terminal shows its seed and rates, not a path, host or replay files;
    choosing another kind with the keyboard shows that kind's fields at once. The login
    field reads 'not set' with its range beside it once, not 'not set; ≥ 1 ≥ 1'."""
    from app.config.schema import TERMINAL_KIND_FIELDS  # noqa: PLC0415

    session = DesktopSession(ui_store)  # the form only: no capture needed
    dialog = open_dialog(session, qtbot)
    show_tab(qtbot, dialog, "terminals")
    form = dialog.form
    kind = form.editor("terminals.0.kind")
    terminal = kind.parentWidget()
    while not hasattr(terminal, "layout_form"):
        terminal = terminal.parentWidget()
    rows = terminal.layout_form  # type: ignore[attr-defined]
    every = {f for fields in TERMINAL_KIND_FIELDS.values() for f in fields}

    def shown() -> set[str]:
        return {
            key
            for key in terminal.children_by_key  # type: ignore[attr-defined]
            if rows.isRowVisible(form.editor(f"terminals.0.{key}"))
        }

    common = set(terminal.children_by_key) - every  # type: ignore[attr-defined]
    assert {"name", "kind", "symbols"} <= common
    assert shown() == common | set(TERMINAL_KIND_FIELDS["simulated"])
    assert "path" not in shown()
    assert "replay_files" not in shown()

    combo = kind.input
    combo.setFocus()
    for wanted in ("mt5", "replay", "remote"):
        while combo.currentData() != wanted:
            qtbot.keyClick(combo, Qt.Key.Key_Down)
        assert shown() == common | set(TERMINAL_KIND_FIELDS[wanted]), wanted
    login = form.editor("terminals.0.login")
    while combo.currentData() != "mt5":
        qtbot.keyClick(combo, Qt.Key.Key_Up)
    assert login.isVisible()
    assert login.input.placeholderText() == "not set"
    texts = [login.input.placeholderText()] + [
        w.text() for w in login.findChildren(QLabel) if w.isVisible()
    ]
    assert " ".join(texts).count("≥ 1") == 1, texts
    assert "Range: ≥ 1" in login.input.toolTip()
    assert session.config.terminals[0].kind == "simulated"  # nothing applied meanwhile
