"""Access to a MetaTrader 5 terminal: the real module, or a deterministic simulation."""

from app.terminal.api import MT5Api
from app.terminal.loader import TerminalUnavailable, load_metatrader5, open_terminal
from app.terminal.market import DEFAULT_PROFILES, Market, SymbolProfile
from app.terminal.simulated import MAX_TICKS_PER_CALL, FaultMode, SimulatedTerminal, write_fault
from app.terminal.spec import TerminalSpec
from app.terminal.types import AccountInfo, SymbolInfo, TerminalInfo, Tick

__all__ = [
    "DEFAULT_PROFILES",
    "MAX_TICKS_PER_CALL",
    "AccountInfo",
    "FaultMode",
    "MT5Api",
    "Market",
    "SimulatedTerminal",
    "SymbolInfo",
    "SymbolProfile",
    "TerminalInfo",
    "TerminalSpec",
    "TerminalUnavailable",
    "Tick",
    "load_metatrader5",
    "open_terminal",
    "write_fault",
]
