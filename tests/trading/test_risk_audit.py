"""Every risk decision and state change reaches the audit log (read back from the JSONL
file), written on the journal's own thread, with symbol and volume intact and nothing
secret in it."""

from __future__ import annotations

import json
import stat
import sys
import threading
from pathlib import Path

import pytest

from app.clock import ManualClock
from app.security.audit import AuditLog
from app.security.redact import register_secret
from app.terminal.trade_constants import ACCOUNT_TRADE_MODE_REAL
from app.trading.intent import OrderIntent, Origin, Side
from app.trading.risk import RiskDecision, RiskEngine
from app.trading.risk_audit import AuditJournal
from tests.trading.risk_support import config, open_, position, view


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class ThreadNoting(AuditLog):
    """The real audit log, noting which thread wrote each record."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: list[str] = []

    def record(self, action: str, subject: str, outcome: str, **details: object) -> None:
        self.threads.append(threading.current_thread().name)
        super().record(action, subject, outcome, **details)


def test_decisions_and_state_changes_are_written_in_order_off_the_callers_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    audit = ThreadNoting(path)
    journal = AuditJournal(audit)
    clock = ManualClock(1_780_000_000.0)
    risk = RiskEngine(config(max_volume_per_order=1.0), clock, journal)
    signal = open_(
        "EURUSD", Side.SELL, 0.25, origin=Origin.SIGNAL, source="ma-cross", signal_id="sig-7"
    )
    decisions: list[tuple[OrderIntent, RiskDecision]] = []
    for intent in (signal, open_(volume=2.0)):
        decisions.append((intent, risk.check(intent, view(now=clock.time()))))
        clock.advance(0.5)
    risk.halt("kill switch")
    refused_by_state = open_()
    decisions.append((refused_by_state, risk.check(refused_by_state, view(now=clock.time()))))
    risk.grant_real_account_consent()
    assert journal.flush()

    lines = records(path)
    assert [r["action"] for r in lines] == [
        "trade.decision",
        "trade.decision",
        "trade.state",
        "trade.decision",
        "trade.consent",
    ]
    assert set(audit.threads) == {"risk-audit"}
    written = [r for r in lines if r["action"] == "trade.decision"]
    for (intent, decision), r in zip(decisions, written, strict=True):
        assert r["outcome"] == ("success" if decision.accepted else "failure")
        assert (r["reason"], r["rule"], r["state"]) == (
            decision.reason,
            decision.rule.value,
            decision.state.value,
        )
        assert (r["subject"], r["symbol"], r["volume"], r["side"]) == (
            intent.symbol,
            intent.symbol,
            intent.volume,
            intent.side.value,
        )
        assert r["request_id"] == intent.request_id
    first = written[0]
    assert (first["origin"], first["source"], first["signal_id"], first["accepted"]) == (
        "signal",
        "ma-cross",
        "sig-7",
        True,
    )
    assert first["decided_at"] == "2026-05-28T20:26:40.000+00:00"
    assert (first["login"], first["server"], first["equity"]) == (5001, "Broker-Demo", 10_000.0)
    state = lines[2]
    assert (state["subject"], state["previous"], state["cause"], state["reason"]) == (
        "halted",
        "active",
        "manual",
        "kill switch",
    )
    assert lines[4]["granted"] is True
    journal.close()


def test_no_secret_reaches_the_file_but_symbol_and_volume_do(tmp_path: Path) -> None:
    """A signal's free-text fields come from the backend: a password that slipped into
    one is blanked (registered value, or a ``key=value`` pattern), the trade is not."""
    register_secret("Gateway-Pass-1234")
    path = tmp_path / "audit.jsonl"
    journal = AuditJournal(AuditLog(path))
    risk = RiskEngine(config(), ManualClock(), journal)
    intent = open_(
        "XAUUSD",
        Side.BUY,
        0.37,
        origin=Origin.SIGNAL,
        source="ai api_key=abcdef123456",
        signal_id="Gateway-Pass-1234",
    )
    real = view(trade_mode=ACCOUNT_TRADE_MODE_REAL)
    for v in (view(), real):
        risk.check(intent, v)
    journal.close()
    text = path.read_text(encoding="utf-8")
    assert "Gateway-Pass-1234" not in text
    assert "abcdef123456" not in text
    accepted, refused = records(path)
    assert (accepted["symbol"], accepted["volume"], accepted["outcome"]) == (
        "XAUUSD",
        0.37,
        "success",
    )
    assert refused["reason"] == (
        "real account: account 5001 on Broker-Demo trades real money; the settings do "
        "not allow it (trading.allow_real_account)"
    )
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_records_after_close_are_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    journal = AuditJournal(AuditLog(path))
    journal.close()  # never started: nothing to wait for
    risk = RiskEngine(config(), ManualClock(), journal)
    p = position("EURUSD", Side.BUY, 0.1)
    risk.check(open_(), view(positions=(p,)))
    assert [r["action"] for r in records(path)] == ["trade.decision"]
    assert journal.flush()


@pytest.mark.parametrize("action", ["trade.decision", "trade.state", "trade.consent"])
def test_the_audit_log_knows_the_trading_actions(tmp_path: Path, action: str) -> None:
    AuditLog(tmp_path / "a.jsonl").record(action, "EURUSD", "success", volume=1.0)
    assert records(tmp_path / "a.jsonl")[0]["action"] == action
