"""The remote terminal against a real ``trading-client terminal serve`` process.

The served module is a :class:`SimulatedTerminal`: every answer is compared with what
that terminal (or its deterministic market) gives in this process.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from app.cli import main
from app.config import TerminalConfig
from app.ports import free_ports
from app.terminal import constants as c
from app.terminal.loader import TerminalUnavailable, open_terminal
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.remote import RemoteTerminal
from app.terminal.remote_doctor import remote_terminal_lines
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec
from app.terminal.types import AccountInfo, SymbolInfo, TerminalInfo, Tick
from app.ticks import TICK_DTYPE
from tests.terminal.served import ServedTerminal

SEED, RATE = 11, 400


@pytest.fixture
def control(tmp_path: Path) -> Path:
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"mode": "ok"}))
    return path


@pytest.fixture
def served(control: Path) -> Iterator[ServedTerminal]:
    """A server of the test's own, with a fault control file."""
    server = ServedTerminal(seed=SEED, rate=RATE, control_file=control).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared() -> Iterator[ServedTerminal]:
    """One server for the tests that neither break nor stall it (starting one takes ~1 s)."""
    server = ServedTerminal(seed=SEED, rate=RATE).start()
    yield server
    server.stop()


def connected(server: ServedTerminal, request_timeout_s: float = 5.0) -> RemoteTerminal:
    t = RemoteTerminal("127.0.0.1", server.port, request_timeout_s=request_timeout_s)
    assert t.initialize(timeout=5_000), t.last_error()
    return t


def test_answers_are_the_simulated_terminals_with_the_projects_types(
    shared: ServedTerminal,
) -> None:
    t = connected(shared)
    local = SimulatedTerminal(SEED, rates=dict.fromkeys(DEFAULT_PROFILES, float(RATE)))
    assert local.initialize()
    assert t.version() == local.version()
    info, account = t.terminal_info(), t.account_info()
    assert isinstance(info, TerminalInfo)
    assert info == local.terminal_info()
    assert isinstance(account, AccountInfo)
    assert account == local.account_info()
    symbols = t.symbols_get()
    assert symbols is not None
    assert all(isinstance(s, SymbolInfo) for s in symbols)
    assert [s.name for s in symbols] == list(DEFAULT_PROFILES)
    assert t.symbols_total() == len(DEFAULT_PROFILES)
    assert t.symbol_select("EURUSD", True)
    assert isinstance(t.symbol_info_tick("EURUSD"), Tick)
    assert t.TICK_FLAG_BID == c.TICK_FLAG_BID
    assert t.RES_E_NOT_FOUND == c.RES_E_NOT_FOUND
    # The terminal's own errors come back as its codes, not as IPC failures.
    assert t.symbol_info("NOSUCH") is None
    assert t.last_error() == (c.RES_E_NOT_FOUND, c.ERROR_TEXT[c.RES_E_NOT_FOUND])
    assert t.copy_ticks_from("NOSUCH", 0, 10, c.COPY_TICKS_ALL) is None
    assert t.last_error()[0] == c.RES_E_INVALID_PARAMS
    # An exception on the server (here: no such function) is an error, not a broken link.
    assert t._invoke("no_such_function") is None
    assert t.last_error()[0] == c.RES_E_INTERNAL_FAIL
    assert "AttributeError" in t.last_error()[1]
    assert t.version() is not None

    start_s = int(time.time()) - 3
    got = t.copy_ticks_from("EURUSD", start_s, 100_000, c.COPY_TICKS_ALL)
    assert got is not None
    assert got.dtype == TICK_DTYPE
    assert got.flags.writeable
    market = Market(SEED, DEFAULT_PROFILES, dict.fromkeys(DEFAULT_PROFILES, float(RATE)))
    expected = market.ticks_range("EURUSD", start_s * 1000, int(got["time_msc"][-1]) + 1)
    assert len(got) > RATE  # three seconds of history at RATE ticks/s
    assert np.array_equal(got, expected[: len(got)])
    ranged = t.copy_ticks_range("GBPUSD", start_s, start_s + 1, c.COPY_TICKS_ALL)
    assert ranged is not None
    truth = market.ticks_range("GBPUSD", start_s * 1000, (start_s + 1) * 1000 + 1)
    assert np.array_equal(ranged, truth)
    t.shutdown()
    assert t.version() is None
    assert t.last_error()[0] == c.RES_E_INTERNAL_FAIL_CONNECT


def test_a_killed_server_is_an_ipc_error_and_a_restarted_one_serves_again(
    served: ServedTerminal,
) -> None:
    t = connected(served)
    assert t.copy_ticks_from("EURUSD", int(time.time()) - 1, 10, c.COPY_TICKS_ALL) is not None
    served.kill()
    began = time.monotonic()
    assert t.copy_ticks_from("EURUSD", int(time.time()) - 1, 10, c.COPY_TICKS_ALL) is None
    assert time.monotonic() - began < 3
    code, text = t.last_error()
    assert code == c.RES_E_INTERNAL_FAIL_CONNECT
    assert "No IPC connection" in text
    # Until the worker initialises again, like the real module after a broken link.
    assert t.symbol_info("EURUSD") is None
    assert not t.initialize(timeout=2_000)  # nobody listens
    assert t.last_error()[0] == c.RES_E_INTERNAL_FAIL_CONNECT
    served.start()
    assert t.initialize(timeout=5_000), t.last_error()
    assert t.copy_ticks_from("EURUSD", int(time.time()) - 1, 10, c.COPY_TICKS_ALL) is not None
    t.shutdown()
    assert served.stop() == 0  # SIGTERM: the server stops cleanly


def test_a_slow_server_times_out_with_the_ipc_timeout_code_and_no_hang(
    served: ServedTerminal, control: Path
) -> None:
    t = connected(served, request_timeout_s=0.5)
    control.write_text(json.dumps({"mode": "stall"}))  # every call of the server now hangs
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the server has read its control file
        began = time.monotonic()
        if t.copy_ticks_from("EURUSD", int(time.time()), 10, c.COPY_TICKS_ALL) is None:
            break
    waited = time.monotonic() - began
    assert 0.4 < waited < 3, waited
    assert t.last_error()[0] == c.RES_E_INTERNAL_FAIL_TIMEOUT
    assert "IPC timeout" in t.last_error()[1]
    # initialize's own timeout is the terminal's: it answers -10005 itself in time.
    fresh = RemoteTerminal("127.0.0.1", served.port, request_timeout_s=0.5)
    began = time.monotonic()
    assert not fresh.initialize(timeout=1_000)
    assert 0.9 < time.monotonic() - began < 4
    assert fresh.last_error()[0] == c.RES_E_INTERNAL_FAIL_TIMEOUT
    control.write_text(json.dumps({"mode": "ok"}))
    assert fresh.initialize(timeout=5_000), fresh.last_error()


def test_a_host_off_this_machine_is_refused_without_the_opt_in() -> None:
    with pytest.raises(ValidationError, match=r"ssh -L 18812:127\.0\.0\.1:18812"):
        TerminalConfig(kind="remote", host="192.0.2.10")
    allowed = TerminalConfig(kind="remote", host="192.0.2.10", allow_remote_code=True)
    assert allowed.to_spec().allow_remote_code
    local = TerminalConfig(kind="remote", host="localhost", port=18813).to_spec()
    assert isinstance(open_terminal(local), RemoteTerminal)
    # A spec made some other way is refused where the worker opens it, and at connect.
    refused = TerminalSpec(kind="remote", host="192.0.2.10")
    with pytest.raises(TerminalUnavailable, match="tunnel it over SSH"):
        open_terminal(refused)
    direct = RemoteTerminal("192.0.2.10")
    assert not direct.initialize(timeout=1_000)
    assert "ssh -L" in direct.last_error()[1]


def test_nothing_listening_fails_fast_with_no_ipc_connection() -> None:
    (port,) = free_ports(1)
    t = RemoteTerminal("127.0.0.1", port)
    began = time.monotonic()
    assert not t.initialize(timeout=60_000)
    assert time.monotonic() - began < 3
    assert t.last_error()[0] == c.RES_E_INTERNAL_FAIL_CONNECT


BAD_ARGUMENTS = [
    (("--port", "http"), "--port must be a whole number"),
    (("--port", "70000"), "--port 70000 is not in 0..65535"),
    (("--host", "0.0.0.0"), "ssh -L 18812:127.0.0.1:18812"),
    (("--server-time-zone", "Mars/Olympus"), "--server-time-zone"),
    (("--rate", "0"), "--rate 0 is not in 1..1000000"),
]


def test_serve_refuses_bad_arguments_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for args, says in BAD_ARGUMENTS:
        assert main(["terminal", "serve", *args]) == 2, args
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert says in lines[0], err
        assert out == ""
    assert "MetaTrader5" not in sys.modules


def test_serve_on_a_port_in_use_says_so_in_one_line(
    shared: ServedTerminal, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["terminal", "serve", "--port", str(shared.port)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert f"cannot listen on 127.0.0.1:{shared.port}" in lines[0]
    assert "MetaTrader5" not in sys.modules


def test_doctor_warns_about_code_execution_and_says_which_servers_answer(
    shared: ServedTerminal,
) -> None:
    (nobody,) = free_ports(1)
    terminals = [
        TerminalConfig(name="up", kind="remote", port=shared.port),
        TerminalConfig(name="down", kind="remote", port=nobody),
        TerminalConfig(name="far", kind="remote", host="192.0.2.10", allow_remote_code=True),
        TerminalConfig(name="sim"),
    ]
    began = time.monotonic()
    lines = remote_terminal_lines(terminals, timeout_s=0.5)
    assert time.monotonic() - began < 5
    by_name: dict[str, list[tuple[str, str]]] = {}
    for level, what, detail, _fix in lines:
        by_name.setdefault(what, []).append((level, detail))
    assert set(by_name) == {"terminal up", "terminal down", "terminal far"}
    up = by_name["terminal up"]
    assert up[0][0] == "warn"
    assert "anyone who can connect can run code as you" in up[0][1]
    assert up[1][0] == "ok"
    assert f"127.0.0.1:{shared.port} answers" in up[1][1]
    assert [level for level, _ in by_name["terminal down"]] == ["warn", "fail"]
    assert "No IPC connection" in by_name["terminal down"][1][1]
    far = by_name["terminal far"]
    assert far[0][0] == "warn"
    assert "another machine" in far[0][1]
    assert far[1][0] == "fail"
