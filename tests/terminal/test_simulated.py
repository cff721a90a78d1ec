"""The simulated terminal answers like the ``MetaTrader5`` module, faults included."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.servertime import UTC_ZONE
from app.terminal import constants
from app.terminal import simulated as simulated_module
from app.terminal.constants import TICK_FLAG_ASK, TICK_FLAG_BID, TICK_FLAG_LAST, TICK_FLAG_VOLUME
from app.terminal.market import DEFAULT_PROFILES, Market, SymbolProfile
from app.terminal.simulated import FaultMode, SimulatedTerminal, write_fault
from app.terminal.spec import TerminalSpec
from app.terminal.types import AccountInfo, SymbolInfo, TerminalInfo, Tick
from app.ticks import TICK_DTYPE
from tests.conftest import wait_until_sync

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_700_000_000.25  # seconds
NOW_MSC = int(NOW * 1000)
NO_IPC = (-10004, "No IPC connection")
INVALID = (-2, "Terminal: Invalid params")
AUTH_FAILED = (-6, "Terminal: Authorization failed")

#: Parameter names of the real module's functions, as its documentation spells them.
REAL_SIGNATURES = {
    "initialize": ["path", "login", "password", "server", "timeout", "portable"],
    "login": ["login", "password", "server", "timeout"],
    "shutdown": [],
    "version": [],
    "last_error": [],
    "terminal_info": [],
    "account_info": [],
    "symbols_total": [],
    "symbols_get": ["group"],
    "symbol_info": ["symbol"],
    "symbol_info_tick": ["symbol"],
    "symbol_select": ["symbol", "enable"],
    "copy_ticks_from": ["symbol", "date_from", "count", "flags"],
    "copy_ticks_range": ["symbol", "date_from", "date_to", "flags"],
}

EXCHANGE = SymbolProfile(
    "SBER", 2, 0.01, 280.0, 3, 5e-5, 40.0, "Sberbank", "RUB", "RUB", has_last=True
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def term(clock: ManualClock) -> Iterator[SimulatedTerminal]:
    # A server on UTC: these tests check the API's conventions against the market's own
    # (UTC) history; the server clock (ny-close by default) is tested in
    # test_simulated_server_time.py.
    t = SimulatedTerminal(seed=3, clock=clock, server_time_zone=UTC_ZONE)
    assert t.initialize()
    yield t
    t.shutdown()


def test_every_function_exists_with_the_real_parameter_names() -> None:
    for name, params in REAL_SIGNATURES.items():
        fn = getattr(SimulatedTerminal, name)
        sig = inspect.signature(fn)
        named = [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        assert named == params, name


def test_the_module_constants_are_attributes_with_the_same_values() -> None:
    names = [n for n in dir(constants) if n.startswith(("COPY_TICKS_", "TICK_FLAG_", "RES_"))]
    assert len(names) == 24
    t = SimulatedTerminal()
    for name in names:
        assert getattr(t, name) == getattr(constants, name), name
    assert t.COPY_TICKS_ALL == -1
    assert t.RES_E_INTERNAL_FAIL_CONNECT == -10004


def test_before_initialize_and_after_shutdown_every_call_fails_with_no_ipc(
    clock: ManualClock,
) -> None:
    t = SimulatedTerminal(clock=clock)
    assert t.last_error() == NO_IPC
    for _ in range(2):
        assert t.version() is None
        assert t.terminal_info() is None
        assert t.account_info() is None
        assert t.symbols_total() == 0
        assert t.symbols_get() is None
        assert t.symbol_info("EURUSD") is None
        assert t.symbol_info_tick("EURUSD") is None
        assert t.symbol_select("EURUSD", True) is False
        assert t.login(1, "x") is False
        assert t.copy_ticks_from("EURUSD", NOW - 10, 10, t.COPY_TICKS_ALL) is None
        assert t.copy_ticks_range("EURUSD", NOW - 10, NOW, t.COPY_TICKS_ALL) is None
        assert t.last_error() == NO_IPC
        assert t.initialize()
        assert t.last_error() == (1, "Success")
        t.shutdown()


def test_return_types(term: SimulatedTerminal) -> None:
    version = term.version()
    assert version is not None
    assert version[0] == 500
    assert isinstance(version[1], int)
    assert isinstance(version[2], str)
    info = term.terminal_info()
    assert isinstance(info, TerminalInfo)
    assert info.connected
    account = term.account_info()
    assert isinstance(account, AccountInfo)
    assert account.login > 0
    assert term.symbols_total() == 5
    symbols = term.symbols_get()
    assert isinstance(symbols, tuple)
    assert all(isinstance(s, SymbolInfo) for s in symbols)
    assert [s.name for s in symbols] == list(DEFAULT_PROFILES)
    eurusd = term.symbol_info("EURUSD")
    assert isinstance(eurusd, SymbolInfo)
    assert (eurusd.digits, eurusd.point, eurusd.select) == (5, 1e-5, True)
    assert eurusd.ask > eurusd.bid > 0
    assert eurusd.spread == round((eurusd.ask - eurusd.bid) / eurusd.point)
    tick = term.symbol_info_tick("EURUSD")
    assert isinstance(tick, Tick)
    assert tick.time_msc <= NOW_MSC
    assert tick.time == tick.time_msc // 1000
    ticks = term.copy_ticks_from("EURUSD", NOW - 60, 100, term.COPY_TICKS_ALL)
    assert isinstance(ticks, np.ndarray)
    assert ticks.dtype == TICK_DTYPE
    assert len(ticks) == 100


def test_symbol_info_tick_is_the_newest_tick_so_far(term: SimulatedTerminal) -> None:
    ticks = term.copy_ticks_range("GBPUSD", NOW - 30, NOW + 30, term.COPY_TICKS_ALL)
    assert ticks is not None
    tick = term.symbol_info_tick("GBPUSD")
    assert tick is not None
    assert tick == Tick(*ticks[-1].tolist())


def test_results_are_fresh_arrays(term: SimulatedTerminal) -> None:
    first = term.copy_ticks_from("EURUSD", NOW - 5, 1000, term.COPY_TICKS_ALL)
    assert first is not None
    assert first.flags.writeable
    assert first.flags.owndata
    keep = first.copy()
    first["bid"] = -1.0
    again = term.copy_ticks_from("EURUSD", NOW - 5, 1000, term.COPY_TICKS_ALL)
    assert again is not None
    assert again.tobytes() == keep.tobytes()


def test_never_returns_ticks_after_now(term: SimulatedTerminal, clock: ManualClock) -> None:
    before = term.copy_ticks_range("EURUSD", NOW - 10, NOW + 3600, term.COPY_TICKS_ALL)
    assert before is not None
    assert len(before) > 0
    assert before["time_msc"].max() <= NOW_MSC
    future = term.copy_ticks_from("EURUSD", NOW + 1, 10, term.COPY_TICKS_ALL)
    assert future is not None
    assert len(future) == 0
    clock.advance(5)
    after = term.copy_ticks_range("EURUSD", NOW - 10, NOW + 3600, term.COPY_TICKS_ALL)
    assert after is not None
    assert after["time_msc"].max() <= NOW_MSC + 5000
    assert len(after) > len(before)
    assert after[: len(before)].tobytes() == before.tobytes()  # history only grows


def test_dates_are_whole_seconds_as_int_float_or_datetime(term: SimulatedTerminal) -> None:
    second = 1_699_999_990
    naive = datetime(2023, 11, 14, 22, 13, 10)
    assert naive.replace(tzinfo=UTC).timestamp() == second
    aware = datetime(2023, 11, 15, 1, 13, 10, 999_000, tzinfo=timezone(timedelta(hours=3)))
    forms = [second, second + 0.999, np.int64(second), naive, naive.replace(tzinfo=UTC), aware]
    results = [term.copy_ticks_from("USDJPY", f, 50, term.COPY_TICKS_ALL) for f in forms]
    expected = Market(3, DEFAULT_PROFILES).ticks_range("USDJPY", second * 1000, NOW_MSC + 1)[:50]
    for form, got in zip(forms, results, strict=True):
        assert got is not None, form
        assert got.tobytes() == expected.tobytes(), form
    assert expected["time_msc"][0] // 1000 == second


def test_copy_ticks_range_includes_the_millisecond_of_date_to() -> None:
    t = SimulatedTerminal(rates={"EURUSD": 5000}, clock=ManualClock(NOW))
    assert t.initialize()
    ticks = t.copy_ticks_range("EURUSD", NOW - 20, NOW - 10, t.COPY_TICKS_ALL)
    assert ticks is not None
    whole_second = ticks["time_msc"] % 1000 == 0
    assert ticks["time_msc"][0] == (int(NOW) - 20) * 1000  # at 5/ms, that ms has ticks
    assert ticks["time_msc"][-1] == (int(NOW) - 10) * 1000
    assert whole_second[-1]


def test_flags_select_info_or_trade_ticks(clock: ManualClock) -> None:
    t = SimulatedTerminal(profiles={**DEFAULT_PROFILES, "SBER": EXCHANGE}, clock=clock)
    assert t.initialize()
    span = (NOW - 60, NOW)
    every = t.copy_ticks_range("SBER", *span, t.COPY_TICKS_ALL)
    info = t.copy_ticks_range("SBER", *span, t.COPY_TICKS_INFO)
    trade = t.copy_ticks_range("SBER", *span, t.COPY_TICKS_TRADE)
    assert every is not None
    assert info is not None
    assert trade is not None
    is_info = (every["flags"] & (TICK_FLAG_BID | TICK_FLAG_ASK)) != 0
    is_trade = (every["flags"] & (TICK_FLAG_LAST | TICK_FLAG_VOLUME)) != 0
    assert 0 < len(trade) < len(info) < len(every)
    assert info.tobytes() == every[is_info].tobytes()
    assert trade.tobytes() == every[is_trade].tobytes()
    first = t.copy_ticks_from("SBER", NOW - 60, 7, t.COPY_TICKS_TRADE)
    assert first is not None
    assert first.tobytes() == trade[:7].tobytes()
    fx = t.copy_ticks_range("EURUSD", *span, t.COPY_TICKS_TRADE)
    assert fx is not None
    assert len(fx) == 0


def test_invalid_parameters(term: SimulatedTerminal) -> None:
    calls = [
        lambda: term.copy_ticks_from("EURUSD", NOW, 0, term.COPY_TICKS_ALL),
        lambda: term.copy_ticks_from("EURUSD", NOW, -5, term.COPY_TICKS_ALL),
        lambda: term.copy_ticks_from("EURUSD", NOW, 10, 3),
        lambda: term.copy_ticks_from("EURUSD", "yesterday", 10, term.COPY_TICKS_ALL),
        lambda: term.copy_ticks_from("EURUSD", -1, 10, term.COPY_TICKS_ALL),
        lambda: term.copy_ticks_from("NOPE", NOW, 10, term.COPY_TICKS_ALL),
        lambda: term.copy_ticks_range("NOPE", NOW - 1, NOW, term.COPY_TICKS_ALL),
        lambda: term.copy_ticks_range("EURUSD", NOW - 1, None, term.COPY_TICKS_ALL),  # type: ignore[arg-type]
    ]
    for call in calls:
        term.version()  # reset last_error to success
        assert call() is None
        assert term.last_error() == INVALID
    assert term.symbol_info("NOPE") is None
    assert term.last_error() == (-4, "Terminal: Not found")
    assert term.symbol_info_tick("NOPE") is None
    assert term.symbol_select("NOPE") is False
    with pytest.raises(TypeError, match="bogus"):
        term.initialize(bogus=1)


@pytest.mark.parametrize(
    ("group", "names"),
    [
        ("*", ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"]),
        ("EUR*", ["EURUSD"]),
        ("*USD*,!BTC*", ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]),
        ("XAU*, BTC*", ["XAUUSD", "BTCUSD"]),
        ("*,!*USD", ["USDJPY"]),
        ("eurusd", ["EURUSD"]),
        ("!BTC*", []),
        ("EUR", []),
    ],
)
def test_symbols_get_group_syntax(term: SimulatedTerminal, group: str, names: list[str]) -> None:
    got = term.symbols_get(group)
    assert got is not None
    assert [s.name for s in got] == names
    assert [s.name for s in term.symbols_get(group=group) or ()] == names


def test_symbol_select_controls_market_watch(term: SimulatedTerminal) -> None:
    assert term.symbol_select("XAUUSD", False)
    info = term.symbol_info("XAUUSD")
    assert info is not None
    assert not info.select
    assert term.symbol_info_tick("XAUUSD") is None
    assert term.last_error() == (-1, "Terminal: Call failed")
    assert term.symbol_select("XAUUSD")
    assert term.symbol_info_tick("XAUUSD") is not None


def test_a_huge_range_is_capped_to_its_oldest_ticks(
    term: SimulatedTerminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulated_module, "MAX_TICKS_PER_CALL", 2_000)
    ticks = term.copy_ticks_range("EURUSD", 0, NOW, term.COPY_TICKS_ALL)
    assert ticks is not None
    assert len(ticks) == 2_000
    assert ticks["time"][0] == 0  # the oldest ones: continue from the last time_msc
    # copy_ticks_from is bounded by its count only: a second denser than any cap must
    # stay readable past (app/connector/capture.py).
    many = term.copy_ticks_from("EURUSD", NOW - 3600, 3_000, term.COPY_TICKS_ALL)
    assert many is not None
    assert len(many) == 3_000


def test_two_terminals_with_one_seed_serve_one_history(clock: ManualClock) -> None:
    a, b, other = (SimulatedTerminal(seed=s, clock=clock) for s in (5, 5, 6))
    for t in (a, b, other):
        assert t.initialize()
        assert t.symbol_select("BTCUSD", True)  # not in the default Market Watch
    b.copy_ticks_from("BTCUSD", NOW - 100, 3, b.COPY_TICKS_ALL)  # a different history of asks
    got_a = a.copy_ticks_range("BTCUSD", NOW - 120, NOW, a.COPY_TICKS_ALL)
    got_b = b.copy_ticks_range("BTCUSD", NOW - 120, NOW, b.COPY_TICKS_ALL)
    got_other = other.copy_ticks_range("BTCUSD", NOW - 120, NOW, other.COPY_TICKS_ALL)
    assert got_a is not None
    assert got_b is not None
    assert got_other is not None
    assert got_a.tobytes() == got_b.tobytes()
    assert got_a.tobytes() != got_other.tobytes()


def test_from_spec_uses_seed_rates_and_control_file(tmp_path: Path) -> None:
    control = tmp_path / "faults.json"
    write_fault(control, "disconnect")
    spec = TerminalSpec(seed=9, rates=(("EURUSD", 123.0),), control_file=control)
    t = SimulatedTerminal.from_spec(spec, clock=ManualClock(NOW))
    assert t.market.seed == 9
    assert t.market.rate("EURUSD") == 123.0
    assert t.market.rate("GBPUSD") == DEFAULT_PROFILES["GBPUSD"].tick_rate
    assert t.fault is FaultMode.DISCONNECT
    assert not t.initialize()
    assert t.last_error() == NO_IPC


def test_disconnect_fails_every_call_until_ok_and_reinitialised(term: SimulatedTerminal) -> None:
    term.set_fault(FaultMode.DISCONNECT)
    assert term.copy_ticks_from("EURUSD", NOW - 1, 10, term.COPY_TICKS_ALL) is None
    assert term.last_error() == NO_IPC
    assert term.symbol_info_tick("EURUSD") is None
    assert not term.initialize()
    assert term.last_error() == NO_IPC
    term.set_fault("ok")
    assert term.account_info() is None  # the link stays down until initialize
    assert term.last_error() == NO_IPC
    assert term.initialize()
    assert term.copy_ticks_from("EURUSD", NOW - 1, 10, term.COPY_TICKS_ALL) is not None


def test_stall_blocks_calls_until_the_mode_changes(term: SimulatedTerminal) -> None:
    term.set_fault(FaultMode.STALL)
    result: list[object] = []
    caller = threading.Thread(
        target=lambda: result.append(term.copy_ticks_from("EURUSD", NOW - 1, 5, -1)), daemon=True
    )
    caller.start()
    caller.join(0.2)
    assert caller.is_alive()
    assert result == []
    term.set_fault(FaultMode.OK)
    caller.join(5)
    assert not caller.is_alive()
    assert isinstance(result[0], np.ndarray)
    assert len(result[0]) == 5


def test_initialize_on_a_stalled_terminal_times_out(term: SimulatedTerminal) -> None:
    term.set_fault(FaultMode.STALL)
    started = time.monotonic()
    assert not term.initialize(timeout=100)
    assert 0.1 <= time.monotonic() - started < 2
    assert term.last_error() == (-10005, "IPC timeout")


def test_faults_through_the_control_file(tmp_path: Path, clock: ManualClock) -> None:
    control = tmp_path / "faults.json"
    control.write_text(json.dumps({"mode": "ok"}))
    t = SimulatedTerminal(clock=clock, control_file=control)
    assert t.initialize()
    # Written by another process, plainly (not atomically), as a test or a user would.
    code = (
        f'import pathlib; pathlib.Path({str(control)!r}).write_text(\'{{"mode": "disconnect"}}\')'
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    wait_until_sync(lambda: t.symbol_info_tick("EURUSD") is None, 5, "the disconnect")
    assert t.last_error() == NO_IPC
    write_fault(control, FaultMode.STALL)
    wait_until_sync(lambda: t.fault is FaultMode.STALL, 5, "the stall")
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(t.initialize(timeout=60_000)))
    caller.start()
    caller.join(0.2)
    assert caller.is_alive()
    write_fault(control, FaultMode.OK)
    caller.join(5)
    assert result == [True]
    assert t.symbol_info_tick("EURUSD") is not None


def test_an_unreadable_control_file_is_ignored_until_it_is_fixed(
    tmp_path: Path, clock: ManualClock
) -> None:
    control = tmp_path / "faults.json"
    control.write_text('{"mode": "disc')
    t = SimulatedTerminal(clock=clock, control_file=control)
    assert t.fault is FaultMode.OK
    control.write_text('{"mode": "disconnect"}')
    wait_until_sync(lambda: t.fault is FaultMode.DISCONNECT, 5, "the fixed file to be read")


def test_authorization(clock: ManualClock) -> None:
    t = SimulatedTerminal(clock=clock, accounts={1234: "secret", 5678: "other"})
    assert not t.initialize(login=1234, password="wrong", server="Sim-Demo")
    assert t.last_error() == AUTH_FAILED
    assert t.account_info() is None
    assert not t.initialize(login=999, password="secret")
    assert t.last_error() == AUTH_FAILED
    assert t.initialize(login=1234, password="secret", server="Sim-Demo")
    account = t.account_info()
    assert account is not None
    assert (account.login, account.server) == (1234, "Sim-Demo")
    assert not t.login(5678, password="secret")
    assert t.last_error() == AUTH_FAILED
    assert t.login(5678, password="other")
    assert (t.account_info() or account).login == 5678


def test_auth_fail_mode_rejects_any_login(clock: ManualClock) -> None:
    t = SimulatedTerminal(clock=clock)
    t.set_fault(FaultMode.AUTH_FAIL)
    assert not t.initialize(login=1, password="anything")
    assert t.last_error() == AUTH_FAILED
    assert t.initialize()  # the saved account still opens the terminal
    assert not t.login(1, "anything")
    assert t.last_error() == AUTH_FAILED
    t.set_fault(FaultMode.OK)
    assert t.login(1, "anything")


def test_copy_ticks_from_of_10k_ticks_is_fast(term: SimulatedTerminal) -> None:
    started = time.perf_counter()
    ticks = term.copy_ticks_from("EURUSD", NOW - 7200, 10_000, term.COPY_TICKS_ALL)
    elapsed = time.perf_counter() - started
    assert ticks is not None
    assert len(ticks) == 10_000
    assert elapsed < 0.5  # ~15 ms on a laptop core; only a gross regression fails
