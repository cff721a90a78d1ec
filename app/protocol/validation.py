"""Value rules for ticks, one vectorised pass per array: which rows may be stored.

The codec checks that a frame is well formed; these rules check that what it carries is
a plausible market tick. The adversarial pass of issue #13 stored volume -1 (wrapping to
2^64-1), time -1e15, bid 1e308 with ask -1e308, flags 2^40 and symbols with NUL and ANSI
escapes; each of those is refused here with a reason. The same rules run at the bridge
(before anything is stored) and at the client's replay reader (before a file's ticks
are served), so a file the client refuses is exactly one the bridge would refuse.

Pure and sans-I/O: "now" is passed in (the caller reads its injected
:class:`app.clock.Clock`), and the per-symbol time state is passed in and returned, never
kept in a global. Every rule is one numpy expression over a column, so a block of a
million ticks costs a few dozen passes and never a Python loop per tick.

Decisions, in one place:

* **Prices** ``bid``, ``ask`` and ``last`` are finite and within ``0..max_price``. ``0``
  is MT5's "not set" (an exchange symbol without quotes, a quote symbol without deals),
  so it is allowed; negative prices are refused.
* **ask >= bid** is required when both are set (non-zero), unless the tick's flags say
  exactly one of the two sides changed (``TICK_FLAG_BID`` xor ``TICK_FLAG_ASK``): then
  the other side is the previous quote and a momentarily crossed book is what the
  terminal reported, not a corruption.
* **Volume** ``volume`` (an unsigned column: -1 arrives as 2^64-1) and ``volume_real``
  (finite) are within ``0..max_volume``.
* **Time**: ``time_msc`` within ``[now - max_age, now + max_ahead]`` (the broker's
  server time may run a few hours ahead of UTC, hence a day or two ahead), ``time`` equal
  to ``time_msc // 1000`` (the dtype carries both), and non-decreasing: within the array,
  and after ``last_msc`` when the caller passes the symbol's previous time.
* **Flags** only within :data:`DEFINED_FLAGS`: the six documented ``TICK_FLAG_*`` bits
  plus the rest of the low byte, which real terminals are seen to set (``flags`` 130 and
  134 appear in MT5's own examples); anything above the low byte is refused.
* **Symbols** are 1..:data:`MAX_SYMBOL_LENGTH` printable characters (no NUL, no escape
  sequences, no line breaks), so a name can be logged and shown as it is.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from app.ticks import TICK_DTYPE, TickArray, TickBatch

# ``TICK_FLAG_BID`` and ``TICK_FLAG_ASK`` of :mod:`app.terminal.constants` (importing it
# would import the terminal package, whose replay reader imports this module; a test
# checks that the values agree).
TICK_FLAG_BID: Final = 0x02
TICK_FLAG_ASK: Final = 0x04

#: Longest symbol name (characters); MT5's own limit is 31, brokers' suffixes add some.
MAX_SYMBOL_LENGTH: Final = 64
#: Bits ``flags`` may use: the low byte (see the module doc).
DEFINED_FLAGS: Final = 0xFF
#: The largest price accepted by default (above any quoted instrument, in any currency).
DEFAULT_MAX_PRICE: Final = 1e12
#: The largest volume accepted by default (and far below 2^63, SQLite's limit).
DEFAULT_MAX_VOLUME: Final = 1e15
_DAY = 86_400.0

Codes = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]


class Reason(enum.StrEnum):
    """Why a tick (or its symbol) is refused; the value is the counter name."""

    NOT_FINITE = "not_finite"
    PRICE_RANGE = "price_out_of_range"
    ASK_BELOW_BID = "ask_below_bid"
    VOLUME_RANGE = "volume_out_of_range"
    TIME_WINDOW = "time_out_of_window"
    TIME_MISMATCH = "time_mismatch"
    TIME_BACKWARDS = "time_backwards"
    UNKNOWN_FLAGS = "unknown_flags"
    BAD_SYMBOL = "bad_symbol"

    @property
    def code(self) -> np.uint8:
        """The row code of this reason in a verdict's ``codes``."""
        return _CODE[self]


#: Row codes: 0 is a valid row, ``i + 1`` is ``_ORDER[i]``. The order is the precedence:
#: a row that breaks several rules reports the first.
_ORDER: Final = tuple(Reason)
_CODE: Final = {reason: np.uint8(i + 1) for i, reason in enumerate(_ORDER)}

#: One line per reason, for the refusal a human reads.
EXPLAIN: Final[dict[Reason, str]] = {
    Reason.NOT_FINITE: "bid, ask, last or volume_real is NaN or infinite",
    Reason.PRICE_RANGE: "a price is negative or above the largest accepted",
    Reason.ASK_BELOW_BID: "ask is below bid although the flags say both sides changed",
    Reason.VOLUME_RANGE: "volume or volume_real is negative or above the largest accepted",
    Reason.TIME_WINDOW: "time_msc is outside the accepted window around now",
    Reason.TIME_MISMATCH: "time is not time_msc // 1000",
    Reason.TIME_BACKWARDS: "time_msc is earlier than the tick before it",
    Reason.UNKNOWN_FLAGS: "flags has bits beyond the defined ones",
    Reason.BAD_SYMBOL: f"the symbol is not 1..{MAX_SYMBOL_LENGTH} printable characters",
}


@dataclass(frozen=True, slots=True)
class TickRules:
    """The configurable bounds; the defaults suit any live or historical MT5 data."""

    max_price: float = DEFAULT_MAX_PRICE
    max_volume: float = DEFAULT_MAX_VOLUME
    #: How far back from now a tick may be (historical data older than this is refused).
    max_age_s: float = 30 * 365.25 * _DAY
    #: How far ahead of now a tick may be (broker server time zones run ahead of UTC).
    max_ahead_s: float = 2 * _DAY
    allowed_flags: int = DEFINED_FLAGS

    def __post_init__(self) -> None:
        for name in ("max_price", "max_volume", "max_age_s", "max_ahead_s"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 0 <= self.allowed_flags <= 0xFFFFFFFF:
            raise ValueError("allowed_flags must fit in 32 bits")

    def window(self, now_msc: int) -> tuple[int, int]:
        """The accepted ``time_msc`` range around ``now_msc``, clamped to int64."""
        lo = max(0, now_msc - int(self.max_age_s * 1000))
        hi = min(2**63 - 1, now_msc + int(self.max_ahead_s * 1000))
        return lo, hi


DEFAULT_TICK_RULES: Final = TickRules()


@dataclass(frozen=True, slots=True)
class Verdict:
    """Per-row codes of one check (0: valid) and the time state to pass to the next."""

    codes: Codes
    #: The latest ``time_msc`` of the valid rows, or the ``last_msc`` passed in.
    last_msc: int | None

    @property
    def valid(self) -> Bools:
        ok: Bools = self.codes == 0
        return ok

    @property
    def ok(self) -> bool:
        return not self.codes.any()

    def first_bad(self) -> int | None:
        """Index of the first invalid row, or None."""
        bad = np.flatnonzero(self.codes)
        return int(bad[0]) if len(bad) else None

    def reason(self, row: int) -> Reason | None:
        code = int(self.codes[row])
        return _ORDER[code - 1] if code else None

    def counts(self) -> dict[Reason, int]:
        """Refused rows per reason."""
        found = np.bincount(self.codes, minlength=len(_ORDER) + 1)
        return {_ORDER[i - 1]: int(n) for i, n in enumerate(found) if i and n}


def symbol_ok(symbol: str) -> bool:
    """1..MAX_SYMBOL_LENGTH printable characters (``str.isprintable``: no control or
    format characters, no line breaks)."""
    return 0 < len(symbol) <= MAX_SYMBOL_LENGTH and symbol.isprintable()


def validate_ticks(
    symbol: str,
    ticks: TickArray,
    *,
    now_msc: int,
    rules: TickRules = DEFAULT_TICK_RULES,
    last_msc: int | None = None,
) -> Verdict:
    """Which rows of one symbol's ``ticks`` are valid, and why the others are not.

    ``last_msc`` is the symbol's latest time before this array (None: no earlier tick);
    the verdict's ``last_msc`` is the state after it, to pass with the next array.
    A bad symbol name fails every row with :attr:`Reason.BAD_SYMBOL`.
    """
    n = len(ticks)
    if not symbol_ok(symbol):
        return Verdict(np.full(n, _CODE[Reason.BAD_SYMBOL], dtype=np.uint8), last_msc)
    codes = check_rows(ticks, now_msc, rules)
    tm = ticks["time_msc"]
    if n:
        prev = np.empty(n, dtype=np.int64)
        prev[0] = np.iinfo(np.int64).min if last_msc is None else last_msc
        prev[1:] = tm[:-1]
        _mark(codes, tm < prev, Reason.TIME_BACKWARDS)
    valid = codes == 0
    if valid.any():
        newest = int(tm[valid].max())
        last_msc = newest if last_msc is None else max(last_msc, newest)
    return Verdict(codes, last_msc)


def validate_blocks(
    blocks: Sequence[TickBatch], *, now_msc: int, rules: TickRules = DEFAULT_TICK_RULES
) -> tuple[Verdict, npt.NDArray[np.int64]]:
    """The rules over every block of a message in one pass: ``(verdict, offsets)``.

    ``offsets[i]`` is where block ``i`` starts in the verdict's rows (a last entry holds
    the total). Time order is checked within each block only: a message may carry a
    symbol's history backfill next to its live ticks, which are newer (see
    docs/protocol.md). One concatenation costs a copy of the message; one numpy pass
    per rule instead of one per block keeps a message of thousands of small blocks as
    cheap as one large block.
    """
    sizes = np.fromiter((len(b.ticks) for b in blocks), dtype=np.int64, count=len(blocks))
    offsets = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if not blocks:
        return Verdict(np.zeros(0, dtype=np.uint8), None), offsets
    if offsets[-1] <= SMALL_MESSAGE_TICKS and _small_valid(blocks, now_msc, rules):
        return Verdict(np.zeros(int(offsets[-1]), dtype=np.uint8), None), offsets
    ticks = _joined(blocks)
    codes = check_rows(ticks, now_msc, rules)
    tm = ticks["time_msc"]
    if len(tm) > 1:
        back = np.zeros(len(tm), dtype=np.bool_)
        back[1:] = tm[1:] < tm[:-1]
        back[offsets[:-1][sizes > 0]] = False  # a block's first tick has no predecessor
        if back.any():
            _mark(codes, back, Reason.TIME_BACKWARDS)
    bad_names = [i for i, b in enumerate(blocks) if not symbol_ok(b.symbol)]
    for i in bad_names:
        codes[offsets[i] : offsets[i + 1]] = _CODE[Reason.BAD_SYMBOL]
    return Verdict(codes, None), offsets


def blocks_valid(
    blocks: Sequence[TickBatch], *, now_msc: int, rules: TickRules = DEFAULT_TICK_RULES
) -> bool:
    """Whether :func:`validate_blocks` finds every row of ``blocks`` valid, cheaply.

    Why a second entry: the bridge judges every message, and at 10k ticks/s a message
    holds about four ticks, where :func:`check_rows`' thirty-odd numpy calls cost ~40 µs
    whatever the size. Up to :data:`SMALL_MESSAGE_TICKS` ticks a plain loop answers
    the common question (all valid?) in a few µs; larger messages go through
    :func:`validate_blocks` itself (its passes are cheap per tick there). Only a
    ``False`` needs :func:`validate_blocks` to say which row and why.
    """
    if not blocks:
        return True
    n = sum(len(b.ticks) for b in blocks)
    if n <= SMALL_MESSAGE_TICKS:
        return _small_valid(blocks, now_msc, rules)
    return validate_blocks(blocks, now_msc=now_msc, rules=rules)[0].ok


#: Up to this many ticks a message is judged by a plain loop first (numpy's per-call
#: overhead exceeds the loop's cost below that size).
SMALL_MESSAGE_TICKS: Final = 48


def _joined(blocks: Sequence[TickBatch]) -> TickArray:
    """Every block's ticks as one contiguous array (the block itself when there is one)."""
    if len(blocks) == 1:
        return blocks[0].ticks
    # Joining the raw bytes is several times faster than concatenating thousands of
    # small structured arrays (which numpy does field by field).
    raw = b"".join(
        b.ticks.data if b.ticks.flags.c_contiguous else b.ticks.tobytes() for b in blocks
    )
    return np.frombuffer(raw, dtype=TICK_DTYPE)


@functools.lru_cache(maxsize=64)
def _volume_limit(rules: TickRules) -> int | None:
    """``max_volume`` as :func:`check_rows` compares the unsigned column with it (cached:
    numpy's error-state context costs more than the whole check of a small message)."""
    try:
        with np.errstate(all="raise"):
            return int(np.uint64(rules.max_volume))
    except (FloatingPointError, OverflowError, ValueError):
        return None


def _small_valid(blocks: Sequence[TickBatch], now_msc: int, rules: TickRules) -> bool:
    """Every rule of :func:`check_rows` plus the time order within each block, row by
    row in plain Python; ``False`` may be conservative (a crossed quote that only one
    side changed is left to the full rules). A property test holds it to never say
    ``True`` where :func:`validate_blocks` refuses a row."""
    vmax = _volume_limit(rules)
    if vmax is None:
        return False
    lo, hi = rules.window(now_msc)
    bad_flags = ~rules.allowed_flags & 0xFFFFFFFF
    maxp, maxv = rules.max_price, rules.max_volume
    for block in blocks:
        if not symbol_ok(block.symbol):
            return False
        prev: int | None = None
        for sec, bid, ask, last, vol, tm, flags, vr in block.ticks.tolist():
            # NaN fails every comparison, so the range checks also refuse non-finite values.
            if not (0 <= bid <= maxp and 0 <= ask <= maxp and 0 <= last <= maxp):
                return False
            if ask < bid:  # allowed when one side changed: the full rules decide
                return False
            if not (vol <= vmax and 0 <= vr <= maxv and lo <= tm <= hi):
                return False
            if sec != tm // 1000 or flags & bad_flags:
                return False
            if prev is not None and tm < prev:
                return False
            prev = tm
    return True


def _mark(codes: Codes, mask: Bools, reason: Reason) -> None:
    """Set ``reason`` on rows of ``mask`` that have no reason yet or a later one."""
    code = _CODE[reason]
    hit = mask & ((codes == 0) | (codes > code))
    codes[hit] = code


def price_ok(values: npt.NDArray[np.float64], rules: TickRules) -> Bools:
    """Which prices are finite and within ``0..max_price`` (0: not set)."""
    with np.errstate(invalid="ignore"):
        ok: Bools = (values >= 0) & (values <= rules.max_price)
    return ok


def check_rows(ticks: TickArray, now_msc: int, rules: TickRules) -> Codes:
    """Each row's first broken stateless rule (0: none; see :attr:`Reason.code`): every
    rule but the time order, which needs the row before (and the replay reader checks
    on its own, across a file's blocks).

    The bridge runs this on every message, so the common case (every row valid) costs
    one comparison per rule and column, combined in place; which rule a row broke is
    only worked out when some row broke one.
    """
    n = len(ticks)
    codes = np.zeros(n, dtype=np.uint8)
    if not n:
        return codes
    bid, ask, last = ticks["bid"], ticks["ask"], ticks["last"]
    vol_real, flags, tm = ticks["volume_real"], ticks["flags"], ticks["time_msc"]
    lo, hi = rules.window(now_msc)
    side_bits = flags & np.uint32(TICK_FLAG_BID | TICK_FLAG_ASK)
    one_side = (side_bits == TICK_FLAG_BID) | (side_bits == TICK_FLAG_ASK)
    with np.errstate(invalid="ignore"):
        # NaN fails every comparison, so the range checks also catch non-finite values.
        prices = price_ok(bid, rules)
        prices &= price_ok(ask, rules)
        prices &= price_ok(last, rules)
        crossed = ask < bid
        crossed &= ask > 0
        crossed &= ~one_side
        volume = ticks["volume"] <= np.uint64(rules.max_volume)
        volume &= vol_real >= 0
        volume &= vol_real <= rules.max_volume
    in_window = tm >= lo
    in_window &= tm <= hi
    mismatch = ticks["time"] != tm // 1000
    bad_flags = (flags & np.uint32(~rules.allowed_flags & 0xFFFFFFFF)) != 0
    good = prices & volume & in_window & ~crossed & ~mismatch & ~bad_flags
    if good.all():
        return codes
    finite = np.isfinite(bid) & np.isfinite(ask) & np.isfinite(last) & np.isfinite(vol_real)
    # Reverse precedence: later assignments win, so the first reason listed is kept.
    codes[bad_flags] = _CODE[Reason.UNKNOWN_FLAGS]
    codes[mismatch] = _CODE[Reason.TIME_MISMATCH]
    codes[~in_window] = _CODE[Reason.TIME_WINDOW]
    codes[~volume] = _CODE[Reason.VOLUME_RANGE]
    codes[crossed] = _CODE[Reason.ASK_BELOW_BID]
    codes[~prices] = _CODE[Reason.PRICE_RANGE]
    codes[~finite] = _CODE[Reason.NOT_FINITE]
    return codes


def describe(ticks: TickArray, row: int, reason: Reason) -> str:
    """One line naming the offending values of ``row`` (never more than a few numbers)."""
    t = ticks[row]
    if reason in (Reason.NOT_FINITE, Reason.PRICE_RANGE, Reason.ASK_BELOW_BID):
        detail = f"bid={float(t['bid'])!r} ask={float(t['ask'])!r} last={float(t['last'])!r}"
    elif reason is Reason.VOLUME_RANGE:
        detail = f"volume={int(t['volume'])} volume_real={float(t['volume_real'])!r}"
    elif reason is Reason.UNKNOWN_FLAGS:
        detail = f"flags={int(t['flags']):#x}"
    elif reason is Reason.TIME_MISMATCH:
        detail = f"time={int(t['time'])} time_msc={int(t['time_msc'])}"
    elif reason is Reason.BAD_SYMBOL:
        detail = ""
    else:
        detail = f"time_msc={int(t['time_msc'])}"
    return f"{reason.value}: {EXPLAIN[reason]}" + (f" ({detail})" if detail else "")
