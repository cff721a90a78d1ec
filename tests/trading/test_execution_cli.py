"""``trading-client trade`` end to end in subprocesses, against the simulated broker."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import orjson

from app.terminal.simulated import SimulatedTerminal
from app.terminal.trade_constants import DEAL_ENTRY_IN, DEAL_ENTRY_OUT
from app.terminal.trade_types import TradeDeal, TradePosition
from app.terminal.types import AccountInfo
from app.trading.intent import ExecutionReport
from tests.test_cli import run_clis
from tests.trading.conftest import broker_deals, load_settings, write_settings

CLI = [sys.executable, "-m", "app"]


def trade(settings: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "trade", *words, "--config", str(settings)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_buy_positions_close_history_account(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    config = load_settings(tmp_path)
    bought = trade(settings, "buy", "EURUSD", "0.3", "--json")
    assert bought.returncode == 0, bought.stderr
    report = orjson.loads(bought.stdout)
    assert set(report) == {f.name for f in fields(ExecutionReport)}
    assert report["outcome"] == "executed"
    assert report["message"].startswith("10009 DONE (Request completed)")
    [deal] = broker_deals(config, report["request_id"])
    assert (report["deal"], report["price"], report["volume"]) == (deal.ticket, deal.price, 0.3)
    assert report["position"] == deal.position_id

    listed = trade(settings, "positions", "--json")
    assert listed.returncode == 0, listed.stderr
    positions = orjson.loads(listed.stdout)
    assert [set(p) for p in positions] == [set(TradePosition._fields)]
    assert positions[0]["ticket"] == deal.position_id

    closed = trade(settings, "close", str(deal.position_id))
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout.startswith("executed: 10009 DONE (Request completed)")

    history = trade(settings, "history", "--json")
    assert history.returncode == 0, history.stderr
    deals = orjson.loads(history.stdout)["deals"]
    assert all(set(d) == set(TradeDeal._fields) for d in deals)
    broker = [d for d in broker_deals(config) if d.position_id == deal.position_id]
    assert [(d["ticket"], d["entry"]) for d in deals if d["position_id"] == deal.position_id] == [
        (d.ticket, d.entry) for d in broker
    ]
    assert [d.entry for d in broker] == [DEAL_ENTRY_IN, DEAL_ENTRY_OUT]

    account = trade(settings, "account", "--json")
    assert account.returncode == 0, account.stderr
    doc = orjson.loads(account.stdout)
    assert set(doc) == set(AccountInfo._fields)
    # The balance moved by exactly the closing deal's profit (the broker's own numbers).
    assert doc["balance"] == round(10_000.0 + sum(d.profit for d in broker), 2)


def test_rejected_refused_and_bad_input_exit_non_zero(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    truth = SimulatedTerminal()
    assert truth.initialize()
    tick = truth.symbol_info_tick("EURUSD")
    assert tick is not None
    # A stop loss above the price of a buy: the terminal refuses it with its retcode; and
    # two commands refused before any terminal is asked (started together with it).
    config = ["--config", str(settings)]
    rejected, bad, unknown = run_clis(
        ["trade", "buy", "EURUSD", "0.1", "--sl", f"{tick.ask * 2:.5f}", *config],
        ["trade", "buy", "EURUSD", "lots", *config],
        ["trade", "account", "--terminal", "nope", *config],
    )
    assert rejected.returncode == 1
    assert rejected.stdout.startswith("rejected: 10016 INVALID_STOPS"), rejected.stdout
    assert broker_deals(load_settings(tmp_path)) == []
    # Over the settings' max volume per order (1 lot by default): the risk engine says no.
    refused = trade(settings, "sell", "EURUSD", "2", "--json")
    assert refused.returncode == 1
    doc = orjson.loads(refused.stdout)
    assert doc["outcome"] == "refused"
    assert doc["retcode"] is None  # nothing was sent
    limit = load_settings(tmp_path).trading.risk.max_volume_per_order
    assert f"above the limit of {limit:g} lots per order" in doc["message"]
    assert broker_deals(load_settings(tmp_path)) == []
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr  # argparse's usage, then one line saying what is wrong
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "argument volume: 'lots' is not a number (arguments are not repeated: they might hold "
            "a secret)"
        )
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: no trading terminal named 'nope' (configured: sim)"
