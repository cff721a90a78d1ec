"""The simulated market is a pure function of (seed, symbol, time), and looks like a feed."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.terminal.constants import (
    TICK_FLAG_ASK,
    TICK_FLAG_BID,
    TICK_FLAG_BUY,
    TICK_FLAG_LAST,
    TICK_FLAG_SELL,
    TICK_FLAG_VOLUME,
)
from app.terminal.market import DEFAULT_PROFILES, Market, SymbolProfile
from app.ticks import TICK_DTYPE, TickArray

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000  # ms
HOUR_MSC = 1_700_002_800_000  # a whole UTC hour: the drop comparison restarts there

EXCHANGE = SymbolProfile(
    name="SBER",
    digits=2,
    point=0.01,
    base_price=280.0,
    spread_points=3,
    volatility=5e-5,
    tick_rate=40.0,
    description="Sberbank",
    currency_base="RUB",
    currency_profit="RUB",
    has_last=True,
    contract_size=10.0,
    path="Stocks\\SBER",
)
PROFILES = {**DEFAULT_PROFILES, "SBER": EXCHANGE}


def market(rates: dict[str, float] | None = None, seed: int = 7) -> Market:
    return Market(seed, PROFILES, rates)


def test_default_profiles_are_the_five_symbols_with_consistent_precision() -> None:
    assert set(DEFAULT_PROFILES) == {"EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"}
    for name, p in DEFAULT_PROFILES.items():
        assert p.name == name
        assert p.point == pytest.approx(10.0**-p.digits)
        assert 1 <= p.tick_rate <= 20
        assert not p.has_last  # a retail FX/CFD feed: quotes only
    assert DEFAULT_PROFILES["EURUSD"].digits == 5
    assert DEFAULT_PROFILES["USDJPY"].digits == 3
    assert DEFAULT_PROFILES["XAUUSD"].digits == 2


def test_profile_and_rate_validation() -> None:
    with pytest.raises(ValueError, match="unknown symbols: NOPE"):
        Market(1, DEFAULT_PROFILES, {"NOPE": 5})
    with pytest.raises(ValueError, match="EURUSD"):
        Market(1, DEFAULT_PROFILES, {"EURUSD": -1})
    with pytest.raises(ValueError, match="positive"):
        SymbolProfile("X", 2, 0.0, 1.0, 1, 1e-5)
    with pytest.raises(KeyError, match="NOPE"):
        market().ticks_range("NOPE", T0, T0 + 1000)


@pytest.mark.parametrize("symbol", [*DEFAULT_PROFILES, "SBER"])
def test_ticks_are_well_formed(symbol: str) -> None:
    m = market()
    ticks = m.ticks_range(symbol, T0, T0 + 120_000)
    p = PROFILES[symbol]
    assert ticks.dtype == TICK_DTYPE
    assert len(ticks) > 60 * p.tick_rate
    tm = ticks["time_msc"]
    assert tm[0] >= T0
    assert tm[-1] < T0 + 120_000
    assert np.all(np.diff(tm) >= 0)
    assert np.array_equal(ticks["time"], tm // 1000)
    assert np.all(ticks["ask"] > ticks["bid"])
    scaled = ticks["bid"] * 10**p.digits
    assert np.allclose(scaled, np.round(scaled), atol=1e-6)
    assert np.all(np.abs(ticks["bid"] / p.base_price - 1) < 0.2)
    assert np.all(ticks["flags"] != 0)
    if not p.has_last:
        assert np.all(ticks["flags"] & ~np.uint32(TICK_FLAG_BID | TICK_FLAG_ASK) == 0)
        assert not ticks["last"].any()
        assert not ticks["volume"].any()


def test_flags_say_exactly_what_changed_and_unchanged_quotes_are_not_sent() -> None:
    ticks = market({"EURUSD": 3000}).ticks_range("EURUSD", T0 + 1, T0 + 20_000)
    bid_changed = ticks["bid"][1:] != ticks["bid"][:-1]
    ask_changed = ticks["ask"][1:] != ticks["ask"][:-1]
    flags = ticks["flags"][1:]
    assert np.array_equal((flags & TICK_FLAG_BID) != 0, bid_changed)
    assert np.array_equal((flags & TICK_FLAG_ASK) != 0, ask_changed)
    assert np.all(bid_changed | ask_changed)


def test_several_ticks_share_a_millisecond_at_high_rates() -> None:
    ticks = market({"EURUSD": 20_000}).ticks_range("EURUSD", T0, T0 + 1000)
    _, per_ms = np.unique(ticks["time_msc"], return_counts=True)
    assert 15_000 < len(ticks) <= 20_000 * 1.1
    assert per_ms.max() >= 10
    assert (per_ms > 1).sum() > 500


def test_deals_of_an_exchange_symbol_carry_last_volume_and_side() -> None:
    ticks = market().ticks_range("SBER", T0, T0 + 60_000)
    deal = (ticks["flags"] & (TICK_FLAG_LAST | TICK_FLAG_VOLUME)) != 0
    assert 0.2 < deal.mean() < 0.6
    buy = (ticks["flags"] & TICK_FLAG_BUY) != 0
    sell = (ticks["flags"] & TICK_FLAG_SELL) != 0
    assert np.array_equal(buy ^ sell, deal)
    assert np.array_equal(ticks["last"][buy], ticks["ask"][buy])
    assert np.array_equal(ticks["last"][sell], ticks["bid"][sell])
    assert np.all((ticks["volume"][deal] >= 1) & (ticks["volume"][deal] <= 10))
    assert np.array_equal(ticks["volume_real"], ticks["volume"].astype(float))
    # Between deals the last deal's price and volume stay on the quotes.
    after = np.flatnonzero(deal[:-1] & ~deal[1:]) + 1
    assert np.array_equal(ticks["last"][after], ticks["last"][after - 1])


def test_sent_rate_is_close_to_the_generated_rate() -> None:
    m = market()
    for symbol, p in DEFAULT_PROFILES.items():
        n = len(m.ticks_range(symbol, T0, T0 + 600_000))
        assert 0.8 * p.tick_rate * 600 < n < 1.05 * p.tick_rate * 600, symbol


@pytest.mark.parametrize("symbol", ["EURUSD", "BTCUSD"])
def test_volatility_matches_the_profile(symbol: str) -> None:
    """Increments over 30 s have the variance of a random walk with the profile's vol."""
    p = DEFAULT_PROFILES[symbol]
    ticks = market({symbol: 1.0}).ticks_range(symbol, T0, T0 + 6 * 3_600_000)
    grid = np.arange(T0 + 60_000, T0 + 6 * 3_600_000, 30_000)
    at = np.searchsorted(ticks["time_msc"], grid, side="right") - 1
    mid = np.log((ticks["bid"][at] + ticks["ask"][at]) / 2)
    per_sqrt_second = np.std(np.diff(mid)) / np.sqrt(30)
    assert per_sqrt_second == pytest.approx(p.volatility, rel=0.3)


def test_two_fresh_markets_agree_and_seeds_differ() -> None:
    a = market().ticks_range("GBPUSD", T0, T0 + 30_000)
    b = market().ticks_range("GBPUSD", T0, T0 + 30_000)
    c = market(seed=8).ticks_range("GBPUSD", T0, T0 + 30_000)
    assert a.tobytes() == b.tobytes()
    assert len(c) != len(a) or not np.array_equal(a, c)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    symbol=st.sampled_from(["EURUSD", "XAUUSD", "SBER"]),
    rate=st.sampled_from([None, 0.5, 1500.0]),
    start=st.integers(HOUR_MSC - 20_000, HOUR_MSC + 5_000),
    cuts=st.lists(st.integers(0, 30_000), min_size=1, max_size=6),
    warm=st.integers(-5_000, 5_000),
)
def test_any_chunking_gives_the_same_ticks(
    symbol: str, rate: float | None, start: int, cuts: list[int], warm: int
) -> None:
    """[a, c) == [a, b) + [b, c) at millisecond resolution, whatever was asked before."""
    rates = {symbol: rate} if rate else None
    bounds = [start, *sorted(start + c for c in cuts)]
    whole = market(rates).ticks_range(symbol, bounds[0], bounds[-1])
    chunked_market = market(rates)
    chunked_market.ticks_range(symbol, start + warm, start + warm + 2_500)  # warm caches
    parts = [chunked_market.ticks_range(symbol, a, b) for a, b in itertools.pairwise(bounds)]
    assert np.concatenate([whole[:0], *parts]).tobytes() == whole.tobytes()


def test_a_span_is_the_same_in_another_process() -> None:
    code = (
        "import sys; from app.terminal.market import Market, DEFAULT_PROFILES; "
        "m = Market(11, DEFAULT_PROFILES, {'XAUUSD': 400}); "
        f"sys.stdout.buffer.write(m.ticks_range('XAUUSD', {T0}, {T0 + 5_000}).tobytes())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    here = Market(11, DEFAULT_PROFILES, {"XAUUSD": 400}).ticks_range("XAUUSD", T0, T0 + 5_000)
    assert len(here) > 1000
    assert out == here.tobytes()


def test_ticks_from_is_a_prefix_of_the_range_and_respects_count_until_and_mask() -> None:
    m = market()
    whole = m.ticks_range("SBER", T0 + 123, T0 + 60_000)
    first = m.ticks_from("SBER", T0 + 123, 500, T0 + 60_000)
    assert first.tobytes() == whole[:500].tobytes()
    assert len(m.ticks_from("SBER", T0 + 123, 10**9, T0 + 60_000)) == len(whole)
    deals = m.ticks_from("SBER", T0 + 123, 100, T0 + 60_000, mask=TICK_FLAG_LAST)
    assert len(deals) == 100
    expected = whole[(whole["flags"] & TICK_FLAG_LAST) != 0][:100]
    assert deals.tobytes() == expected.tobytes()
    assert len(m.ticks_from("SBER", T0, 0, T0 + 60_000)) == 0
    assert len(market({"EURUSD": 0}).ticks_from("EURUSD", T0, 10, T0 + 10**9)) == 0


def test_ticks_from_over_a_huge_span_with_a_small_count_is_cheap() -> None:
    m = market()
    started = time.perf_counter()
    got = m.ticks_from("EURUSD", T0, 10, T0 + 365 * 86_400_000)
    assert len(got) == 10
    assert time.perf_counter() - started < 1.0


def test_last_tick_is_the_newest_strictly_before_the_moment() -> None:
    m = market()
    ticks = m.ticks_range("USDJPY", T0, T0 + 10_000)
    at = int(ticks["time_msc"][-1])
    last = m.last_tick("USDJPY", at + 1)
    assert last is not None
    assert last.tobytes() == ticks[-1].tobytes()
    before = m.last_tick("USDJPY", at)
    assert before is not None
    assert int(before["time_msc"]) < at
    assert market({"USDJPY": 0}).last_tick("USDJPY", T0) is None


def test_results_are_fresh_arrays() -> None:
    m = market({"EURUSD": 500})
    first: TickArray = m.ticks_range("EURUSD", T0, T0 + 1_000)
    keep = first.copy()
    first["bid"] = 0.0
    assert m.ticks_range("EURUSD", T0, T0 + 1_000).tobytes() == keep.tobytes()


def test_one_second_at_20k_ticks_is_generated_in_milliseconds() -> None:
    m = market({"EURUSD": 20_000})
    m.ticks_range("EURUSD", T0 - 1000, T0)
    started = time.perf_counter()
    for i in range(5):
        m.ticks_range("EURUSD", T0 + i * 1000, T0 + (i + 1) * 1000)
    # ~2-3 ms each on a laptop core; the bound only catches a gross regression.
    assert (time.perf_counter() - started) / 5 < 0.05
