"""The simulated market with trading sessions: no ticks while a symbol's market is closed.

A :class:`SessionMarket` is the :class:`~app.terminal.market.Market` with every tick
outside its symbol's open spans (``app/sessions.py``, read in UTC through the terminal's
server zone) removed. Still a pure function of (seed, symbol, time): the spans depend only
on the schedule and the zone, so any process asking for the same span gets the same ticks,
and tests keep comparing a captured stream with ``terminal.market``'s history.

Requests are answered span by span (a weekend is skipped, not generated and thrown
away), so ``copy_ticks_from`` from a Friday cursor on Monday returns Monday's ticks
instead of an empty answer that would never move on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from app.servertime import ServerTimeZone
from app.sessions import SessionBook, TradingHours
from app.terminal.market import Market, SymbolProfile
from app.ticks import TickArray, empty_ticks

__all__ = ["SessionMarket", "market_for"]


class SessionMarket(Market):
    """A :class:`Market` whose symbols only tick inside their trading hours.

    ``hours`` maps symbols to their hours; a symbol not in it trades 24/7.
    """

    def __init__(
        self,
        seed: int,
        profiles: Mapping[str, SymbolProfile],
        rates: Mapping[str, float] | None = None,
        *,
        hours: Mapping[str, TradingHours],
    ) -> None:
        super().__init__(seed, profiles, rates)
        self.hours = dict(hours)

    def _spans_ms(self, symbol: str, from_msc: int, to_msc: int) -> list[tuple[int, int]]:
        """Open spans within ``[from_msc, to_msc)``, in ms, clipped."""
        h = self.hours.get(symbol)
        if h is None:
            return [(from_msc, to_msc)]
        spans = h.open_spans(from_msc // 1000, (to_msc - 1) // 1000 + 1)
        return [(max(a * 1000, from_msc), min(b * 1000, to_msc)) for a, b in spans]

    def ticks_range(self, symbol: str, from_msc: int, to_msc: int) -> TickArray:
        parts: list[TickArray] = []
        for a, b in self._spans_ms(symbol, from_msc, to_msc):
            parts.append(super().ticks_range(symbol, a, b))
        return _concat(parts)

    def ticks_from(
        self, symbol: str, from_msc: int, count: int, until_msc: int, *, mask: int = 0
    ) -> TickArray:
        parts: list[TickArray] = []
        have = 0
        for a, b in self._spans_ms(symbol, from_msc, until_msc):
            if have >= count:
                break
            part = super().ticks_from(symbol, a, count - have, b, mask=mask)
            parts.append(part)
            have += len(part)
        return _concat(parts)

    def last_tick(self, symbol: str, at_msc: int) -> np.void | None:
        """The latest tick before ``at_msc``: while closed, the last one before the close."""
        h = self.hours.get(symbol)
        if h is not None:
            closed_at = h.last_close((at_msc - 1) / 1000)
            if closed_at is not None:
                at_msc = min(at_msc, closed_at * 1000)
            elif not h.is_open((at_msc - 1) / 1000):
                return None  # never open within the look-back
        return super().last_tick(symbol, at_msc)

    def session_fields(self, symbol: str, at_msc: int, tick: np.void | None) -> dict[str, Any]:
        """``SymbolInfo`` fields of the session: ``session_open`` (first bid of the session,
        or of the last one while closed) and, while closed, ``session_close`` (its last bid).

        The Python module has no session schedule fields (``SymbolInfoSessionTrade`` is
        MQL5 only); ``trade_mode`` stays FULL on a closed market, as at a broker.
        """
        first = self.session_open_tick(symbol, at_msc)
        out: dict[str, Any] = {"session_open": float(first["bid"]) if first is not None else 0.0}
        h = self.hours.get(symbol)
        if tick is not None and h is not None and not h.is_open((at_msc - 1) / 1000):
            out["session_close"] = float(tick["bid"])
        return out

    def session_open_tick(self, symbol: str, at_msc: int) -> np.void | None:
        """The first tick of the session holding ``at_msc`` (or of the last one, when
        closed): what ``symbol_info`` reports as ``session_open``."""
        h = self.hours.get(symbol)
        if h is None:
            return None
        s = (at_msc - 1) // 1000
        closed_at = h.last_close(s)
        span = h.current_span(closed_at - 1 if closed_at is not None else s)
        if span is None:
            return None
        first = super().ticks_from(symbol, span[0] * 1000, 1, min(at_msc, span[1] * 1000))
        return first[0].copy() if len(first) else None


def _concat(parts: list[TickArray]) -> TickArray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_ticks()
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def market_for(
    seed: int,
    profiles: Mapping[str, SymbolProfile],
    rates: Mapping[str, float] | None,
    sessions: SessionBook | None,
    zone: ServerTimeZone,
) -> Market:
    """The simulated terminal's market: 24/7 without ``sessions``, else closing by them."""
    if sessions is None:
        return Market(seed, profiles, rates)
    hours = {n: TradingHours(sessions.schedule(n, p.path), zone) for n, p in profiles.items()}
    return SessionMarket(seed, profiles, rates, hours=hours)
