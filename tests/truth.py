"""The independent truth every delivery test compares with: the simulated terminal's
deterministic history (``Market``), never the app's own counters."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TICK_DTYPE, TickArray


def in_order(parts: TickArray) -> TickArray:
    return parts[np.argsort(parts["time_msc"], kind="stable")]


def assert_span_once(
    stored: Mapping[str, TickArray], seed: int, rates: Mapping[str, float], who: str = ""
) -> int:
    """Per symbol: ``stored`` is the terminal's history from its first tick to its last,
    each tick exactly once (only ticks of the very last millisecond may lie beyond the
    capture's end). Returns how many ticks that is."""
    market = Market(seed, DEFAULT_PROFILES, dict(rates))
    total = 0
    for sym in rates:
        got = in_order(stored.get(sym, np.zeros(0, dtype=TICK_DTYPE)))
        where = f"{who} {sym}".strip()
        assert len(got) > 0, f"nothing stored for {where}"
        first, last = int(got["time_msc"][0]), int(got["time_msc"][-1])
        expected = market.ticks_range(sym, first, last + 1)
        missing = len(expected) - len(got)
        assert len(got) <= len(expected), f"{where}: {-missing} ticks stored twice"
        assert np.all(expected["time_msc"][len(got) :] == last), f"{where}: {missing} missing"
        assert np.array_equal(got, expected[: len(got)]), f"{where}: stored stream differs"
        total += len(got)
    return total
