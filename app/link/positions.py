"""Where the capture stands *in the spool*: the marks written with every spooled message.

The history backfill (``app/connector/backfill.py``) fetches, at start, what earlier
runs did not capture, from the spans recorded in ``capture-spans.json``. For that to lose
nothing and double nothing across a crash, a span must end exactly where the ticks stop
being safe: acknowledged by the bridge or held by the durable spool. What the collector
took in is not enough (the link's pending batches die with the process), and the spans
file is only saved every few seconds (a crash leaves it behind the spool).

So every spooled message carries, as its ``marks``, the capture span of this run per
symbol (begin cursor, end cursor after this message). After a crash, the newest record
of the recovered spool says exactly up to where the previous run's ticks are safe;
everything after that is still in the terminal's history and the backfill fetches it.
Ticks fetched by the backfill itself (``history``) do not move the live position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from app.connector.capture import CaptureCursor
from app.connector.coverage import Cursor, Span
from app.ticks import TickBatch

_VERSION = 1


class SpooledPositions:
    """Per-symbol capture cursors of what the spool took in; the link's :class:`Marker`."""

    def __init__(self, begin: Mapping[str, Cursor]) -> None:
        self._begin = dict(begin)
        self._end = dict(begin)
        self._staged: dict[str, Cursor] | None = None

    def prepare(self, batches: Sequence[TickBatch]) -> bytes:
        end = dict(self._end)
        for batch in batches:
            cursor = CaptureCursor(*end.get(batch.symbol, self._begin_of(batch)))
            cursor.advance(batch.ticks)
            end[batch.symbol] = cursor.as_tuple()
        self._staged = end
        return encode_marks(self._begin, end)

    def commit(self) -> None:
        if self._staged is not None:
            self._end = self._staged
            self._staged = None

    def _begin_of(self, batch: TickBatch) -> Cursor:
        """A symbol first seen here (added while running) begins at its first tick."""
        return self._begin.setdefault(batch.symbol, (batch.first_msc, 0))

    def positions(self) -> dict[str, Cursor]:
        """The end cursor per symbol: the backfill's ``live_position``."""
        return dict(self._end)


def encode_marks(begin: Mapping[str, Cursor], end: Mapping[str, Cursor]) -> bytes:
    return orjson.dumps(
        {"v": _VERSION, "spans": {s: [*begin[s], *end[s]] for s in end if s in begin}}
    )


def decode_marks(marks: bytes) -> dict[str, Span]:
    """The spans of a record's marks; empty for no marks or marks of another version."""
    if not marks:
        return {}
    try:
        doc = orjson.loads(marks)
        if doc.get("v") != _VERSION:
            return {}
        return {
            str(sym): Span((int(v[0]), int(v[1])), (int(v[2]), int(v[3])))
            for sym, v in doc["spans"].items()
        }
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, IndexError):
        return {}
