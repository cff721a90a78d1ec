"""Market sessions: when a symbol trades, in the broker's server time, asked in UTC.

A broker publishes its trading hours in *server time* ("Mon 00:00 – Fri 23:57"), and at a
ny-close broker that week always starts at server Monday 00:00 = Sunday 17:00 New York,
summer or winter. So the schedule is kept in server time, exactly as published, and the
:class:`ServerTimeZone` (``app/servertime.py``) turns it into UTC spans only when a
question is asked: everything inside the app is UTC (docs/time.md).

Why the client needs it: a quiet weekend is not a stall. The "no tick" alert, the
Market Watch and the history backfill ask :class:`MarketHours` whether a symbol's
market is open, so a closed market is shown as closed and a weekend without ticks is
neither alerted on nor taken for a hole. The simulated terminal closes its market by
the same defaults, so the two agree unless the user configures them apart.

Pure (no I/O, no clock): every query takes the instant it is about.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from app.servertime import NY_CLOSE, ServerTimeZone

__all__ = [
    "DEFAULT_CLASS_HOURS",
    "SYMBOL_CLASSES",
    "WEEKDAYS",
    "Holiday",
    "MarketHours",
    "SessionBook",
    "TradingHours",
    "WeeklySchedule",
    "parse_days",
    "parse_hhmm",
    "symbol_class",
]

WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SYMBOL_CLASSES: Final = ("forex", "metals", "crypto")
_DAY: Final = 86_400
_MINUTES_PER_DAY: Final = 1_440
#: 1970-01-01 was a Thursday: weekday of epoch day ``d`` is ``(d + 3) % 7`` (Mon = 0).
_EPOCH_WEEKDAY: Final = 3
#: How far ``next_open``/``next_close`` look ahead before saying "never" (holidays may
#: close whole weeks; a schedule with no hours at all is never open).
_LOOKAHEAD_WEEKS: Final = 8
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_METALS: Final = ("XAU", "XAG", "XPT", "XPD")
_CRYPTO: Final = ("BTC", "ETH", "LTC", "XRP", "BCH", "SOL", "ADA", "DOGE", "DOT")

I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Minutes = tuple[int, int]
"""An open range within a server day: (open minute, close minute), close up to 1440."""


def parse_hhmm(text: str) -> int:
    """``"23:57"`` → minutes after server midnight; ``"24:00"`` is the end of the day."""
    m = _HHMM.match(text.strip())
    if m is None or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"time {text!r} is not HH:MM between 00:00 and 24:00")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_days(text: str) -> tuple[int, ...]:
    """``"Mon"``, ``"Mon-Fri"`` or ``"Sat,Sun"`` → weekday numbers (Mon = 0)."""
    names = [w.lower() for w in WEEKDAYS]
    out: list[int] = []
    for part in text.split(","):
        ends = [p.strip()[:3].lower() for p in part.split("-")]
        if len(ends) > 2 or any(e not in names for e in ends):
            raise ValueError(
                f"days {text!r}: use weekday names {', '.join(WEEKDAYS)}, a range such as "
                "'Mon-Fri' or a list such as 'Sat,Sun'"
            )
        first, last = names.index(ends[0]), names.index(ends[-1])
        if last < first:
            raise ValueError(f"days {text!r}: a range runs forwards within a week (Mon-Fri)")
        out.extend(range(first, last + 1))
    return tuple(sorted(set(out)))


def _check_range(open_min: int, close_min: int) -> None:
    if not 0 <= open_min < close_min <= _MINUTES_PER_DAY:
        raise ValueError(
            f"session {open_min // 60:02d}:{open_min % 60:02d}-"
            f"{close_min // 60:02d}:{close_min % 60:02d}: it must open before it closes, "
            "within one server day (close at 24:00 at the latest)"
        )


@dataclass(frozen=True, slots=True)
class Holiday:
    """A server-time date with other hours than the weekly ones (``()``: closed all day)."""

    date: dt.date
    hours: tuple[Minutes, ...] = ()

    def __post_init__(self) -> None:
        for o, c in self.hours:
            _check_range(o, c)


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    """Open ranges per weekday in server time, plus holidays; hashable, picklable."""

    #: ``days[w]``: the open ranges of weekday ``w`` (Mon = 0), sorted, not overlapping.
    days: tuple[tuple[Minutes, ...], ...]
    holidays: tuple[Holiday, ...] = ()

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError("a weekly schedule has seven days")
        for day in self.days:
            for o, c in day:
                _check_range(o, c)

    @classmethod
    def of(
        cls, ranges: Iterable[tuple[str, str, str]], holidays: Iterable[Holiday] = ()
    ) -> WeeklySchedule:
        """From ``(days, "HH:MM", "HH:MM")`` triples (days as :func:`parse_days` reads)."""
        days: list[list[Minutes]] = [[] for _ in WEEKDAYS]
        for day_text, open_text, close_text in ranges:
            o, c = parse_hhmm(open_text), parse_hhmm(close_text)
            _check_range(o, c)
            for w in parse_days(day_text):
                days[w].append((o, c))
        return cls(tuple(_merge_minutes(d) for d in days), tuple(holidays))

    @property
    def always_open(self) -> bool:
        return not self.holidays and all(d == ((0, _MINUTES_PER_DAY),) for d in self.days)

    def hours_on(self, epoch_day: int) -> tuple[Minutes, ...]:
        """The open ranges of one server day (days since 1970-01-01 in server time)."""
        if self.holidays:
            date = dt.date(1970, 1, 1) + dt.timedelta(days=epoch_day)
            for h in self.holidays:
                if h.date == date:
                    return h.hours
        return self.days[(epoch_day + _EPOCH_WEEKDAY) % 7]

    def with_holidays(self, holidays: Iterable[Holiday]) -> WeeklySchedule:
        return WeeklySchedule(self.days, (*self.holidays, *holidays))


def _merge_minutes(ranges: Iterable[Minutes]) -> tuple[Minutes, ...]:
    out: list[Minutes] = []
    for o, c in sorted(ranges):
        if out and o <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], c))
        else:
            out.append((o, c))
    return tuple(out)


#: A ny-close broker's usual hours (server time). FX: Monday 00:00 to Friday 23:57;
#: metals: the same days from 01:00, with a daily break 23:57–01:00; crypto: 24/7.
DEFAULT_CLASS_HOURS: Final[dict[str, tuple[tuple[str, str, str], ...]]] = {
    "forex": (("Mon-Thu", "00:00", "24:00"), ("Fri", "00:00", "23:57")),
    "metals": (("Mon-Fri", "01:00", "23:57"),),
    "crypto": (("Mon-Sun", "00:00", "24:00"),),
}


def symbol_class(symbol: str, path: str = "") -> str:
    """``forex``, ``metals`` or ``crypto``: from the symbol's tree path, else its name.

    Unknown symbols count as forex, the commonest hours at an FX/CFD broker.
    """
    head = path.replace("/", "\\").split("\\", 1)[0].strip().lower()
    if head.startswith(("forex", "fx")):
        return "forex"
    if head.startswith("metal"):
        return "metals"
    if head.startswith("crypto"):
        return "crypto"
    name = symbol.upper()
    if name.startswith(_METALS):
        return "metals"
    if name.startswith(_CRYPTO):
        return "crypto"
    return "forex"


@dataclass(frozen=True, slots=True)
class SessionBook:
    """Schedules per symbol class, with per-symbol overrides (the ``sessions`` settings)."""

    classes: tuple[tuple[str, WeeklySchedule], ...]
    symbols: tuple[tuple[str, WeeklySchedule], ...] = ()
    #: Holidays of single symbols, on top of their schedule's own.
    symbol_holidays: tuple[tuple[str, tuple[Holiday, ...]], ...] = ()

    @classmethod
    def default(cls) -> SessionBook:
        return cls(tuple((name, WeeklySchedule.of(r)) for name, r in DEFAULT_CLASS_HOURS.items()))

    def schedule(self, symbol: str, path: str = "") -> WeeklySchedule:
        """The symbol's own schedule if set, else its class's; plus its own holidays."""
        base = dict(self.symbols).get(symbol)
        if base is None:
            classes = dict(self.classes)
            base = classes.get(symbol_class(symbol, path)) or classes["forex"]
        extra = dict(self.symbol_holidays).get(symbol)
        return base.with_holidays(extra) if extra else base


#: A market that never closes (crypto at most brokers; a simulated terminal told "always").
ALWAYS_OPEN = WeeklySchedule.of([("Mon-Sun", "00:00", "24:00")])


@dataclass(frozen=True, slots=True)
class TradingHours:
    """One symbol's schedule read in UTC through its server's zone.

    Spans are half-open ``[open, close)`` in whole UTC seconds. The server weeks asked
    about are converted once and cached.
    """

    schedule: WeeklySchedule
    zone: ServerTimeZone = NY_CLOSE

    def open_spans(self, from_s: int, to_s: int) -> list[tuple[int, int]]:
        """The open spans overlapping ``[from_s, to_s)``, clipped to it, oldest first."""
        if to_s <= from_s:
            return []
        if self.schedule.always_open:
            return [(from_s, to_s)]
        w0 = _week_of(self.zone.to_server_s(from_s)) - 1
        w1 = _week_of(self.zone.to_server_s(to_s)) + 1
        out: list[tuple[int, int]] = []
        for w in range(w0, w1 + 1):
            for a, b in _week_spans(self.schedule, self.zone, w):
                if out and a <= out[-1][1]:
                    out[-1] = (out[-1][0], max(out[-1][1], b))
                else:
                    out.append((a, b))
        return [(max(a, from_s), min(b, to_s)) for a, b in out if b > from_s and a < to_s]

    def closed_spans(self, from_s: int, to_s: int) -> list[tuple[int, int]]:
        """The complement of :meth:`open_spans` within ``[from_s, to_s)``."""
        out: list[tuple[int, int]] = []
        at = from_s
        for a, b in self.open_spans(from_s, to_s):
            if a > at:
                out.append((at, a))
            at = b
        if at < to_s:
            out.append((at, to_s))
        return out

    def is_open(self, utc_s: float) -> bool:
        s = int(utc_s // 1)
        return bool(self.open_spans(s, s + 1))

    def open_mask(self, utc_ms: I64) -> Bools:
        """Per UTC millisecond: is the market open then (vectorised, for tick arrays)."""
        t = np.asarray(utc_ms, dtype=np.int64)
        if not len(t) or self.schedule.always_open:
            return np.ones(len(t), dtype=np.bool_)
        spans = self.open_spans(int(t.min()) // 1000, int(t.max()) // 1000 + 1)
        if not spans:
            return np.zeros(len(t), dtype=np.bool_)
        starts = np.array([a for a, _ in spans], np.int64) * 1000
        ends = np.array([b for _, b in spans], np.int64) * 1000
        k = np.searchsorted(starts, t, side="right") - 1
        return (k >= 0) & (t < ends[np.maximum(k, 0)])

    def current_span(self, utc_s: float) -> tuple[int, int] | None:
        """The whole open span holding ``utc_s`` (unclipped), or None when closed."""
        s = int(utc_s // 1)
        for a, b in self.open_spans(s - 7 * _DAY, s + _LOOKAHEAD_WEEKS * 7 * _DAY):
            if a <= s < b:
                return (a, b)
        return None

    def next_open(self, utc_s: float) -> int | None:
        """When the market is next open: ``utc_s`` itself while open; None if never."""
        s = int(utc_s // 1)
        spans = self.open_spans(s, s + _LOOKAHEAD_WEEKS * 7 * _DAY)
        return spans[0][0] if spans else None

    def next_close(self, utc_s: float) -> int | None:
        """The end of the open span holding ``utc_s`` (or of the next one when closed)."""
        s = int(utc_s // 1)
        horizon = s + _LOOKAHEAD_WEEKS * 7 * _DAY
        spans = self.open_spans(s, horizon)
        if not spans or spans[0][1] >= horizon:
            return None  # open for as far as we look (a 24/7 market never closes)
        return spans[0][1]

    def last_close(self, utc_s: float) -> int | None:
        """When the market last closed at or before ``utc_s`` (None: open now or never)."""
        s = int(utc_s // 1)
        if self.is_open(s):
            return None
        before = self.open_spans(s - _LOOKAHEAD_WEEKS * 7 * _DAY, s + 1)
        return before[-1][1] if before else None


def _week_of(server_s: int) -> int:
    """Index of the server week (Monday 00:00 starts it) holding ``server_s``."""
    day = server_s // _DAY
    return (day + _EPOCH_WEEKDAY) // 7


@functools.lru_cache(maxsize=1024)
def _week_spans(
    schedule: WeeklySchedule, zone: ServerTimeZone, week: int
) -> tuple[tuple[int, int], ...]:
    """Open spans of one server week, merged in server time, then converted to UTC.

    Merging first keeps a market open through midnight (and through a daylight saving
    switch inside a session) as one span; an opening is read as the earlier pass of an
    ambiguous server hour and a closing as the later one, so nothing open is cut off.
    """
    first_day = week * 7 - _EPOCH_WEEKDAY
    server: list[tuple[int, int]] = []
    for day in range(first_day, first_day + 7):
        for o, c in schedule.hours_on(day):
            a, b = day * _DAY + o * 60, day * _DAY + c * 60
            if server and a <= server[-1][1]:
                server[-1] = (server[-1][0], max(server[-1][1], b))
            else:
                server.append((a, b))
    return tuple(
        (zone.to_utc_s(a), zone.to_utc_s(b, later=True))
        for a, b in server
        if zone.to_utc_s(a) < zone.to_utc_s(b, later=True)
    )


@dataclass
class MarketHours:
    """Which markets are open, per symbol: what the runtime hands the monitor and the window.

    Built from the ``sessions`` settings and each terminal's server zone; a symbol it
    does not know is always open (never silenced). ``enabled=False`` (sessions off in
    the settings) makes every market open.
    """

    hours: dict[str, TradingHours] = field(default_factory=dict)
    enabled: bool = True

    @classmethod
    def build(
        cls,
        book: SessionBook,
        symbols: Mapping[str, ServerTimeZone],
        *,
        enabled: bool = True,
        paths: Mapping[str, str] | None = None,
        always_open: Collection[str] = (),
    ) -> MarketHours:
        """``symbols`` maps each captured symbol to its terminal's zone; ``always_open``
        names symbols whose terminal trades them around the clock whatever the settings
        say (a simulated terminal with ``market_hours: "always"``): saying "closed" for a
        market that ticks would be wrong."""
        paths = paths or {}
        return cls(
            {
                s: TradingHours(
                    ALWAYS_OPEN if s in always_open else book.schedule(s, paths.get(s, "")), z
                )
                for s, z in symbols.items()
            },
            enabled,
        )

    def set_zone(self, symbols: Iterable[str], zone: ServerTimeZone) -> None:
        """A worker reported (or detected) its terminal's zone: read its symbols by it."""
        for s in symbols:
            h = self.hours.get(s)
            if h is not None and h.zone != zone:
                self.hours[s] = TradingHours(h.schedule, zone)

    def add(self, symbol: str, book: SessionBook, zone: ServerTimeZone, path: str = "") -> None:
        """A symbol captured from now on (added while running)."""
        self.hours.setdefault(symbol, TradingHours(book.schedule(symbol, path), zone))

    def is_open(self, symbol: str, utc_s: float) -> bool:
        h = self.hours.get(symbol)
        return not self.enabled or h is None or h.is_open(utc_s)

    def closed(self, utc_s: float) -> frozenset[str]:
        """The symbols whose market is closed at ``utc_s``."""
        if not self.enabled:
            return frozenset()
        return frozenset(s for s, h in self.hours.items() if not h.is_open(utc_s))

    def open_since(self, symbol: str, utc_s: float) -> int | None:
        """When the session holding ``utc_s`` opened (None: closed, or always open)."""
        h = self.hours.get(symbol)
        if not self.enabled or h is None or h.schedule.always_open:
            return None
        span = h.current_span(utc_s)
        return span[0] if span is not None else None

    def closed_until(self, symbol: str, utc_s: int) -> int:
        """When a market closed at ``utc_s`` opens again (``utc_s`` itself when open or
        unknown, or when it never opens within the look-ahead)."""
        h = self.hours.get(symbol)
        if not self.enabled or h is None or h.is_open(utc_s):
            return utc_s
        nxt = h.next_open(utc_s)
        return utc_s if nxt is None else nxt

    def reach_back(self, symbol: str, utc_s: int, open_s: int) -> int:
        """The instant from which ``symbol``'s market was open for ``open_s`` seconds up
        to ``utc_s``: a look-back in trading time, so a weekend does not use it up.

        Wall time (``utc_s - open_s``) for a market open 24/7, unknown, or not open at
        all within a year before.
        """
        h = self.hours.get(symbol)
        if not self.enabled or h is None or h.schedule.always_open:
            return utc_s - open_s
        need, to = open_s, utc_s
        window = max(open_s, 7 * _DAY)
        while to > utc_s - open_s - 52 * 7 * _DAY:
            for a, b in reversed(h.open_spans(to - window, to)):
                if b - a >= need:
                    return b - need
                need -= b - a
            to -= window
        return utc_s - open_s
