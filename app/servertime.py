"""A trade server's clock: the time zone a broker stamps its ticks in.

A real MetaTrader 5 server stamps ``time``/``time_msc`` in its *server time*, not in UTC.
Most brokers run at GMT+2 in winter and GMT+3 in summer, switching on the US daylight
saving dates so that New York's 17:00 close is always server midnight ("ny-close"); that
makes a week Monday 00:00 – Friday 24:00 in server time and a D1 bar a trading day.

The project's rule (docs/time.md): **UTC inside.** The worker that talks to a terminal
converts every tick to UTC as it arrives and converts every date it asks for to server
time, here, and nothing downstream ever sees server time, except where the trader sees
it as MT5 shows it (D1/W1 bars at server midnight, the window's clock, exports).

One :class:`ServerTimeZone` answers both directions, vectorised over tick arrays. The
offset is a step function of UTC with a few steps a year; the steps of the years asked
for are found once (hourly probe, then bisection to the second) and cached, so a
conversion is two ``searchsorted`` calls per array.

**The autumn hour.** When the offset drops (GMT+3 → GMT+2), one hour of server time
happens twice. FX and metals are closed then at a ny-close broker (Sunday morning), but
a 24/7 symbol trades through it. Ticks come in true order, so the second pass shows as a
jump back in server time: an ambiguous stamp is read as the *earlier* hour until such a
jump in the same answer, as the later one after it. A terminal that answers with no tick
on one side of the jump leaves the two hours indistinguishable; the earlier is taken.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "NY_CLOSE",
    "UTC_ZONE",
    "ServerTimeZone",
    "detect_offset_s",
    "format_offset",
    "parse_server_time_zone",
]

I64 = npt.NDArray[np.int64]

_HOUR: Final = 3600
#: Detected offsets are rounded to this (some brokers run at +02:30? none known; MT5
#: servers use whole quarter hours like every civil time zone).
DETECT_STEP_S: Final = 900
_NEW_YORK: Final = "America/New_York"
_FIXED = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_YEAR_MIN, _YEAR_MAX = 1970, 2200


@dataclass(frozen=True, slots=True)
class _Steps:
    """Offsets of a span of years: ``offsets[k]`` holds from ``starts[k]`` (UTC s)."""

    starts: tuple[int, ...]
    offsets: tuple[int, ...]


@dataclass(frozen=True)
class ServerTimeZone:
    """A server's time zone, parsed from the setting ``terminals[].server_time_zone``.

    ``key`` is the setting as written (``"ny-close"``, ``"Europe/Athens"``, ``"+02:00"``,
    ``"UTC"``); equal keys are equal zones. Immutable and picklable (it crosses to the
    worker processes inside a spec).
    """

    key: str
    _fixed: int | None = field(default=None, repr=False, compare=False)

    # --- offsets -----------------------------------------------------------------

    def offset_s(self, utc_s: float) -> int:
        """Seconds to add to UTC to get server time, at the UTC instant ``utc_s``."""
        if self._fixed is not None:
            return self._fixed
        starts, offsets = self._steps_around(int(utc_s), int(utc_s))
        return offsets[max(0, bisect.bisect_right(starts, int(utc_s)) - 1)]

    def is_fixed(self) -> bool:
        return self._fixed is not None

    def transitions(self, from_utc_s: int, to_utc_s: int) -> list[tuple[int, int, int]]:
        """``(utc_s, offset_before, offset_after)`` of every switch in ``[from, to)``."""
        if self._fixed is not None:
            return []
        starts, offsets = self._steps_around(from_utc_s, to_utc_s)
        return [
            (starts[k], offsets[k - 1], offsets[k])
            for k in range(1, len(starts))
            if from_utc_s <= starts[k] < to_utc_s
        ]

    # --- UTC → server ----------------------------------------------------------------

    def to_server_s(self, utc_s: int) -> int:
        """A UTC second as the server's clock reads it (the ``date_from`` to ask for)."""
        return utc_s + self.offset_s(utc_s)

    def to_server_ms(self, utc_ms: I64) -> I64:
        """Stamp UTC milliseconds in server time (what a terminal of this zone returns)."""
        utc_ms = np.asarray(utc_ms, dtype=np.int64)
        if self._fixed is not None or not len(utc_ms):
            return utc_ms + (self._fixed or 0) * 1000
        lo, hi = int(utc_ms.min()) // 1000, int(utc_ms.max()) // 1000
        starts, offsets = self._steps_around(lo, hi)
        k = np.searchsorted(np.asarray(starts, np.int64) * 1000, utc_ms, side="right") - 1
        return utc_ms + np.asarray(offsets, np.int64)[np.maximum(k, 0)] * 1000

    # --- server → UTC ----------------------------------------------------------------

    def to_utc_s(self, server_s: int, *, later: bool = False) -> int:
        """A server-time second in UTC; in the autumn hour the earlier pass unless ``later``."""
        utc = self.to_utc_ms(np.array([server_s * 1000], np.int64), later=later)
        return int(utc[0]) // 1000

    def to_utc_ms(self, server_ms: I64, *, later: bool = False) -> I64:
        """Server-time milliseconds of ticks *in true order* → UTC milliseconds.

        An ambiguous stamp (the autumn hour) is the earlier pass until the answer jumps
        back in server time, the later pass after it (the module doc); ``later`` reads
        every ambiguous stamp as the later pass (the end of a requested range).
        A stamp in the spring gap (a server time that never happened) is read with the
        offset after the switch, as the terminal's own clock would have been.
        """
        server_ms = np.asarray(server_ms, dtype=np.int64)
        if self._fixed is not None or not len(server_ms):
            return server_ms - (self._fixed or 0) * 1000
        lo = int(server_ms.min()) // 1000 - 14 * _HOUR
        hi = int(server_ms.max()) // 1000 + 14 * _HOUR
        starts_t, offsets_t = self._steps_around(lo, hi)
        starts = np.asarray(starts_t, np.int64)
        offsets = np.asarray(offsets_t, np.int64)
        # Segment k covers server time [starts[k] + off[k], starts[k+1] + off[k]).
        seg_begin = (starts + offsets) * 1000
        seg_end = np.append(starts[1:] + offsets[:-1], np.iinfo(np.int64).max // 1000) * 1000
        k_late = np.maximum(np.searchsorted(seg_begin, server_ms, side="right") - 1, 0)
        k_early = np.minimum(np.searchsorted(seg_end, server_ms, side="right"), len(starts) - 1)
        k = k_early
        ambiguous = k_late > k_early
        if later:
            k = np.where(ambiguous, k_late, k_early)
        elif ambiguous.any():
            # A jump back in server time marks the second pass of the hour it falls in.
            back = np.concatenate(([False], server_ms[1:] < server_ms[:-1]))
            jumps = np.cumsum(back)
            idx = np.flatnonzero(ambiguous)
            first_of_hour: dict[int, int] = {}
            for i in idx:  # few distinct autumn hours per answer
                first_of_hour.setdefault(int(k_late[i]), int(i))
            firsts = np.array([first_of_hour[int(kk)] for kk in k_late[idx]], np.int64)
            second_pass = jumps[idx] > jumps[firsts]
            k = k_early.copy()
            k[idx[second_pass]] = k_late[idx[second_pass]]
        # The spring gap: k_early > k_late; the offset after the switch applies.
        return server_ms - offsets[k] * 1000

    # --- calendar ----------------------------------------------------------------------

    def server_midnight_utc_s(self, utc_s: int) -> int:
        """UTC second at which the server day containing ``utc_s`` began (D1 bar open)."""
        server = self.to_server_s(utc_s)
        midnight_server = server - server % 86_400
        return self.to_utc_s(midnight_server, later=False)

    def label(self, utc_s: float | None = None) -> str:
        """``ny-close (GMT+2)``: the setting and, when given an instant, the offset then."""
        if utc_s is None:
            return self.key
        return f"{self.key} ({format_offset(self.offset_s(utc_s))})"

    def _steps_around(
        self, from_utc_s: int, to_utc_s: int
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        y0 = _year_of(from_utc_s) - 1
        y1 = _year_of(to_utc_s) + 1
        steps = _steps(self.key, max(y0, _YEAR_MIN), min(max(y1, y0), _YEAR_MAX))
        return steps.starts, steps.offsets


def format_offset(offset_s: int) -> str:
    """``GMT+2``, ``GMT-3:30``, ``GMT`` — as brokers name their server time."""
    if offset_s == 0:
        return "GMT"
    sign = "+" if offset_s > 0 else "-"
    h, m = divmod(abs(offset_s) // 60, 60)
    return f"GMT{sign}{h}" + (f":{m:02d}" if m else "")


def _year_of(utc_s: int) -> int:
    clamped = min(max(utc_s, -62_135_596_800 + 86_400), 253_402_300_799 - 86_400)
    return dt.datetime.fromtimestamp(clamped, dt.UTC).year


def _zone_offset(key: str, utc_s: int) -> int:
    """Offset of zone ``key`` at ``utc_s`` (not fixed ones), through zoneinfo."""
    instant = dt.datetime.fromtimestamp(utc_s, dt.UTC)
    if key == "ny-close":
        ny = instant.astimezone(zoneinfo.ZoneInfo(_NEW_YORK))
        return 3 * _HOUR if ny.dst() else 2 * _HOUR
    off = instant.astimezone(zoneinfo.ZoneInfo(key)).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


@functools.lru_cache(maxsize=64)
def _steps(key: str, year0: int, year1: int) -> _Steps:
    """Offset steps from 1 Jan ``year0`` to the end of ``year1``: hourly probes, bisected."""
    t = int(dt.datetime(year0, 1, 1, tzinfo=dt.UTC).timestamp())
    end = int(dt.datetime(year1 + 1, 1, 1, tzinfo=dt.UTC).timestamp())
    starts, offsets = [t], [_zone_offset(key, t)]
    while t < end:
        nxt = t + _HOUR
        off = _zone_offset(key, nxt)
        if off != offsets[-1]:
            lo, hi = t, nxt  # offset(lo) == previous, offset(hi) == new
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _zone_offset(key, mid) == offsets[-1]:
                    lo = mid
                else:
                    hi = mid
            starts.append(hi)
            offsets.append(off)
        t = nxt
    return _Steps(tuple(starts), tuple(offsets))


def parse_server_time_zone(text: str) -> ServerTimeZone:
    """The setting's value → a zone, or ``ValueError`` with one line saying what is accepted.

    Accepted: ``"ny-close"`` (GMT+2/+3 on US daylight saving dates), an IANA name
    (``"Europe/Athens"``, ``"UTC"``), or a fixed offset (``"+02:00"``, ``"GMT+3"``, ``"-0530"``).
    """
    key = text.strip()
    if key.lower() in ("ny-close", "nyclose", "new-york-close"):
        return NY_CLOSE
    if key.upper() in ("UTC", "GMT", "Z"):
        return UTC_ZONE
    m = _FIXED.match(key)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes >= 60 or minutes % 15:
            raise ValueError(
                f"server time zone {text!r}: an offset is at most ±14:00 in quarter hours"
            )
        offset = (hours * _HOUR + minutes * 60) * (-1 if m.group(1) == "-" else 1)
        return ServerTimeZone(f"{m.group(1)}{hours:02d}:{minutes:02d}", offset)
    try:
        zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"server time zone {text!r} is unknown: use 'ny-close', an IANA name such as "
            "'Europe/Athens' or 'UTC', or an offset such as '+02:00'"
        ) from None
    return ServerTimeZone(key)


def detect_offset_s(server_ms: int, utc_ms: int) -> int:
    """The server's offset from a fresh tick's stamp and the UTC clock, in quarter hours.

    Only meaningful for a tick a few seconds old (the caller checks freshness): the
    rounding absorbs the tick's age and clock skew up to ±7.5 minutes.
    """
    return round((server_ms - utc_ms) / 1000 / DETECT_STEP_S) * DETECT_STEP_S


NY_CLOSE: Final = ServerTimeZone("ny-close")
UTC_ZONE: Final = ServerTimeZone("UTC", 0)
