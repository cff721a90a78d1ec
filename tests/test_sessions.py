"""Trading schedules in server time, asked in UTC: ny-close weeks across both DST switches.

The independent truth is New York's clock (zoneinfo): at a ny-close broker the FX week
opens at server Monday 00:00 = Sunday 17:00 New York and closes at Friday 23:57 server =
Friday 16:57 New York, whatever the season.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import numpy as np
import pytest

from app.config import ClientConfig
from app.runtime import Runtime
from app.servertime import NY_CLOSE, parse_server_time_zone
from app.sessions import (
    Holiday,
    MarketHours,
    SessionBook,
    TradingHours,
    WeeklySchedule,
    parse_days,
    parse_hhmm,
    symbol_class,
)

NY = zoneinfo.ZoneInfo("America/New_York")
BOOK = SessionBook.default()
FX = TradingHours(BOOK.schedule("EURUSD", "Forex\\EURUSD"), NY_CLOSE)
GOLD = TradingHours(BOOK.schedule("XAUUSD", "Metals\\XAUUSD"), NY_CLOSE)
BTC = TradingHours(BOOK.schedule("BTCUSD", "Crypto\\BTCUSD"), NY_CLOSE)


def ny(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=NY).timestamp())


# Sundays the FX week opens on: a winter week, the week of the spring switch (Sunday
# 8 March 2026, 02:00 NY), a summer week, the week of the autumn switch (1 Nov 2026).
WEEKS = [(2026, 1, 11), (2026, 3, 8), (2026, 7, 12), (2026, 11, 1)]


@pytest.mark.parametrize("sunday", WEEKS)
def test_the_fx_week_opens_sunday_17_00_and_closes_friday_16_57_new_york(
    sunday: tuple[int, int, int],
) -> None:
    y, mo, d = sunday
    opens = ny(y, mo, d, 17)
    friday = dt.date(y, mo, d) + dt.timedelta(days=5)
    closes = ny(friday.year, friday.month, friday.day, 16, 57)
    spans = FX.open_spans(opens - 3 * 86_400, closes + 3 * 86_400)
    assert (opens, closes) in spans  # one span through the week: midnights do not cut it
    assert not FX.is_open(opens - 1)
    assert FX.is_open(opens)
    assert FX.is_open(closes - 1)
    assert not FX.is_open(closes)
    assert FX.next_open(opens - 3600) == opens
    assert FX.next_close(opens + 3600) == closes
    assert FX.last_close(closes + 3600) == closes
    # Gold opens an hour later and breaks daily from 16:57 to 18:00 New York.
    gold = GOLD.open_spans(opens, closes)
    assert gold[0] == (ny(y, mo, d, 18), ny(y, mo, d + 1, 16, 57))
    assert len(gold) == 5
    for (_, close), (nxt, _) in itertools.pairwise(gold):
        assert nxt - close == 63 * 60
    # Bitcoin never closes, not even in the hour the server clock repeats or skips.
    assert BTC.open_spans(opens - 7 * 86_400, closes) == [(opens - 7 * 86_400, closes)]
    assert BTC.next_close(opens) is None


def test_open_mask_agrees_with_the_spans_to_the_millisecond() -> None:
    start = ny(2026, 10, 30, 16, 50)  # Friday before the autumn switch
    end = ny(2026, 11, 2, 19, 0)
    rng = np.random.default_rng(1)
    t = np.sort(rng.integers(start * 1000, end * 1000, 20_000)).astype(np.int64)
    t = np.concatenate([t, [ny(2026, 11, 1, 17) * 1000 - 1, ny(2026, 11, 1, 17) * 1000]])
    spans = GOLD.open_spans(start, end)
    expected = np.zeros(len(t), bool)
    for a, b in spans:
        expected |= (t >= a * 1000) & (t < b * 1000)
    assert np.array_equal(GOLD.open_mask(t), expected)
    assert GOLD.open_mask(t[-2:]).tolist() == [False, False]  # gold opens at 18:00 NY
    assert FX.open_mask(t[-2:]).tolist() == [False, True]
    closed = GOLD.closed_spans(start, end)
    covered = sorted(spans + closed)
    assert covered[0][0] == start
    assert covered[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))


def test_holidays_close_a_day_or_shorten_it() -> None:
    christmas = dt.date(2026, 12, 25)  # a Friday
    early = dt.date(2026, 12, 24)
    sched = WeeklySchedule.of(
        [("Mon-Thu", "00:00", "24:00"), ("Fri", "00:00", "23:57")],
        [Holiday(christmas), Holiday(early, ((0, parse_hhmm("20:00")),))],
    )
    h = TradingHours(sched, NY_CLOSE)
    # Server 24 Dec 20:00 = 13:00 New York; the week ends there.
    assert h.next_close(ny(2026, 12, 22, 12)) == ny(2026, 12, 24, 13)
    assert not h.is_open(ny(2026, 12, 25, 9))
    assert h.next_open(ny(2026, 12, 24, 13)) == ny(2026, 12, 27, 17)


def test_fixed_and_utc_servers_shift_the_same_schedule() -> None:
    utc = TradingHours(BOOK.schedule("EURUSD"), parse_server_time_zone("UTC"))
    plus3 = TradingHours(BOOK.schedule("EURUSD"), parse_server_time_zone("+03:00"))
    monday = int(dt.datetime(2026, 1, 12, tzinfo=dt.UTC).timestamp())
    assert utc.next_open(monday - 3600) == monday
    assert plus3.next_open(monday - 6 * 3600) == monday - 3 * 3600


def test_symbol_classes_and_the_market_hours_book() -> None:
    assert symbol_class("EURUSD", "Forex\\Majors\\EURUSD") == "forex"
    assert symbol_class("GOLD", "Metals\\GOLD") == "metals"
    assert symbol_class("XAGUSD") == "metals"
    assert symbol_class("ETHUSD") == "crypto"
    assert symbol_class("US500") == "forex"  # unknown: the commonest hours
    hours = MarketHours.build(BOOK, {"EURUSD": NY_CLOSE, "BTCUSD": NY_CLOSE})
    saturday = ny(2026, 1, 17, 12)
    assert hours.closed(saturday) == frozenset({"EURUSD"})
    assert hours.is_open("UNKNOWN", saturday)  # never silenced
    assert hours.open_since("EURUSD", ny(2026, 1, 12, 9)) == ny(2026, 1, 11, 17)
    assert hours.open_since("BTCUSD", saturday) is None
    # Looking back 2 open hours from Monday 00:10 server reaches Friday afternoon.
    monday = ny(2026, 1, 18, 17, 10)
    assert hours.reach_back("EURUSD", monday, 7200) == ny(2026, 1, 16, 15, 7)
    assert hours.reach_back("BTCUSD", monday, 7200) == monday - 7200
    assert hours.closed_until("EURUSD", saturday) == ny(2026, 1, 18, 17)
    off = MarketHours.build(BOOK, {"EURUSD": NY_CLOSE}, enabled=False)
    assert off.closed(saturday) == frozenset()
    assert off.is_open("EURUSD", saturday)


@pytest.mark.parametrize(
    ("text", "error"),
    [("Mon-Fry", "weekday names"), ("Fri-Mon", "forwards"), ("Mo-Tu-We", "weekday names")],
)
def test_bad_days_say_what_is_accepted(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_days(text)


def test_days_and_times_parse() -> None:
    assert parse_days("Mon-Wed,Sun") == (0, 1, 2, 6)
    assert parse_hhmm("24:00") == 1440
    for bad in ("24:01", "7:00", "12:60", "noon"):
        with pytest.raises(ValueError, match="HH:MM"):
            parse_hhmm(bad)
    with pytest.raises(ValueError, match="open before it closes"):
        WeeklySchedule.of([("Mon", "10:00", "09:00")])


def test_the_client_and_the_simulated_terminal_agree_unless_configured_apart() -> None:
    default = ClientConfig()
    spec = default.terminals[0].to_spec()
    assert spec.sessions == default.sessions.book() == SessionBook.default()
    edited = ClientConfig.model_validate(
        {
            "sessions": {
                "forex": [{"days": "Mon-Fri", "open": "01:00", "close": "23:00"}],
                "symbols": {"GOLD": "metals"},
                "holidays": [{"date": "2026-01-14", "symbols": ["EURUSD"]}],
            }
        }
    )
    book = edited.sessions.book()
    assert edited.terminals[0].to_spec().sessions == SessionBook.default()  # the broker's
    assert book != SessionBook.default()
    wednesday = ny(2026, 1, 14, 9)
    assert not TradingHours(book.schedule("EURUSD"), NY_CLOSE).is_open(wednesday)
    assert TradingHours(book.schedule("GBPUSD"), NY_CLOSE).is_open(wednesday)
    assert book.schedule("GOLD") == book.schedule("XAUUSD")
    always = ClientConfig.model_validate({"terminals": [{"market_hours": "always"}]})
    assert always.terminals[0].to_spec().sessions is None


def test_a_terminal_told_always_is_never_called_closed_by_the_client() -> None:
    """A simulated terminal with ``market_hours: "always"`` ticks on Saturday; the
    Market Watch, alerts and chart must not say "closed" over live ticks."""
    saturday = ny(2026, 1, 17, 12)
    always = ClientConfig.model_validate(
        {"terminals": [{"market_hours": "always"}], "backend": {"enabled": False}}
    )
    assert Runtime(always).market_hours.closed(saturday) == frozenset()
    sessions = ClientConfig.model_validate({"backend": {"enabled": False}})
    closed = Runtime(sessions).market_hours.closed(saturday)
    assert "EURUSD" in closed
    assert "BTCUSD" not in closed
