"""Opening a terminal: the real module lazily, with one clear line when it is missing."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from app.terminal import loader
from app.terminal.loader import TerminalUnavailable, load_metatrader5, open_terminal
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec


@pytest.fixture
def no_metatrader5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Absent on Linux anyway; made certain so the test means the same everywhere."""
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)


@pytest.mark.usefixtures("no_metatrader5")
def test_missing_package_is_one_clear_line_naming_the_extra_and_windows() -> None:
    with pytest.raises(TerminalUnavailable) as info:
        load_metatrader5()
    message = str(info.value)
    assert "\n" not in message
    assert "MetaTrader5" in message
    assert "trading-client[mt5]" in message
    assert "Windows" in message
    assert "simulated terminal" in message
    assert info.value.__cause__ is None
    assert isinstance(info.value, RuntimeError)


@pytest.mark.usefixtures("no_metatrader5")
def test_open_terminal_for_mt5_without_the_package_raises_terminal_unavailable() -> None:
    with pytest.raises(TerminalUnavailable, match="not installed"):
        open_terminal(TerminalSpec(kind="mt5"))


def test_a_broken_install_says_so_and_keeps_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> types.ModuleType:
        raise ImportError("DLL load failed while importing _core")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(TerminalUnavailable, match="installed but failed to import: DLL") as info:
        load_metatrader5()
    assert isinstance(info.value.__cause__, ImportError)


def test_open_terminal_returns_the_real_module_when_present(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = types.ModuleType("MetaTrader5")
    monkeypatch.setitem(sys.modules, "MetaTrader5", fake)
    assert open_terminal(TerminalSpec(kind="mt5")) is fake


def test_open_terminal_builds_the_simulated_one_from_the_spec() -> None:
    api = open_terminal(TerminalSpec(seed=17, rates=(("XAUUSD", 50.0),)))
    assert isinstance(api, SimulatedTerminal)
    assert api.market.seed == 17
    assert api.market.rate("XAUUSD") == 50.0
    assert api.last_error() == (-10004, "No IPC connection")  # not initialised yet


def test_unknown_kind_is_rejected() -> None:
    spec = TerminalSpec(kind="mt4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mt4"):
        open_terminal(spec)


def test_message_constant_is_what_is_raised() -> None:
    assert "pip install 'trading-client[mt5]'" in loader.NOT_INSTALLED
