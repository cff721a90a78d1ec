"""The one way a window widget sends a trading intent: ask for real-account consent when
the session says it is needed, then run the session's coroutine and hand its
:class:`ExecutionReport` back — never an exception.

Why one function: the New Order dialog, the one-click bar, the Trade tab and the Signals
panel all send orders, and each must ask the same question once per session on a real
account ("money at risk") before the first one, and show a failure of the core as a result
line like any refusal, instead of a traceback in the log.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from app.session import DesktopSession
from app.trading.intent import ExecutionReport, Outcome
from ui.tasks import TaskRunner

ReportCoro = Callable[[], Coroutine[Any, Any, ExecutionReport]]

REAL_ACCOUNT_TEXT = (
    "This is a REAL account: orders sent from this window trade real money, and money is "
    "at risk.\n\nSend orders on this account for the rest of this session?"
)


def failure_report(what: str, exc: BaseException) -> ExecutionReport:
    """A core call that raised: shown as "unknown" (the order may or may not be at the
    terminal; the execution path reconciles it), with the reason."""
    return ExecutionReport("", Outcome.UNKNOWN, f"{what} failed: {type(exc).__name__}: {exc}")


def ask_real_account(
    parent: QWidget, on_yes: Callable[[], None], on_no: Callable[[], None] | None = None
) -> QMessageBox:
    """The once-per-session question before the first order on a real account (opened
    window-modally, see :mod:`ui.dialogs`); ``on_yes`` runs when the trader agrees,
    ``on_no`` otherwise."""
    box = QMessageBox(parent)
    box.setObjectName("realAccountConsent")
    box.setWindowTitle("Real account")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setText(REAL_ACCOUNT_TEXT)
    yes = box.addButton("Trade on the &real account", QMessageBox.ButtonRole.AcceptRole)
    yes.setObjectName("realAccountYes")
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)

    def finished(_result: int) -> None:
        if box.clickedButton() is yes:
            on_yes()
        elif on_no is not None:
            on_no()

    box.finished.connect(finished)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def send_intent(  # noqa: PLR0917 - each argument is a different thing
    parent: QWidget,
    session: DesktopSession,
    tasks: TaskRunner,
    what: str,
    make: ReportCoro,
    on_report: Callable[[ExecutionReport], None],
    *,
    on_cancel: Callable[[], None] | None = None,
) -> None:
    """Run ``make()`` (a session intent) after the real-account consent if needed;
    ``on_report`` gets its report, or a :func:`failure_report` when it raised.
    ``on_cancel`` runs when the trader declines the consent question."""

    def run() -> None:
        tasks.run(make(), what, on_report, lambda exc: on_report(failure_report(what, exc)))

    snap = session.trading_snapshot()
    if snap is None or not snap.real_account_consent_needed:
        run()
        return

    def consented() -> None:
        session.grant_real_account_consent()
        run()

    ask_real_account(parent, consented, on_cancel)
