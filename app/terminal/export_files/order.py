"""Row order of an export: forward in time, except the server clock's autumn hour.

An MT5 export is stamped in the server time of the broker it was recorded at, and that
clock goes *back* once a year at most brokers: by an hour, from H:00 to (H-1):00 on a
Sunday (09:00 → 08:00 at a ny-close server on the first Sunday of November, 04:00 →
03:00 at an EU one on the last Sunday of October). A 24/7 symbol (BTCUSD) trades
through it, so its export has rows, in true order, whose time steps back once by up to
an hour. The reader has no time zone (a file does not say where it was recorded), so
the rule is stated on the file alone, simply enough to explain in one line:

    **one step back per 300 days of file time, within one clock hour of a Sunday.**

A row earlier than the newest row before it is accepted when both lie in the same clock
hour (so the step back is under an hour) of a Sunday, and no step back was accepted in
the 300 days (file time) before; from that row on, order is checked against it (the
second pass of the hour). Both conditions hold for every real switch: the last tick
before it and the first after it that is earlier both lie in the repeated hour. Every
other row earlier than the row before stays a bad row: out of order ticks would be
replayed and aggregated into wrong bars. Which instants the two passes are is the
zone's business (``ServerTimeZone.to_utc_ms`` reads the jump back), not the reader's.

Streaming and vectorised: a block costs a running maximum, as a plain order check does;
each accepted step back costs one more over the rest of the block (a few per file: the
300 days bound them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from app.terminal.export_files.parse import I64, R_BACKWARDS, Rows

__all__ = ["JUMP_SPACING_MS", "OrderState", "check_order"]

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
#: At most one accepted step back per this much file time (DST switches are a year apart).
JUMP_SPACING_MS: Final = 300 * 86_400_000
_MIN: Final = int(np.iinfo(np.int64).min)


@dataclass(slots=True)
class OrderState:
    """The order check's state between blocks."""

    #: Newest readable time since the last accepted step back (rows must not be earlier).
    last_msc: int = _MIN
    #: Newest time before the last accepted step back (None: none yet).
    jump_msc: int | None = None


def check_order(rows: Rows, time_msc: I64, state: OrderState, field_index: int) -> None:
    """Fail the rows of a block that go back in time, except an autumn hour's step back."""
    n = len(time_msc)
    if not n:
        return
    good = ~rows.bad
    t = np.where(good, time_msc, _MIN)
    refused = np.zeros(n, dtype=bool)
    start, ref = 0, state.last_msc
    while True:
        seg = t[start:]
        newest = np.maximum.accumulate(seg)
        before = np.empty_like(seg)
        before[0] = ref
        np.maximum(newest[:-1], ref, out=before[1:])
        back = np.flatnonzero((seg < before) & good[start:])
        if not len(back):
            state.last_msc = max(ref, int(newest[-1]))
            break
        peak = before[back]
        ok = _repeated_hour(peak, seg[back])
        if state.jump_msc is not None:
            ok &= peak - state.jump_msc >= JUMP_SPACING_MS
        accepted = np.flatnonzero(ok)
        if not len(accepted):
            refused[start + back] = True
            state.last_msc = max(ref, int(newest[-1]))
            break
        a = int(accepted[0])
        refused[start + back[:a]] = True  # earlier steps back that were not the hour
        j = start + int(back[a])
        state.jump_msc = int(peak[a])
        ref = int(t[j])
        start = j + 1
        if start >= n:
            state.last_msc = ref
            break
    if refused.any():
        rows.fail(refused, R_BACKWARDS, field_index)


def _repeated_hour(peak: I64, row: I64) -> npt.NDArray[np.bool_]:
    """Whether a step back from ``peak`` to ``row`` can be a clock's autumn hour: both in
    one clock hour of a Sunday (1 Jan 1970 was a Thursday: day 3 was a Sunday)."""
    hour = peak // _HOUR_MS
    sunday = (peak // _DAY_MS + 4) % 7 == 0
    same: npt.NDArray[np.bool_] = (row // _HOUR_MS == hour) & sunday
    return same
