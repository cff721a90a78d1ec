"""Gap-free capture: turn overlapping ``copy_ticks_from`` polls into a stream.

The MT5 API can only be asked for ticks *from a whole second on*, and several ticks may
share one millisecond. So each poll asks from the second of the last captured tick and
the cursor cuts away what was already captured: everything older than the last captured
millisecond, plus as many ticks *at* that millisecond as were captured before. This is
exact as long as the terminal's history is append-only, which a broker's tick history is.

The same arithmetic runs in the worker (to cut polls) and in the supervisor (to know
where a restarted worker must resume), so a killed worker neither loses nor doubles a
tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.ticks import TickArray

#: Cap on the *new* ticks one poll asks for, however far the cursor lags. The prefix
#: re-read from the start of the cursor's second comes on top and is never capped: a
#: second (even one millisecond) holding more ticks than any fixed count would otherwise
#: trap the capture there for good, every answer holding only ticks already captured.
MAX_POLL_COUNT = 1_000_000


@dataclass(slots=True)
class CaptureCursor:
    """Where the capture of one symbol stands.

    ``last_msc`` is the time of the newest captured tick (or, before the first tick, the
    moment from which capture starts) and ``seen_at_last`` how many ticks with exactly
    that time were captured already.
    """

    last_msc: int
    seen_at_last: int = 0

    @property
    def from_seconds(self) -> int:
        """``date_from`` for the next poll: the API takes whole epoch seconds."""
        return self.last_msc // 1000

    def cut(self, polled: TickArray) -> tuple[TickArray, int]:
        """The part of a poll result not captured yet, and how many ticks were skipped.

        ``polled`` must be ordered by ``time_msc`` and start at or before the cursor's
        second, as a ``copy_ticks_from(from_seconds)`` result does.
        """
        tm = polled["time_msc"]
        first_at_last = int(np.searchsorted(tm, self.last_msc, side="left"))
        after_last = int(np.searchsorted(tm, self.last_msc, side="right"))
        skip = first_at_last + min(after_last - first_at_last, self.seen_at_last)
        return polled[skip:], skip

    def advance(self, captured: TickArray) -> None:
        """Move past ``captured``, which must directly follow what was captured before."""
        if not len(captured):
            return
        tm = captured["time_msc"]
        n = len(tm)
        newest = int(tm[-1])
        if n == 1 or int(tm[-2]) != newest:
            # The common case (the newest millisecond holds one tick of the batch): no
            # search. Done per batch on the pool's reader threads and per spooled
            # message, where numpy's call overhead outweighed a few ticks' worth of work.
            at_newest = 1
        else:
            at_newest = n - int(tm.searchsorted(newest, side="left"))
        if newest == self.last_msc:
            self.seen_at_last += at_newest
        elif newest > self.last_msc:
            self.last_msc = newest
            self.seen_at_last = at_newest
        else:
            raise ValueError(
                f"captured ticks end at {newest}, before the cursor at {self.last_msc}"
            )

    def as_tuple(self) -> tuple[int, int]:
        return (self.last_msc, self.seen_at_last)


@dataclass(slots=True)
class PollSizer:
    """How many ticks to ask for in the next poll.

    A poll re-reads the ticks between the start of the cursor's second and the cursor
    itself; at high rates that prefix alone can fill a fixed ``count``, and the capture
    would never move on. So the next request is ``batch`` new ticks *plus* the prefix
    skipped last time, and about doubles when a full answer held nothing new (the new
    part capped at :data:`MAX_POLL_COUNT`). The prefix itself is never capped: a second
    denser than any cap must still be read past.
    """

    batch: int
    count: int = 0

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError("batch must be >= 1")
        self.count = self.batch

    def after_poll(self, returned: int, skipped: int, new: int) -> bool:
        """Update the request size; True when the answer was cut short and more waits."""
        full = returned >= self.count
        if full and new == 0:
            self.count = skipped + min(MAX_POLL_COUNT, self.count)
        else:
            self.count = skipped + self.batch
        return full
