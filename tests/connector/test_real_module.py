"""The client against what the real module does: ``None`` answers, Market Watch, offline.

Worker processes run for real (through the runtime's ``ConnectorPool``, as in
``test_pool.py``); the captured stream is compared with the simulated terminal's own
deterministic history over the whole span.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.config import TerminalConfig
from app.connector import WorkerState, wire
from app.connector.history_sources import HistoryError, TerminalHistory
from app.connector.worker import EXIT_FATAL, EXIT_TERMINAL_ERROR, WorkerSpec, _FatalError, _Worker
from app.runtime import Runtime
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.simulated import FaultMode, SimulatedTerminal, write_fault
from app.terminal.spec import TerminalSpec
from tests.conftest import wait_until
from tests.connector.test_pool import (
    assert_equals_terminal_history,
    make_config,
    now_msc,
    start,
    started,
)

__all__ = ["started"]  # the fixture, shared with test_pool.py

NOW = 1_700_000_000.25
NOW_MSC = int(NOW * 1000)


# ------------------------------------------------------------- one worker, in process


@pytest.fixture
def pipe() -> Iterator[tuple[Connection, Connection]]:
    parent, child = multiprocessing.Pipe(duplex=True)
    yield parent, child
    parent.close()
    child.close()


def in_process_worker(
    term: SimulatedTerminal, child: Connection, symbols: tuple[str, ...]
) -> _Worker:
    spec = WorkerSpec(
        1, TerminalSpec(name="sim"), symbols, dict.fromkeys(symbols, (NOW_MSC - 5000, 0))
    )
    return _Worker(spec, child, term)


def statuses(parent: Connection) -> list[wire.StatusMsg]:
    out = []
    while parent.poll():
        msg = wire.decode(parent.recv_bytes())
        if isinstance(msg, wire.StatusMsg):
            out.append(msg)
    return out


@pytest.mark.parametrize(
    ("call", "code", "exit_code"),
    [
        ("version", -10001, EXIT_TERMINAL_ERROR),
        ("account_info", -1, EXIT_TERMINAL_ERROR),
        ("terminal_info", -10004, EXIT_TERMINAL_ERROR),
        ("symbol_select", -10002, EXIT_TERMINAL_ERROR),
        ("symbol_select", -1, EXIT_FATAL),
    ],
)
def test_none_at_connect_is_an_error_with_the_mt5_code(
    pipe: tuple[Connection, Connection], call: str, code: int, exit_code: int
) -> None:
    term = SimulatedTerminal(seed=3, clock=ManualClock(NOW))
    term.set_fault("ok", fail={call: code})
    worker = in_process_worker(term, pipe[1], ("EURUSD",))
    with pytest.raises(_FatalError) as err:
        worker.connect()
    assert err.value.code == code
    assert err.value.exit_code == exit_code
    assert call in err.value.text or "symbol EURUSD" in err.value.text
    assert statuses(pipe[0]) == []  # never reported "streaming"


def test_initialize_timing_out_is_a_retryable_error(pipe: tuple[Connection, Connection]) -> None:
    term = SimulatedTerminal(seed=3, clock=ManualClock(NOW))
    term.set_fault(FaultMode.STALL)
    spec = WorkerSpec(1, TerminalSpec(name="sim", timeout_ms=100), ("EURUSD",))
    with pytest.raises(_FatalError) as err:
        _Worker(spec, pipe[1], term).connect()
    assert (err.value.code, err.value.text) == (-10005, "initialize sim: IPC timeout")
    assert err.value.exit_code == EXIT_TERMINAL_ERROR  # backoff and retry, not "failed"


def test_an_unknown_symbol_fails_naming_it(pipe: tuple[Connection, Connection]) -> None:
    term = SimulatedTerminal(seed=3, clock=ManualClock(NOW))
    worker = in_process_worker(term, pipe[1], ("EURUSD", "EURUSDX"))
    with pytest.raises(_FatalError) as err:
        worker.connect()
    assert err.value.exit_code == EXIT_FATAL
    assert (err.value.code, err.value.text) == (
        -4,
        "symbol EURUSDX is not available on sim: Terminal: Not found",
    )


def test_a_none_poll_is_an_error_never_no_ticks(pipe: tuple[Connection, Connection]) -> None:
    clock = ManualClock(NOW)
    term = SimulatedTerminal(seed=3, clock=clock)
    worker = in_process_worker(term, pipe[1], ("XAUUSD",))  # hidden until selected
    worker.connect()
    (streaming,) = statuses(pipe[0])
    assert streaming.state == "streaming"
    worker.poll_once()  # the worker selected XAUUSD: it serves data
    assert worker.cursors["XAUUSD"].last_msc > NOW_MSC - 5_000
    term.set_fault("ok", fail={"copy_ticks_from": -1})
    with pytest.raises(_FatalError) as err:
        worker.poll_once()
    assert (err.value.code, err.value.text) == (-1, "copy_ticks_from XAUUSD: Terminal: Call failed")
    assert err.value.exit_code == EXIT_TERMINAL_ERROR


def test_offline_and_back_are_reported_once_each(pipe: tuple[Connection, Connection]) -> None:
    term = SimulatedTerminal(seed=3, clock=ManualClock(NOW))
    worker = in_process_worker(term, pipe[1], ("EURUSD",))
    term.set_fault(FaultMode.OFFLINE)
    worker.connect()  # connects while offline: says so at once
    (first,) = statuses(pipe[0])
    assert first.state == "offline"
    assert "offline" in first.error_text
    worker.check_connection(1.0)
    assert statuses(pipe[0]) == []  # no change, no message
    term.set_fault(FaultMode.OK)
    worker.check_connection(2.0)
    (back,) = statuses(pipe[0])
    assert back.state == "streaming"
    assert back.info == first.info
    assert back.info["login"] is not None


# ------------------------------------------------------------- the history helper


async def test_the_history_process_selects_and_reports_none_with_the_code(
    tmp_path: Path,
) -> None:
    control = tmp_path / "faults.json"
    write_fault(control, "ok", fail={"copy_ticks_range": -10001})
    history = TerminalHistory(TerminalSpec(name="sim", seed=5, control_file=control))
    from_s = int(now_msc() / 1000) - 120
    try:
        with pytest.raises(HistoryError) as err:
            await history.fetch("XAUUSD", from_s, from_s + 60)
        assert err.value.code == -10001
        assert "copy_ticks_range XAUUSD: IPC send failed" in str(err.value)
        write_fault(control, "ok")
        got = await history.fetch("XAUUSD", from_s, from_s + 60)  # hidden: selected first
    finally:
        await history.close()
    truth = Market(5, DEFAULT_PROFILES).ticks_range(
        "XAUUSD", from_s * 1000, (from_s + 60) * 1000 + 1
    )
    assert len(got) > 0
    assert np.array_equal(got, truth)


# ------------------------------------------------------------- worker processes


async def test_offline_terminal_is_shown_alerted_and_resumed_without_a_hole(
    started: list[Runtime], tmp_path: Path
) -> None:
    control = tmp_path / "faults.json"
    write_fault(control, "ok")
    rates = {"EURUSD": 300.0, "XAUUSD": 300.0}  # XAUUSD: not in the default Market Watch
    config = make_config(
        TerminalConfig(symbols=list(rates), rates=rates, control_file=control), size=1
    )
    start_msc = now_msc()
    rt, rec = await start(started, config, start_msc)
    health = rt.pool.health
    await wait_until(lambda: health()[0].state is WorkerState.STREAMING, 90, "streaming")
    await wait_until(lambda: min(rec.count(s) for s in rates) > 50, 30, "first ticks")
    pid = health()[0].pid

    write_fault(control, FaultMode.OFFLINE)
    offline_at = now_msc()
    await wait_until(lambda: health()[0].state is WorkerState.OFFLINE, 15, "the offline state")
    w = health()[0]
    assert "offline" in w.last_error_text
    assert (w.pid, w.reconnects) == (pid, 0)  # not restarted: the terminal still answers
    assert rt.monitor is not None
    alerts = rt.monitor.alerts
    await wait_until(
        lambda: any(a.id == "terminal_offline:1" for a in alerts.active()), 15, "the alert"
    )
    (alert,) = [a for a in alerts.active() if a.id == "terminal_offline:1"]
    assert alert.message.startswith("terminal offline (worker 1)")
    await wait_until(lambda: now_msc() > offline_at + 1_500, 10, "an outage with ticks in it")
    newest = max(int(rec.ticks(s)["time_msc"][-1]) for s in rates)
    assert newest < offline_at + 1_000  # nothing new arrived while offline

    write_fault(control, FaultMode.OK)
    back_at = now_msc()
    await wait_until(lambda: health()[0].state is WorkerState.STREAMING, 15, "back online")
    assert (health()[0].pid, health()[0].reconnects) == (pid, 0)
    await wait_until(
        lambda: all(int(rec.ticks(s)["time_msc"][-1]) > back_at + 300 for s in rates),
        30,
        "ticks after the outage",
    )
    await wait_until(
        lambda: not any(a.id == "terminal_offline:1" for a in alerts.active()), 15, "resolved"
    )
    await rt.stop()
    market = Market(42, DEFAULT_PROFILES, rates)
    for sym in rates:
        assert_equals_terminal_history(rec, sym, market, start_msc)
        tm = rec.ticks(sym)["time_msc"]
        during = np.count_nonzero((tm > offline_at + 1_000) & (tm < back_at))
        assert during > 50, f"{sym}: the outage's ticks were not captured ({during})"


async def test_a_none_poll_puts_the_worker_in_error_with_the_code_and_loses_nothing(
    started: list[Runtime], tmp_path: Path
) -> None:
    control = tmp_path / "faults.json"
    write_fault(control, "ok")
    config = make_config(
        TerminalConfig(symbols=["EURUSD"], rates={"EURUSD": 300}, control_file=control), size=1
    )
    start_msc = now_msc()
    rt, rec = await start(started, config, start_msc)
    health = rt.pool.health
    await wait_until(lambda: health()[0].state is WorkerState.STREAMING, 90, "streaming")
    await wait_until(lambda: rec.count("EURUSD") > 50, 30, "first ticks")
    write_fault(control, "ok", fail={"copy_ticks_from": -1})
    await wait_until(lambda: health()[0].last_error_code == -1, 15, "the MT5 error")
    w = health()[0]
    assert w.last_error_text == "copy_ticks_from EURUSD: Terminal: Call failed"
    assert w.state in (WorkerState.BACKING_OFF, WorkerState.CONNECTING)
    write_fault(control, "ok")
    await wait_until(
        lambda: health()[0].state is WorkerState.STREAMING and health()[0].reconnects >= 1,
        60,
        "streaming again",
    )
    mark = rec.count("EURUSD")
    await wait_until(lambda: rec.count("EURUSD") > mark + 100, 30, "ticks after the error")
    await rt.stop()
    assert_equals_terminal_history(
        rec, "EURUSD", Market(42, DEFAULT_PROFILES, {"EURUSD": 300}), start_msc
    )
