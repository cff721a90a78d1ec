"""The server clock (app/servertime.py) across both DST switches of a year.

Truth is independent of the module: the switch instants are written by hand from the
rules (US: second Sunday of March 02:00 local → first Sunday of November 02:00 local;
EU: last Sundays of March and October at 01:00 UTC), and Europe/Athens is also read from
zoneinfo directly, instant by instant.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from app.servertime import (
    NY_CLOSE,
    UTC_ZONE,
    ServerTimeZone,
    detect_offset_s,
    format_offset,
    parse_server_time_zone,
)

H = 3600


def utc_s(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=dt.UTC).timestamp())


#: 2025: US daylight saving from 9 March 02:00 EST (07:00 UTC) to 2 November 02:00 EDT
#: (06:00 UTC); the EU's from 30 March to 26 October, both at 01:00 UTC.
US_SPRING, US_AUTUMN = utc_s(2025, 3, 9, 7), utc_s(2025, 11, 2, 6)
EU_SPRING, EU_AUTUMN = utc_s(2025, 3, 30, 1), utc_s(2025, 10, 26, 1)
YEAR = (utc_s(2025, 1, 1), utc_s(2026, 1, 1))
ATHENS = parse_server_time_zone("Europe/Athens")
FIXED = parse_server_time_zone("+02:00")


def hand_offset(zone: ServerTimeZone, t: int) -> int:
    """The offset from the rules above, written out (not through the module)."""
    if zone is NY_CLOSE:
        return 3 * H if US_SPRING <= t < US_AUTUMN else 2 * H
    if zone is ATHENS:
        return 3 * H if EU_SPRING <= t < EU_AUTUMN else 2 * H
    if zone is FIXED:
        return 2 * H
    return 0


@pytest.mark.parametrize(
    ("zone", "switches"),
    [
        (NY_CLOSE, [(US_SPRING, 2 * H, 3 * H), (US_AUTUMN, 3 * H, 2 * H)]),
        (ATHENS, [(EU_SPRING, 2 * H, 3 * H), (EU_AUTUMN, 3 * H, 2 * H)]),
        (FIXED, []),
        (UTC_ZONE, []),
    ],
    ids=["ny-close", "athens", "fixed", "utc"],
)
def test_offsets_and_switches_over_a_year(
    zone: ServerTimeZone, switches: list[tuple[int, int, int]]
) -> None:
    assert zone.transitions(*YEAR) == switches
    # Every quarter hour of the year, and one second either side of each switch.
    probes = list(range(YEAR[0], YEAR[1], 900))
    for t, _, _ in switches:
        probes += [t - 1, t, t + 1]
    probes.sort()
    expected = np.array([hand_offset(zone, t) for t in probes], np.int64)
    utc_ms = np.array(probes, np.int64) * 1000
    assert np.array_equal(zone.to_server_ms(utc_ms) - utc_ms, expected * 1000)
    assert [zone.offset_s(t) for t in probes[::97]] == expected[::97].tolist()
    if zone is ATHENS:  # and zoneinfo itself agrees, instant by instant
        athens = zoneinfo.ZoneInfo("Europe/Athens")
        for t in probes[::13]:
            off = dt.datetime.fromtimestamp(t, dt.UTC).astimezone(athens).utcoffset()
            assert off is not None
            assert zone.offset_s(t) == off.total_seconds()
    # Round trip: a year of ticks (a 24/7 symbol) in true order comes back exactly,
    # the autumn hour included (its second pass is marked by the jump back).
    assert np.array_equal(zone.to_utc_ms(zone.to_server_ms(utc_ms)), utc_ms)


def test_the_autumn_hour_is_read_by_the_jump_back() -> None:
    # A tick every 10 s from an hour before the switch to an hour after it.
    utc_ms = np.arange(US_AUTUMN - H, US_AUTUMN + H, 10, dtype=np.int64) * 1000
    server = NY_CLOSE.to_server_ms(utc_ms)
    back = np.flatnonzero(np.diff(server) < 0)
    assert len(back) == 1  # the stamps go back once, by an hour
    assert server[back[0]] - server[back[0] + 1] == H * 1000 - 10_000
    # The first tick after the switch (06:00 UTC) is stamped 08:00 server time, again.
    assert server[back[0] + 1] == utc_s(2025, 11, 2, 8) * 1000
    assert np.array_equal(NY_CLOSE.to_utc_ms(server), utc_ms)
    # One stamp alone: the earlier pass, or the later one when asked (a range's end).
    half_past = utc_s(2025, 11, 2, 8, 30)  # 08:30 server: 05:30 (+3) or 06:30 UTC (+2)
    assert NY_CLOSE.to_utc_s(half_past) == utc_s(2025, 11, 2, 5, 30)
    assert NY_CLOSE.to_utc_s(half_past, later=True) == utc_s(2025, 11, 2, 6, 30)
    # The limit: an answer holding only second-pass ticks (no jump) reads as the first.
    second_pass = server[back[0] + 1 : back[0] + 50]
    assert np.array_equal(
        NY_CLOSE.to_utc_ms(second_pass), utc_ms[back[0] + 1 : back[0] + 50] - H * 1000
    )


def test_the_spring_gap() -> None:
    # 9 March 2025 at a ny-close server: 09:00 (+2) is followed by 10:00 (+3).
    utc_ms = np.arange(US_SPRING - H, US_SPRING + H, 10, dtype=np.int64) * 1000
    server = NY_CLOSE.to_server_ms(utc_ms)
    jumps = np.diff(server)
    assert int(jumps.max()) == (H + 10) * 1000  # one step of an hour and 10 s forward
    assert np.array_equal(NY_CLOSE.to_utc_ms(server), utc_ms)
    # A server second that never happened (09:30) is read with the offset after it.
    never = utc_s(2025, 3, 9, 9, 30)
    assert never * 1000 not in server
    assert NY_CLOSE.to_utc_s(never) == never - 3 * H
    assert NY_CLOSE.to_server_s(US_SPRING - 1) == utc_s(2025, 3, 9, 9) - 1
    assert NY_CLOSE.to_server_s(US_SPRING) == utc_s(2025, 3, 9, 10)


def test_server_midnight_is_new_york_five_pm() -> None:
    winter, summer = utc_s(2025, 1, 15, 12), utc_s(2025, 7, 15, 12)
    assert NY_CLOSE.server_midnight_utc_s(winter) == utc_s(2025, 1, 14, 22)
    assert NY_CLOSE.server_midnight_utc_s(summer) == utc_s(2025, 7, 14, 21)
    ny = zoneinfo.ZoneInfo("America/New_York")
    for t in (winter, summer):
        five_pm = dt.datetime.fromtimestamp(NY_CLOSE.server_midnight_utc_s(t), ny)
        assert (five_pm.hour, five_pm.minute) == (17, 0)


def test_parse_and_labels() -> None:
    assert parse_server_time_zone("ny-close") is NY_CLOSE
    assert parse_server_time_zone("UTC") is UTC_ZONE
    assert parse_server_time_zone("GMT+3") == parse_server_time_zone("+03:00")
    assert parse_server_time_zone("+03:00").offset_s(0) == 3 * H
    assert parse_server_time_zone("-0530").offset_s(0) == -(5 * H + 1800)
    assert ATHENS.key == "Europe/Athens"
    for bad in ("+15:00", "+02:10", "Mars/Olympus", ""):
        with pytest.raises(ValueError, match="server time zone"):
            parse_server_time_zone(bad)
    assert [format_offset(o) for o in (0, 2 * H, -(3 * H + 1800))] == [
        "GMT",
        "GMT+2",
        "GMT-3:30",
    ]
    assert NY_CLOSE.label(utc_s(2025, 7, 1)) == "ny-close (GMT+3)"


def test_detect_offset_rounds_to_a_quarter_hour() -> None:
    now = utc_s(2025, 7, 1) * 1000
    assert detect_offset_s(now + 3 * H * 1000 - 4_000, now) == 3 * H  # a 4 s old tick
    assert detect_offset_s(now + 2 * H * 1000 + 90_000, now) == 2 * H  # clock 90 s behind
    assert detect_offset_s(now - 5 * H * 1000 - 1800_000, now) == -(5 * H + 1800)
