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
Ticks fetched by the backfill itself (``history``) do not move the live position; they
have a position of their own per symbol (the backfill fills gaps oldest first, so per
symbol its ticks only move forward). After a crash during a backfill, the recovered
history position H extends the book from the last recorded span end at or before H up
to H (:func:`recovered_spans`): everything between them was fetched in order and is safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
        self._history: dict[str, Cursor] = {}
        self._staged: tuple[dict[str, Cursor], dict[str, Cursor]] | None = None

    def prepare(self, live: Sequence[TickBatch], history: Sequence[TickBatch] = ()) -> bytes:
        end = dict(self._end)
        for batch in live:
            end[batch.symbol] = _advanced(end.get(batch.symbol, self._begin_of(batch)), batch)
        hist = dict(self._history)
        for batch in history:
            at = hist.get(batch.symbol, (batch.first_msc, 0))
            try:
                hist[batch.symbol] = _advanced(at, batch)
            except ValueError:
                # Out of order (never expected): claim nothing for this symbol. Worst
                # case after a crash, some history is fetched twice; never a hole.
                hist.pop(batch.symbol, None)
        self._staged = (end, hist)
        return encode_marks(self._begin, end, hist)

    def commit(self) -> None:
        if self._staged is not None:
            self._end, self._history = self._staged
            self._staged = None

    def _begin_of(self, batch: TickBatch) -> Cursor:
        """A symbol first seen here (added while running) begins at its first tick."""
        return self._begin.setdefault(batch.symbol, (batch.first_msc, 0))

    def positions(self) -> dict[str, Cursor]:
        """The end cursor per symbol: the backfill's ``live_position``."""
        return dict(self._end)


def _advanced(at: Cursor, batch: TickBatch) -> Cursor:
    cursor = CaptureCursor(*at)
    cursor.advance(batch.ticks)
    return cursor.as_tuple()


def encode_marks(
    begin: Mapping[str, Cursor],
    end: Mapping[str, Cursor],
    history: Mapping[str, Cursor] | None = None,
) -> bytes:
    doc: dict[str, object] = {
        "v": _VERSION,
        "spans": {s: [*begin[s], *end[s]] for s in end if s in begin},
    }
    if history:
        doc["history"] = {s: list(c) for s, c in history.items()}
    return orjson.dumps(doc)


@dataclass(frozen=True, slots=True)
class Marks:
    """What a record's marks say: the live span per symbol, the history position."""

    spans: dict[str, Span]
    history: dict[str, Cursor]


def decode_marks(marks: bytes) -> dict[str, Span]:
    """The live spans of a record's marks (see :func:`read_marks`)."""
    return read_marks(marks).spans


def read_marks(marks: bytes) -> Marks:
    """Empty for no marks, marks of another version, or marks that do not parse."""
    if not marks:
        return Marks({}, {})
    try:
        doc = orjson.loads(marks)
        if doc.get("v") != _VERSION:
            return Marks({}, {})
        spans = {
            str(sym): Span((int(v[0]), int(v[1])), (int(v[2]), int(v[3])))
            for sym, v in doc["spans"].items()
        }
        history = {str(sym): (int(v[0]), int(v[1])) for sym, v in doc.get("history", {}).items()}
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, IndexError):
        return Marks({}, {})
    return Marks(spans, history)


def recovered_spans(recorded: Sequence[Span], marks: Marks, symbol: str) -> list[Span]:
    """The spans an earlier run's spool proves safe for ``symbol``, to add to its book.

    The live span as marked; and, when a backfill was running, from the last recorded
    span end at or before the history position up to it (``recorded``: the book's spans
    of that symbol, the live span included).
    """
    out = []
    live = marks.spans.get(symbol)
    if live is not None:
        out.append(live)
    at = marks.history.get(symbol)
    if at is not None:
        ends = [s.end for s in [*recorded, *out] if s.end <= at]
        if ends:
            out.append(Span(max(ends), at))
    return out
