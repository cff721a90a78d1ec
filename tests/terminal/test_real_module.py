"""What the real ``MetaTrader5`` module does, as the simulated terminal mirrors it.

Each behaviour is checked with the real module's codes and texts: ``None`` answers with
``last_error()``, Market Watch selection, ``initialize`` timing out, the ``portable``
flag, and a terminal that lost its trade server while the IPC still works.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.servertime import UTC_ZONE
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.simulated import DEFAULT_MARKET_WATCH, FaultMode, SimulatedTerminal, write_fault
from app.terminal.types import TerminalInfo
from tests.conftest import wait_until_sync

NOW = 1_700_000_000.25
NOW_MSC = int(NOW * 1000)
CALL_FAILED = (-1, "Terminal: Call failed")
NOT_FOUND = (-4, "Terminal: Not found")
SUCCESS = (1, "Success")
IPC_TIMEOUT = (-10005, "IPC timeout")

#: The real ``TerminalInfo`` fields (as ``app/terminal/types.py`` mirrors them): no "portable".
REAL_TERMINAL_INFO = [
    "community_account",
    "community_connection",
    "connected",
    "dlls_allowed",
    "trade_allowed",
    "tradeapi_disabled",
    "email_enabled",
    "ftp_enabled",
    "notifications_enabled",
    "mqid",
    "build",
    "maxbars",
    "codepage",
    "ping_last",
    "community_balance",
    "retransmission",
    "company",
    "name",
    "language",
    "path",
    "data_path",
    "commondata_path",
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def term(clock: ManualClock) -> SimulatedTerminal:
    t = SimulatedTerminal(seed=3, clock=clock, server_time_zone=UTC_ZONE)
    assert t.initialize()
    return t


# ------------------------------------------------------------------ Market Watch


def test_a_fresh_terminal_shows_only_its_default_market_watch(term: SimulatedTerminal) -> None:
    infos = term.symbols_get()
    assert infos is not None
    shown = {s.name for s in infos if s.select and s.visible}
    assert shown == set(DEFAULT_MARKET_WATCH) == {"EURUSD", "GBPUSD", "USDJPY"}
    assert {s.name for s in infos} == set(DEFAULT_PROFILES)  # the others exist
    gold = term.symbol_info("XAUUSD")
    assert gold is not None
    assert not gold.select
    assert term.last_error() == SUCCESS


def test_a_hidden_symbol_serves_no_data_until_selected(term: SimulatedTerminal) -> None:
    calls: dict[str, Callable[[], object]] = {
        "symbol_info_tick": lambda: term.symbol_info_tick("XAUUSD"),
        "copy_ticks_from": lambda: term.copy_ticks_from("XAUUSD", NOW - 60, 100, -1),
        "copy_ticks_range": lambda: term.copy_ticks_range("XAUUSD", NOW - 60, NOW, -1),
    }
    for name, call in calls.items():
        term.version()
        assert call() is None, name
        assert term.last_error() == CALL_FAILED, name
    assert term.symbol_select("XAUUSD", True)
    got = term.copy_ticks_range("XAUUSD", NOW - 60, NOW, -1)
    assert got is not None
    truth = Market(3, DEFAULT_PROFILES).ticks_range(
        "XAUUSD",
        (int(NOW) - 60) * 1000,
        int(NOW) * 1000 + 1,  # date_to is inclusive
    )
    assert len(got) > 0
    assert np.array_equal(got, truth)
    # An unknown symbol cannot be selected: the caller must say which one.
    assert not term.symbol_select("NOPE", True)
    assert term.last_error() == NOT_FOUND


def test_an_empty_answer_is_success_not_an_error(term: SimulatedTerminal) -> None:
    future = term.copy_ticks_from("EURUSD", NOW + 3600, 100, -1)
    assert future is not None
    assert len(future) == 0
    assert term.last_error() == SUCCESS


# ------------------------------------------------------------------ None + last_error


@pytest.mark.parametrize(
    ("call", "code"),
    [
        ("copy_ticks_from", -1),
        ("copy_ticks_range", -10001),
        ("symbol_info", -4),
        ("symbol_info_tick", -1),
        ("symbol_select", -10002),
        ("account_info", -10004),
        ("terminal_info", -10001),
        ("version", -10005),
    ],
)
def test_injected_failures_answer_none_with_the_code(
    term: SimulatedTerminal, call: str, code: int
) -> None:
    args: dict[str, tuple[object, ...]] = {
        "copy_ticks_from": ("EURUSD", NOW - 5, 10, -1),
        "copy_ticks_range": ("EURUSD", NOW - 5, NOW, -1),
        "symbol_info": ("EURUSD",),
        "symbol_info_tick": ("EURUSD",),
        "symbol_select": ("EURUSD", True),
    }
    term.set_fault("ok", fail={call: code})
    result = getattr(term, call)(*args.get(call, ()))
    assert result is None or result is False
    assert term.last_error()[0] == code
    # Only that function fails; the rest of the terminal works.
    other = "version" if call != "version" else "terminal_info"
    assert getattr(term, other)() is not None
    term.set_fault("ok")
    again = getattr(term, call)(*args.get(call, ()))
    assert again is not None
    assert again is not False
    assert term.last_error() == SUCCESS


def test_failures_through_the_control_file(tmp_path: Path, clock: ManualClock) -> None:
    control = tmp_path / "faults.json"
    write_fault(control, "ok", fail={"copy_ticks_from": -1})
    t = SimulatedTerminal(clock=clock, control_file=control, server_time_zone=UTC_ZONE)
    assert t.initialize()
    assert t.copy_ticks_from("EURUSD", NOW - 5, 10, -1) is None
    assert t.last_error() == CALL_FAILED
    write_fault(control, "ok")
    wait_until_sync(lambda: t.copy_ticks_from("EURUSD", NOW - 5, 10, -1) is not None, 5, "ok")


# ------------------------------------------------------------------ initialize


def test_initialize_times_out_with_minus_10005_on_a_stalled_terminal(
    term: SimulatedTerminal,
) -> None:
    term.set_fault(FaultMode.STALL)
    started = time.monotonic()
    assert term.initialize(timeout=150) is False
    assert 0.15 <= time.monotonic() - started < 2  # the timeout, not a hang
    assert term.last_error() == IPC_TIMEOUT
    term.set_fault(FaultMode.OK)
    assert term.version() is None  # no connection after a failed initialize
    assert term.last_error() == (-10004, "No IPC connection")
    assert term.initialize(timeout=150)


def test_portable_keeps_the_data_folder_in_the_installation(term: SimulatedTerminal) -> None:
    info = term.terminal_info()
    assert info is not None
    assert list(TerminalInfo._fields) == REAL_TERMINAL_INFO
    assert info.data_path != info.path
    assert "AppData\\Roaming\\MetaQuotes\\Terminal\\" in info.data_path
    install = "D:\\MT5\\terminal64.exe"
    assert term.initialize(install, portable=True)
    portable = term.terminal_info()
    assert portable is not None
    assert portable.path == portable.data_path == install


# ------------------------------------------------------------------ offline


def test_offline_answers_but_no_new_tick_arrives_until_it_is_back(
    term: SimulatedTerminal, clock: ManualClock
) -> None:
    market = Market(3, DEFAULT_PROFILES)
    term.set_fault(FaultMode.OFFLINE)
    info = term.terminal_info()
    assert info is not None
    assert info.connected is False
    assert term.last_error() == SUCCESS  # the IPC works: calls succeed
    assert term.account_info() is not None
    clock.advance(30.0)
    during = term.copy_ticks_from("EURUSD", NOW - 10, 1_000_000, -1)
    assert during is not None
    assert len(during) > 0  # history is served...
    assert int(during["time_msc"][-1]) <= NOW_MSC  # ...but nothing newer than the outage
    last = term.symbol_info_tick("EURUSD")
    assert last is not None
    assert last.time_msc == int(during["time_msc"][-1])
    term.set_fault(FaultMode.OK)
    info = term.terminal_info()
    assert info is not None
    assert info.connected
    # Back online, the terminal has downloaded the missed ticks: the history is complete.
    after = term.copy_ticks_range("EURUSD", int(NOW) - 10, int(NOW) + 30, -1)
    assert after is not None
    truth = market.ticks_range("EURUSD", (int(NOW) - 10) * 1000, (int(NOW) + 30) * 1000 + 1)
    assert np.array_equal(after, truth)
    assert int(after["time_msc"][-1]) > NOW_MSC + 20_000


def test_offline_through_the_control_file(tmp_path: Path, clock: ManualClock) -> None:
    control = tmp_path / "faults.json"
    write_fault(control, "ok")
    t = SimulatedTerminal(clock=clock, control_file=control, server_time_zone=UTC_ZONE)
    assert t.initialize()
    write_fault(control, FaultMode.OFFLINE)
    wait_until_sync(lambda: not (t.terminal_info() or t).connected, 5, "offline")  # type: ignore[union-attr]
    write_fault(control, FaultMode.OK)
    wait_until_sync(lambda: (t.terminal_info() or t).connected, 5, "online")  # type: ignore[union-attr]
