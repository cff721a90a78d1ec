"""A real account: the first order sent from the window asks once per session ("This is
a REAL account … money at risk"); Cancel sends nothing, agreeing grants the consent and
sends, and the next order goes without a question. Driven through the one-click bar on
the simulated broker's REAL account (``sim_account = "real"``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.session import DesktopSession
from app.trading.intent import Outcome
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from tests.ui.test_trade_window import open_window

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def ui_store(tmp_path: Path) -> ConfigStore:
    """A simulated REAL account that the settings allow trading on."""
    doc = ui_config_document(
        tmp_path, backend={"demo_signals": False}, trading={"allow_real_account": True}
    )
    doc["terminals"][0].update(sim_state_dir=str(tmp_path / "broker"), sim_account="real")
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(doc))
    return store


async def test_real_account_asks_once_before_the_first_one_click_order(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = open_window(session, qtbot, tmp_path)
    bar = window.trading.one_click
    window.trading.refresh(window.theme, "EURUSD")

    def consent_needed() -> bool:
        snap = session.trading_snapshot()
        return bool(snap and snap.real_account_consent_needed)

    await wait_until(consent_needed, 60, "the real account to be known")
    await wait_until(bar.buy.isEnabled, 20, "a price on the one-click bar")

    def asked() -> QMessageBox | None:
        box = bar.findChild(QMessageBox, "realAccountConsent")
        return box if isinstance(box, QMessageBox) and box.isVisible() else None

    # Cancel: nothing is sent, the question comes again next time.
    qtbot.mouseClick(bar.buy, Qt.MouseButton.LeftButton)
    await wait_until(lambda: asked() is not None, 5, "the real-account question")
    box = asked()
    assert box is not None
    assert "REAL account" in box.text()
    assert "money" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    await wait_until(lambda: asked() is None, 5, "the question to close")
    assert bar.reports == []
    assert consent_needed()

    # Agree: consent for the session, then the order goes (through the risk engine).
    qtbot.mouseClick(bar.buy, Qt.MouseButton.LeftButton)
    await wait_until(lambda: asked() is not None, 5, "the question again")
    yes = asked().findChild(QWidget, "realAccountYes")  # type: ignore[union-attr]
    assert yes is not None
    qtbot.mouseClick(yes, Qt.MouseButton.LeftButton)
    await wait_until(lambda: bar.reports, 30, "the one-click order's report")
    assert bar.reports[0].outcome is Outcome.EXECUTED, bar.reports[0]
    assert not consent_needed()
    # Once per session: the next order goes without a question.
    qtbot.mouseClick(bar.sell, Qt.MouseButton.LeftButton)
    await wait_until(lambda: len(bar.reports) == 2, 30, "the second order's report")
    assert asked() is None
    assert bar.reports[1].outcome is Outcome.EXECUTED, bar.reports[1]
