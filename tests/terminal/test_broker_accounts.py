"""Hedging and netting accounts, books that survive a restart and several processes,
and the stall-after-send hook the never-twice test of the execution path uses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from app.clock import ManualClock
from app.terminal import trade_constants as tc
from app.terminal.faults import FaultMode, write_fault
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec
from tests.conftest import wait_until_sync
from tests.terminal.broker_kit import SEED, START, last_quote, market, terminal

ROOT = Path(__file__).resolve().parents[2]


def test_hedging_keeps_positions_apart_and_closes_by() -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock)
    buy = market(t, "EURUSD", 0.3)
    clock.advance(5)
    sell = market(t, "EURUSD", 0.1, buy=False)
    assert t.positions_total() == 2
    info = t.account_info()
    assert info is not None
    assert info.margin_mode == tc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    r = t.order_send(
        {"action": tc.TRADE_ACTION_CLOSE_BY, "position": buy.order, "position_by": sell.order}
    )
    assert r is not None
    assert r.retcode == tc.TRADE_RETCODE_DONE
    left = t.positions_get()
    assert left is not None
    assert len(left) == 1
    assert (left[0].ticket, left[0].volume) == (buy.order, pytest.approx(0.2))
    by_deals = [d for d in t.history_deals_get(0, 2_000_000_000) or () if d.order == r.order]
    assert [d.entry for d in by_deals] == [tc.DEAL_ENTRY_OUT_BY] * 2
    # MT5 closes both at the opening price of the position closed by.
    assert all(d.price == sell.price for d in by_deals)
    assert by_deals[0].profit == pytest.approx((sell.price - buy.price) * 10_000, abs=0.01)


def test_netting_reduces_and_reverses_one_position() -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock, margin_mode="netting")
    info = t.account_info()
    assert info is not None
    assert info.margin_mode == tc.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    first = market(t, "EURUSD", 0.3)
    clock.advance(10)
    bid, _ = last_quote(t, "EURUSD")
    reduce = market(t, "EURUSD", 0.1, buy=False)
    positions = t.positions_get()
    assert positions is not None
    assert len(positions) == 1
    assert (positions[0].ticket, positions[0].volume) == (first.order, pytest.approx(0.2))
    deal = t.history_deals_get(ticket=reduce.deal)
    assert deal is not None
    assert deal[0].entry == tc.DEAL_ENTRY_OUT
    assert deal[0].profit == pytest.approx((bid - first.price) * 10_000, abs=0.01)

    clock.advance(10)
    bid2, _ = last_quote(t, "EURUSD")
    reverse = market(t, "EURUSD", 0.5, buy=False)
    positions = t.positions_get()
    assert positions is not None
    assert len(positions) == 1
    p = positions[0]
    assert (p.ticket, p.type, p.volume) == (first.order, tc.POSITION_TYPE_SELL, pytest.approx(0.3))
    assert p.price_open == bid2
    deal = t.history_deals_get(ticket=reverse.deal)
    assert deal is not None
    assert deal[0].entry == tc.DEAL_ENTRY_INOUT
    assert deal[0].profit == pytest.approx((bid2 - first.price) * 20_000, abs=0.01)
    info = t.account_info()
    assert info is not None
    assert info.margin == pytest.approx(0.3 * 100_000 * bid2 / 100, abs=0.01)


def test_books_survive_a_restart_of_the_terminal(tmp_path: Path) -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock, tmp_path)
    market(t, "EURUSD", 0.2)
    keep = market(t, "XAUUSD", 0.1)
    closing = market(t, "BTCUSD", 0.1)
    clock.advance(30)
    market(t, "BTCUSD", 0.1, buy=False, position=closing.order)
    before = (t.positions_get(), t.history_deals_get(0, 2_000_000_000), t.account_info())
    t.shutdown()
    assert (tmp_path / "Simulated-Demo-10000001.sqlite").exists()

    again = terminal(clock, tmp_path, balance=99.0)  # settings open *new* accounts only
    after = (again.positions_get(), again.history_deals_get(0, 2_000_000_000), again.account_info())
    assert after == before
    assert after[2] is not None
    assert after[2].balance != 99.0
    nxt = market(again, "EURUSD", 0.1)
    assert nxt.order > keep.deal  # tickets go on increasing

    spec = TerminalSpec(seed=SEED, sim_state_dir=tmp_path, sim_account="real")
    from_spec = SimulatedTerminal.from_spec(spec, clock=clock)
    assert from_spec.initialize()
    info = from_spec.account_info()
    assert info is not None
    assert info.balance == after[2].balance
    other = SimulatedTerminal.from_spec(
        TerminalSpec(seed=SEED, sim_state_dir=tmp_path / "real", sim_account="real"), clock=clock
    )
    assert other.initialize()
    real = other.account_info()
    assert real is not None
    assert real.trade_mode == tc.ACCOUNT_TRADE_MODE_REAL


_CHILD = textwrap.dedent(
    """
    import json, sys
    from app.clock import ManualClock
    from app.terminal.simulated import SimulatedTerminal
    from pathlib import Path
    folder, control, now, symbol = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    t = SimulatedTerminal({seed}, clock=ManualClock(now), broker_dir=Path(folder),
                          control_file=control)
    assert t.initialize()
    print("ready", flush=True)
    r = t.order_send({{"action": 1, "symbol": symbol, "volume": 0.1, "type": 0,
                       "comment": "tc:child"}})
    print(json.dumps(r._asdict(), default=str), flush=True)
    """
)


def _child(tmp_path: Path, control: Path, symbol: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CHILD.format(seed=SEED),
            str(tmp_path),
            str(control),
            str(START + 0.5),
            symbol,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_another_process_sees_committed_books(tmp_path: Path) -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock, tmp_path)
    mine = market(t, "EURUSD", 0.1)
    child = _child(tmp_path, tmp_path / "control.json", "GBPUSD")
    out, _ = child.communicate(timeout=60)
    result = json.loads(out.splitlines()[-1])
    assert result["retcode"] == tc.TRADE_RETCODE_DONE
    assert result["order"] > mine.deal  # one ticket counter for every process
    positions = t.positions_get()
    assert positions is not None
    assert [p.symbol for p in positions] == ["EURUSD", "GBPUSD"]


def test_stall_after_send_commits_then_never_answers(tmp_path: Path) -> None:
    """The hook of the never-twice test: SIGKILL between execution and the answer."""
    control = tmp_path / "control.json"
    write_fault(control, FaultMode.STALL_AFTER_SEND)
    child = _child(tmp_path, control, "EURUSD")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        clock = ManualClock(START + 0.5)
        watcher = terminal(clock, tmp_path)
        wait_until_sync(lambda: watcher.positions_total() == 1, 60, "the committed order")
        assert child.poll() is None  # executed, but the answer never came back
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    deals = watcher.history_deals_get(0, 2_000_000_000)
    assert deals is not None
    assert [d.comment for d in deals] == ["tc:child"]


def test_stall_after_send_releases_when_the_mode_changes() -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock)
    t.set_fault(FaultMode.STALL_AFTER_SEND)
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(market(t, "EURUSD", 0.1)))
    thread.start()
    wait_until_sync(lambda: t.positions_total() == 1, 30, "the order to be committed")
    assert not results  # still blocked after the commit
    t.set_fault(FaultMode.OK)
    thread.join(30)
    assert len(results) == 1
