"""Which server time zone each captured symbol is shown in: the one place that answers.

Inside, every time is UTC (docs/time.md). Where the trader sees time as MT5 shows it
(bars at server boundaries, the window's clock, exports) the symbol's *terminal* decides
the zone: the setting ``terminals[].server_time_zone`` (``TerminalSpec.zone()``), or, for
a real terminal left to detection, the zone its worker reports when it starts streaming
(``info["server_time_zone"]`` in the "streaming" status). Until a detected zone is
reported, :meth:`ServerZones.zone` is ``None``: the window shows UTC and says "server
time unknown", bars are cut in UTC, and an export says which zone it used.

A symbol captured by two terminals takes the zone of the first one in the settings (the
collector keys ticks by symbol only).

Written on the event loop (the pool's status callback) and read on it (collector, the
window's render timer): no lock. An export in a worker thread is handed its zone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.servertime import UTC_ZONE, ServerTimeZone, format_offset, parse_server_time_zone
from app.terminal.spec import TerminalSpec

__all__ = ["ServerClockText", "ServerZones", "server_clock_text"]

log = logging.getLogger(__name__)


class ServerZones:
    """Terminal → server zone, symbol → terminal; updated by the workers' reports.

    ``version`` grows on every change, so a reader (the collector) can notice a newly
    detected zone with one integer comparison per batch.
    """

    def __init__(self, terminals: Iterable[tuple[str, ServerTimeZone | None, Iterable[str]]]):
        self._zones: dict[str, ServerTimeZone | None] = {}
        self._terminal_of: dict[str, str] = {}
        for name, zone, symbols in terminals:
            self._zones.setdefault(name, zone)
            for symbol in symbols:
                self._terminal_of.setdefault(symbol, name)
        self.version = 0

    @classmethod
    def from_specs(cls, specs: Iterable[tuple[TerminalSpec, Iterable[str]]]) -> ServerZones:
        """From (terminal spec, its symbols) pairs, e.g. the planned workers."""
        return cls((spec.name, spec.zone(), symbols) for spec, symbols in specs)

    # ---------------------------------------------------------------- reading
    def zone(self, symbol: str) -> ServerTimeZone | None:
        """The zone ``symbol``'s terminal stamps in; ``None`` while not known (or unknown
        symbol)."""
        name = self._terminal_of.get(symbol)
        return None if name is None else self._zones.get(name)

    def zone_or_utc(self, symbol: str) -> ServerTimeZone:
        """The zone to show ``symbol`` in: UTC while the server's zone is not known."""
        return self.zone(symbol) or UTC_ZONE

    def terminal_of(self, symbol: str) -> str | None:
        return self._terminal_of.get(symbol)

    def symbols_of(self, terminal: str) -> list[str]:
        return [s for s, name in self._terminal_of.items() if name == terminal]

    def terminal_zone(self, terminal: str) -> ServerTimeZone | None:
        return self._zones.get(terminal)

    def terminals(self) -> dict[str, ServerTimeZone | None]:
        """Every terminal and its zone (``None``: detected, not reported yet)."""
        return dict(self._zones)

    def clock(self, symbol: str, utc_s: float) -> ServerClockText:
        """The server clock of ``symbol``'s terminal (else the first terminal's)."""
        terminal = self._terminal_of.get(symbol) or next(iter(self._zones), "")
        return server_clock_text(self._zones.get(terminal), utc_s, terminal)

    # ---------------------------------------------------------------- updates
    def add(self, symbol: str, terminal: str) -> None:
        """``symbol`` is now captured from ``terminal`` (a symbol added while running)."""
        if symbol not in self._terminal_of:
            self._terminal_of[symbol] = terminal
            self._zones.setdefault(terminal, None)
            self.version += 1

    def report(self, terminal: str, info: Mapping[str, object]) -> bool:
        """A worker of ``terminal`` reported its zone (its "streaming" status ``info``).

        Returns whether the zone changed. A key that does not parse is logged and
        ignored (the worker is trusted no further than its pipe).
        """
        key = info.get("server_time_zone")
        if not isinstance(key, str) or not key:
            return False
        try:
            zone = parse_server_time_zone(key)
        except ValueError as exc:
            log.warning("terminal %s reported an unusable server time zone: %s", terminal, exc)
            return False
        if self._zones.get(terminal) == zone:
            return False
        log.info("terminal %s: server time %s", terminal, zone.key)
        self._zones[terminal] = zone
        self.version += 1
        return True


@dataclass(frozen=True, slots=True)
class ServerClockText:
    """What the window writes for a server clock: ``Server 14:03:22 (GMT+2)``."""

    text: str
    tooltip: str


def server_clock_text(
    zone: ServerTimeZone | None, utc_s: float, terminal: str = ""
) -> ServerClockText:
    """The server clock of ``zone`` at ``utc_s`` for a status bar; UTC and local time in
    the tooltip."""
    utc = dt.datetime.fromtimestamp(utc_s, dt.UTC)
    where = f" of {terminal}" if terminal else ""
    local = utc.astimezone()
    clocks = f"UTC {utc:%Y-%m-%d %H:%M:%S}\nlocal {local:%Y-%m-%d %H:%M:%S %Z}"
    if zone is None:
        return ServerClockText(
            f"UTC {utc:%H:%M:%S}",
            f"Server time{where} unknown (detected when the terminal streams); showing UTC"
            f"\n{clocks}",
        )
    offset = zone.offset_s(utc_s)
    server = utc + dt.timedelta(seconds=offset)
    return ServerClockText(
        f"Server {server:%H:%M:%S} ({format_offset(offset)})",
        f"Server time{where}: {zone.key}, {format_offset(offset)}\n{clocks}",
    )
