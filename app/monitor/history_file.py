"""The Throughput history on disk, so the charts survive a restart of the app.

The window's charts are fed by :class:`~app.monitor.history.SeriesHistory`, which lives
in memory. The desktop session writes it here when it stops and reads it back when it is
created: one JSON document with every resolution's columns (the same columnar shape as
``SeriesHistory.to_json``), replaced atomically with the settings' own helper so a kill
mid-write leaves the previous file. A file that cannot be read costs the old points
only: the reason is logged and the charts start empty, never a failed start.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from app.config.store import atomic_write
from app.monitor.history import SeriesHistory

log = logging.getLogger(__name__)

FORMAT = 1


def save_history(history: SeriesHistory, path: Path) -> None:
    """Write every series at every resolution to ``path`` (atomically; not fsync'd:
    losing the newest charts to a power cut is harmless)."""
    resolutions = []
    for seconds, _ in history.resolutions:
        times, columns = history.table(resolution=seconds)
        resolutions.append(
            {
                "seconds": seconds,
                "time": times.tolist(),
                "series": {
                    name: [None if math.isnan(v) else v for v in column.tolist()]
                    for name, column in columns.items()
                },
            }
        )
    document = {"format": FORMAT, "resolutions": resolutions}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(document, allow_nan=False).encode(), sync=False)


def load_history(history: SeriesHistory, path: Path) -> bool:
    """Put what :func:`save_history` wrote back into ``history``; False (and one logged
    line) when there is no usable file."""
    if not path.exists():
        return False
    try:
        document: Any = json.loads(path.read_bytes())
        if document.get("format") != FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        known = {seconds for seconds, _ in history.resolutions}
        for part in document["resolutions"]:
            if float(part["seconds"]) in known:
                history.restore(float(part["seconds"]), part["time"], part["series"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        history.clear()
        log.warning("throughput history not restored from %s: %s", path, exc)
        return False
    return True
