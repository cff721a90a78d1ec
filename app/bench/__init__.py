"""Benchmarks run by ``trading-client bench``.

Only the phase names live here: the command line validates ``--phases`` against them
without importing the benchmark itself (numpy, the runtime, websockets), which only the
``bench pipeline`` command needs.
"""

from __future__ import annotations

import argparse
from typing import Final

#: The phases of ``bench pipeline``, in the order they run. The ceilings come first (they
#: need nothing but loopback), fixed rate before full speed so that its RSS is not
#: inflated by a full-speed backlog, and the bridge outage last.
PHASES: Final = (
    "raw_ceiling",
    "parse_ceiling",
    "capture_ceiling",
    "fixed_rate",
    "full_speed",
    "monitoring",
    "backlog",
)


def parse_phases(text: str) -> tuple[str, ...]:
    """``--phases a,b``: the named phases in run order; an argparse error names the valid
    ones (never what was typed: the parser's errors do not echo input)."""
    names = {p.strip() for p in text.split(",") if p.strip()}
    if not names or not names <= set(PHASES):
        raise argparse.ArgumentTypeError(
            f"a comma-separated list of phases from: {', '.join(PHASES)}"
        )
    return tuple(p for p in PHASES if p in names)
