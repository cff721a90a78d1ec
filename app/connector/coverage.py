"""What was captured, across runs: time spans per terminal and symbol, kept in a file.

After a restart, the ticks between the end of the previous run and the start of this
one are missing; the backfill fetches them (``app/connector/backfill.py``). To know
where that gap begins, every run records the spans it captured in a small JSON file in
the user data folder. A span is bounded by two capture cursors (see
``app/connector/capture.py``), not by bare times, because several ticks may share a
millisecond:

* ``begin = (msc, seen)``: the span holds the ticks *after* the first ``seen`` ticks at
  ``msc`` (what ``CaptureCursor(msc, seen).cut`` keeps);
* ``end = (msc, seen)``: ... up to and including the first ``seen`` ticks at ``msc``.

So a span ending at ``(m, k)`` and one beginning at ``(m, k)`` are adjacent, with no tick
missing or doubled between them, and cursors compare as plain tuples. A run's live span
begins at ``(start_msc, 0)`` and ends at the pool's cursor.

Why a local file rather than asking the backend what it stored: the backfill must
also work with the backend unreachable (ticks wait in the spool), the bridge protocol
has no such query, and the client is the one that knows which terminal a tick came
from. With delivery on, what is recorded is what the bridge acknowledged or the durable
spool holds (``app/link/positions.py``): after a crash, the recovered spool's newest
record says where the previous run's safe ticks end, and that span is added before the
gaps are worked out; its unacknowledged messages are resent by the link, the rest is
fetched here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from app.config.store import atomic_write
from app.untrusted import read_regular_file

__all__ = ["Cursor", "Span", "SpanBook", "find_gaps", "merge_spans"]

log = logging.getLogger(__name__)

Cursor = tuple[int, int]
#: Spans kept per key; the oldest are forgotten first (they are far outside any backfill).
MAX_SPANS: Final = 64
_VERSION = 1


@dataclass(frozen=True, slots=True, order=True)
class Span:
    begin: Cursor
    end: Cursor

    @property
    def empty(self) -> bool:
        return self.end <= self.begin

    def as_list(self) -> list[int]:
        return [*self.begin, *self.end]


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted, with overlapping or adjacent spans joined; empty spans dropped."""
    out: list[Span] = []
    for span in sorted(s for s in spans if not s.empty):
        if out and span.begin <= out[-1].end:
            if span.end > out[-1].end:
                out[-1] = Span(out[-1].begin, span.end)
        else:
            out.append(span)
    return out


def find_gaps(spans: Iterable[Span], live_begin: Cursor, floor_msc: int) -> list[Span]:
    """The holes between recorded spans and before ``live_begin``, oldest first.

    Only what lies after the first recorded span counts (before it nothing was ever
    captured, so nothing was missed), and nothing before ``floor_msc`` (the backfill's
    reach). Each gap is a span to fetch: from the cursor where one span ended to the
    cursor where the next one (or the live capture) begins.
    """
    merged = [s for s in merge_spans(spans) if s.begin < live_begin]
    gaps: list[Span] = []
    if not merged:
        return gaps
    for prev, nxt in zip(merged, [*merged[1:], Span(live_begin, live_begin)], strict=True):
        end = min(nxt.begin, live_begin)
        begin = max(prev.end, (floor_msc, 0))
        if begin < end:
            gaps.append(Span(begin, end))
    return gaps


class SpanBook:
    """The spans file: load once at start, ``record`` while running, ``save`` often.

    Keys are ``"<terminal name>/<symbol>"``: the same symbol at another broker has
    another history. A missing or unreadable file is an empty book (logged), never an
    error: the worst case is a backfill that does not happen.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: dict[str, list[Span]] = self._load()
        self._run: dict[str, dict[str, Span]] = {}
        self._write_lock = threading.Lock()
        self._encoded = 0  # numbers of encoded() contents, and of the last one written
        self._written = 0

    @staticmethod
    def key(terminal: str, symbol: str) -> str:
        return f"{terminal}/{symbol}"

    def _load(self) -> dict[str, list[Span]]:
        try:
            doc = orjson.loads(read_regular_file(self.path, 64 * 2**20))
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("ignoring unreadable capture spans %s: %s", self.path, exc)
            return {}
        out: dict[str, list[Span]] = {}
        try:
            for key, rows in doc.get("spans", {}).items():
                out[str(key)] = [Span((int(r[0]), int(r[1])), (int(r[2]), int(r[3]))) for r in rows]
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            log.warning("ignoring malformed capture spans %s: %s", self.path, exc)
            return {}
        return out

    def previous(self, key: str) -> list[Span]:
        """Spans recorded by earlier runs (as loaded at start)."""
        return list(self._saved.get(key, ()))

    def add_previous(self, key: str, span: Span) -> None:
        """Add a span an earlier run captured but could not save (it crashed): what its
        durable spool says it held (``app/link/positions.py``)."""
        self._saved[key] = merge_spans([*self._saved.get(key, ()), span])

    def record(self, key: str, name: str, span: Span) -> None:
        """Set this run's span ``name`` (e.g. "live", "backfill-0") of ``key``."""
        self._run.setdefault(key, {})[name] = span

    def spans(self) -> Mapping[str, list[Span]]:
        """Everything known now: earlier runs and this one, merged per key."""
        keys = set(self._saved) | set(self._run)
        out = {}
        for key in sorted(keys):
            merged = merge_spans([*self._saved.get(key, ()), *self._run.get(key, {}).values()])
            out[key] = merged[-MAX_SPANS:]
        return out

    def save(self) -> None:
        self.write(self.encoded())

    def encoded(self) -> tuple[int, bytes]:
        """The file's content now (cheap: a few spans per symbol), numbered."""
        doc = {
            "version": _VERSION,
            "spans": {k: [s.as_list() for s in v] for k, v in self.spans().items()},
        }
        self._encoded += 1
        return self._encoded, orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    def write(self, content: tuple[int, bytes]) -> None:
        """Write :meth:`encoded` content atomically; thread-safe, and content older than
        what is already written is dropped (a periodic save still running on a thread
        must not overwrite the final save at stop). Two fsyncs: run it off the loop while
        capture runs (an fsync took up to 350 ms on a busy disk)."""
        number, data = content
        with self._write_lock:
            if number <= self._written:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, data)
            except OSError as exc:
                log.error("cannot save capture spans to %s: %s", self.path, exc)
            self._written = number
