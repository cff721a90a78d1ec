"""`run`'s summary says a worker's 0 ticks are a closed market, not a fault."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from types import SimpleNamespace
from typing import Any, cast

from app.cli import _closed_note
from app.servertime import NY_CLOSE
from app.sessions import MarketHours, SessionBook
from app.zones import ServerZones

NY = zoneinfo.ZoneInfo("America/New_York")


def _runtime() -> Any:
    symbols = {"EURUSD": NY_CLOSE, "XAUUSD": NY_CLOSE, "BTCUSD": NY_CLOSE}
    hours = MarketHours.build(SessionBook.default(), symbols)
    zones = ServerZones([("sim", NY_CLOSE, list(symbols))])
    return SimpleNamespace(market_hours=hours, zones=zones)


def test_a_closed_market_is_named_with_its_opening_in_server_time() -> None:
    saturday_noon_ny = dt.datetime(2026, 12, 5, 12, tzinfo=NY).timestamp()
    rt = _runtime()
    # Sunday 17:00 New York is Monday 00:00 at a ny-close broker: 29 h from Saturday noon.
    note = _closed_note(cast(Any, rt), ("EURUSD",), saturday_noon_ny)
    assert note == "; market closed, opens Mon 00:00 server time (in 29 h 0 min)"
    gold = _closed_note(cast(Any, rt), ("XAUUSD",), saturday_noon_ny)
    assert gold == "; market closed, opens Mon 01:00 server time (in 30 h 0 min)"
    assert _closed_note(cast(Any, rt), ("BTCUSD",), saturday_noon_ny) == ""  # 24/7
    # A worker with one open symbol is not "closed".
    assert _closed_note(cast(Any, rt), ("EURUSD", "BTCUSD"), saturday_noon_ny) == ""
    tuesday = dt.datetime(2026, 12, 8, 12, tzinfo=NY).timestamp()
    assert _closed_note(cast(Any, rt), ("EURUSD",), tuesday) == ""
