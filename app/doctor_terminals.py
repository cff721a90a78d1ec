"""``trading-client doctor``'s checks of the terminals: the MetaTrader5 module, each
terminal's server clock, and the remote terminals' servers.

Kept apart from :mod:`app.doctor` (the machine, the settings, the backend, the disk) so
that what the doctor knows about terminals is in one place; :mod:`app.doctor` runs
these in its order.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

from app.config import ClientConfig
from app.doctor_check import Check
from app.terminal.loader import TerminalUnavailable, load_metatrader5
from app.terminal.remote_doctor import remote_terminal_lines

__all__ = ["check_metatrader5", "check_remote_terminals", "check_server_time"]


def check_metatrader5(config: ClientConfig) -> list[Check]:
    real = [t for t in config.terminals if t.kind == "mt5"]
    installed = importlib.util.find_spec("MetaTrader5") is not None
    if not real:
        kinds = ", ".join(sorted({t.kind for t in config.terminals})) or "none"
        if installed:
            return [Check("ok", "MetaTrader5", f"installed; unused (terminals: {kinds})")]
        where = (
            "not installed (pip install 'trading-client[mt5]' to connect a real terminal)"
            if sys.platform == "win32"
            else f"not available on {sys.platform} (Windows only)"
        )
        return [Check("ok", "MetaTrader5", f"{where}; terminals: {kinds}")]
    names = ", ".join(t.name for t in real)
    try:
        module = load_metatrader5()
    except TerminalUnavailable as exc:
        fix = (
            "pip install 'trading-client[mt5]'"
            if sys.platform == "win32"
            else "a real terminal needs Windows; use kind 'simulated' or 'replay' here"
        )
        return [Check("fail", "MetaTrader5", f"terminals {names} need it: {exc}", fix)]
    version = getattr(module, "__version__", "?")
    checks = [Check("ok", "MetaTrader5", f"{version} imported; used by {names}")]
    for t in real:
        if t.path is not None and not Path(t.path).exists():
            checks.append(
                Check(
                    "warn",
                    f"terminal {t.name}",
                    f"{t.path} does not exist",
                    f"correct terminals[{t.name}].path to the terminal64.exe of the install",
                )
            )
    return checks


def check_server_time(config: ClientConfig, now_s: float | None = None) -> list[Check]:
    """Each terminal's server clock: the one set (and its offset now) or "detected".

    Why: a wrong server time zone shifts every tick by hours (docs/time.md); the trader
    should see which clock each terminal is read with before a capture starts.
    """
    now = time.time() if now_s is None else now_s
    checks = []
    for t in config.terminals:
        zone = t.to_spec(anchor_ms=0).zone()
        if zone is None:
            detail = (
                "detected at connect from a fresh tick (a closed market delays it; "
                "terminals[].server_time_zone sets it)"
            )
        else:
            source = "set" if t.server_time_zone else "default"
            detail = f"{zone.label(now)}, {source}"
        checks.append(Check("ok", f"terminal {t.name} server time", detail))
    return checks


def check_remote_terminals(config: ClientConfig, timeout: float) -> list[Check]:
    """Each remote terminal's server (:mod:`app.terminal.remote_doctor`), as checks."""
    return [Check(*line) for line in remote_terminal_lines(config.terminals, timeout)]
