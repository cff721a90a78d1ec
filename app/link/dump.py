"""``trading-client backend dump``: what a spool holds, as JSON lines a person can read.

Debugging aid for the binary protocol: each record of a spool folder (or one segment
file) becomes one line with its place on disk, its seq, tick count and marks, and the
message decoded with :func:`app.protocol.codec.to_text` (ticks as rows, the first and
last few); a damaged stretch becomes a line saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from app.link.positions import decode_marks
from app.link.spool_files import read_records
from app.protocol import codec


class DumpError(ValueError):
    """The path is not a spool folder or segment file (one line for the user)."""


def dump_lines(path: Path, rows: int = 5) -> Iterator[str]:
    if not path.exists():
        raise DumpError(f"no spool folder or segment file at {path}")
    if path.is_dir() and not any(path.glob("seg-*.spool")):
        raise DumpError(f"{path} holds no spool segments (seg-*.spool)")
    for record in read_records(path):
        doc: dict[str, Any] = {
            "file": str(record.path),
            "offset": record.offset,
            "seq": record.seq,
            "ticks": record.ticks,
        }
        if record.damage is not None:
            doc["damage"] = record.damage
            doc["bytes"] = record.length
        else:
            spans = decode_marks(record.marks)
            doc["marks"] = {s: [*span.begin, *span.end] for s, span in spans.items()}
            try:
                doc["message"] = codec.to_text(record.payload, rows=rows)
            except codec.ProtocolError as exc:
                doc["message"] = {"error": str(exc)}
        yield orjson.dumps(doc).decode()
