"""Export of ticks and bars to files, and the command-line parts of replay and export.

The window calls :func:`export_ticks` / :func:`export_bars` (blocking: run them in a
worker thread) with a progress callback; ``trading-client export`` does the same from
the command line (:mod:`app.export.cli`).
"""

from app.export.api import (
    ExportCancelledError,
    ExportProgress,
    ProgressCallback,
    TickSource,
    export_bars,
    export_ticks,
    infer_digits,
    parse_time,
    source_ticks,
)

__all__ = [
    "ExportCancelledError",
    "ExportProgress",
    "ProgressCallback",
    "TickSource",
    "export_bars",
    "export_ticks",
    "infer_digits",
    "parse_time",
    "source_ticks",
]
