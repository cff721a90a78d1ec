"""Where a worker gets its terminal: the real ``MetaTrader5`` module (native or remote),
the simulated one or a replay.

The real package ships Windows wheels only and is imported lazily, so that the rest of
the client (and its tests) runs anywhere and only a worker configured for a real
terminal needs it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import cast

from app.terminal.api import MT5Api
from app.terminal.export_files import ExportFormatError
from app.terminal.remote import RemoteTerminal, refuse_remote_host
from app.terminal.replay import ReplayTerminal
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec

__all__ = ["TerminalUnavailable", "load_metatrader5", "open_remote", "open_terminal"]

NOT_INSTALLED = (
    "The MetaTrader5 package is not installed (it ships Windows wheels only): "
    "on Windows run pip install 'trading-client[mt5]', or use the simulated terminal"
)


class TerminalUnavailable(RuntimeError):  # noqa: N818 (the name the project uses)
    """The configured terminal cannot be used on this machine; the message says why."""


def load_metatrader5() -> ModuleType:
    """Import the real ``MetaTrader5`` module, or raise :class:`TerminalUnavailable`."""
    try:
        return importlib.import_module("MetaTrader5")
    except ModuleNotFoundError as exc:
        if exc.name != "MetaTrader5":
            raise TerminalUnavailable(
                f"The MetaTrader5 package is installed but a module it needs is missing: {exc}"
            ) from exc
        raise TerminalUnavailable(NOT_INSTALLED) from None
    except ImportError as exc:  # e.g. a DLL that fails to load
        raise TerminalUnavailable(
            f"The MetaTrader5 package is installed but failed to import: {exc}"
        ) from exc


def open_remote(spec: TerminalSpec) -> MT5Api:
    """A :class:`~app.terminal.remote.RemoteTerminal`; rpyc is imported when it connects."""
    refused = refuse_remote_host(spec.host, spec.port, spec.allow_remote_code)
    if refused is not None:
        raise TerminalUnavailable(refused)
    if importlib.util.find_spec("rpyc") is None:
        raise TerminalUnavailable("a remote terminal needs the rpyc package: pip install 'rpyc>=6'")
    return RemoteTerminal.from_spec(spec)


def open_terminal(spec: TerminalSpec) -> MT5Api:
    """The terminal API for ``spec``; it still has to be ``initialize``d by the caller."""
    if spec.kind == "mt5":
        return cast(MT5Api, load_metatrader5())
    if spec.kind == "simulated":
        return SimulatedTerminal.from_spec(spec)
    if spec.kind == "replay":
        try:
            return ReplayTerminal.from_spec(spec)
        except (OSError, ValueError, ExportFormatError) as exc:
            raise TerminalUnavailable(f"cannot replay: {exc}") from exc
    if spec.kind == "remote":
        return open_remote(spec)
    raise ValueError(f"unknown terminal kind {spec.kind!r}")
