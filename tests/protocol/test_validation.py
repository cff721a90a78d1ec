"""The tick value rules: the vectorised verdict against a row-by-row oracle, state passed
between arrays, and every adversarial value of issue #13 refused with its reason."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.clock import ManualClock, now_msc
from app.protocol.validation import (
    DEFINED_FLAGS,
    MAX_SYMBOL_LENGTH,
    SMALL_MESSAGE_TICKS,
    Reason,
    TickRules,
    blocks_valid,
    describe,
    symbol_ok,
    validate_blocks,
    validate_ticks,
)
from app.terminal.constants import TICK_FLAG_ASK, TICK_FLAG_BID, TICK_FLAG_LAST
from app.ticks import TICK_DTYPE, TickArray, TickBatch

CLOCK = ManualClock(start=1_764_000_000.0)
NOW = now_msc(CLOCK)
RULES = TickRules()
LO, HI = RULES.window(NOW)


def honest(n: int, start: int = NOW - 60_000) -> TickArray:
    """Ticks as a terminal produces them: ordered, spread > 0, flags of BID/ASK."""
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["time_msc"] = start + np.arange(n) * 7
    t["time"] = t["time_msc"] // 1000
    t["bid"] = 1.08 + np.arange(n) * 1e-5
    t["ask"] = t["bid"] + 2e-5
    t["volume"] = np.arange(n) % 3
    t["volume_real"] = t["volume"].astype(np.float64)
    t["flags"] = TICK_FLAG_BID | TICK_FLAG_ASK
    return t


def oracle(row: np.void, prev_msc: int | None) -> Reason | None:
    """One row judged by plain Python, in the documented order of precedence."""
    bid, ask, last = float(row["bid"]), float(row["ask"]), float(row["last"])
    vol, vol_real = int(row["volume"]), float(row["volume_real"])
    flags, tm, tsec = int(row["flags"]), int(row["time_msc"]), int(row["time"])
    if not all(math.isfinite(v) for v in (bid, ask, last, vol_real)):
        return Reason.NOT_FINITE
    if not all(0 <= v <= RULES.max_price for v in (bid, ask, last)):
        return Reason.PRICE_RANGE
    sides = flags & (TICK_FLAG_BID | TICK_FLAG_ASK)
    if bid > 0 and ask > 0 and ask < bid and sides not in (TICK_FLAG_BID, TICK_FLAG_ASK):
        return Reason.ASK_BELOW_BID
    if vol > RULES.max_volume or not 0 <= vol_real <= RULES.max_volume:
        return Reason.VOLUME_RANGE
    if not LO <= tm <= HI:
        return Reason.TIME_WINDOW
    if tsec != tm // 1000:
        return Reason.TIME_MISMATCH
    if prev_msc is not None and tm < prev_msc:
        return Reason.TIME_BACKWARDS
    if flags & ~DEFINED_FLAGS:
        return Reason.UNKNOWN_FLAGS
    return None


PRICES = st.one_of(
    st.sampled_from([0.0, 1.0, 1.1, -1.0, 1e308, -1e308, 1e12, 1e12 + 1, math.nan, math.inf]),
    st.floats(0, 1e6),
)
TIMES = st.one_of(
    st.sampled_from([LO, HI, LO - 1, HI + 1, -(10**15), 0, 2**63 - 1]),
    st.integers(NOW - 10_000, NOW + 10_000),
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[object, ...]:
    tm = draw(TIMES)
    time = tm // 1000 if draw(st.booleans()) or tm < 0 else draw(st.integers(0, 2**40))
    return (
        time,
        draw(PRICES),
        draw(PRICES),
        draw(PRICES),
        draw(st.sampled_from([0, 5, 10**15, 10**15 + 1, 2**64 - 1])),
        tm,
        draw(st.sampled_from([0, 2, 4, 6, 0x7E, 0x80, 0x100, 2**31, 2**32 - 1])),
        draw(st.sampled_from([0.0, 2.5, -1.0, math.nan, -math.inf, 1e16])),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(rows(), max_size=30), st.one_of(st.none(), TIMES))
def test_verdict_matches_a_row_by_row_oracle(
    data: list[tuple[object, ...]], last_msc: int | None
) -> None:
    ticks = np.array(data, dtype=TICK_DTYPE)
    verdict = validate_ticks("EURUSD", ticks, now_msc=NOW, last_msc=last_msc)
    prev = last_msc
    expected_last = last_msc
    for i, row in enumerate(ticks):
        want = oracle(row, prev)
        assert verdict.reason(i) == want, (i, row)
        prev = int(row["time_msc"])
        if want is None:
            t = int(row["time_msc"])
            expected_last = t if expected_last is None else max(expected_last, t)
    assert verdict.last_msc == expected_last


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(0, 200))
def test_state_passed_between_arrays_judges_like_one_array(n: int, cut: int) -> None:
    ticks = honest(n)
    cut = min(cut, n)
    whole = validate_ticks("EURUSD", ticks, now_msc=NOW)
    first = validate_ticks("EURUSD", ticks[:cut], now_msc=NOW)
    second = validate_ticks("EURUSD", ticks[cut:], now_msc=NOW, last_msc=first.last_msc)
    assert whole.ok
    assert first.ok
    assert second.ok
    assert second.last_msc == whole.last_msc == int(ticks["time_msc"][-1])
    # The state carries over: the first tick again, after the last one, is backwards.
    if n > 1:
        again = validate_ticks("EURUSD", ticks[:1], now_msc=NOW, last_msc=second.last_msc)
        assert again.reason(0) is Reason.TIME_BACKWARDS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(rows(), min_size=1, max_size=6), min_size=1, max_size=6))
def test_blocks_in_one_pass_judge_like_each_block_alone(
    data: list[list[tuple[object, ...]]],
) -> None:
    blocks = [TickBatch(f"S{i}", np.array(b, dtype=TICK_DTYPE)) for i, b in enumerate(data)]
    verdict, offsets = validate_blocks(blocks, now_msc=NOW)
    for i, block in enumerate(blocks):
        alone = validate_ticks(block.symbol, block.ticks, now_msc=NOW)
        assert np.array_equal(verdict.codes[offsets[i] : offsets[i + 1]], alone.codes)


@st.composite
def mostly_honest_blocks(draw: st.DrawFn) -> list[TickBatch]:
    """Small messages of honest blocks, some with one adversarial row or a bad order."""
    blocks = []
    for i in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 12))
        ticks = honest(n, start=draw(st.integers(NOW - 100_000, NOW)))
        if draw(st.integers(0, 3)) == 0:
            row = draw(rows())
            ticks[draw(st.integers(0, n - 1))] = np.array([row], dtype=TICK_DTYPE)[0]
        if n > 1 and draw(st.integers(0, 5)) == 0:
            ticks = ticks[::-1].copy()
        symbol = draw(st.sampled_from(["", "X\x00"])) if draw(st.integers(0, 9)) == 0 else f"S{i}"
        blocks.append(TickBatch(symbol, ticks))
    return blocks


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        mostly_honest_blocks(),
        st.lists(st.lists(rows(), min_size=1, max_size=6), min_size=1, max_size=4).map(
            lambda d: [TickBatch(f"S{i}", np.array(b, dtype=TICK_DTYPE)) for i, b in enumerate(d)]
        ),
    )
)
def test_the_quick_all_valid_check_never_passes_a_row_the_full_rules_refuse(
    blocks: list[TickBatch],
) -> None:
    """``blocks_valid`` (the bridge's fast path for small messages) against the row rules
    judged block by block: the same answer, except that it may leave a crossed one-sided
    quote to the full rules."""
    full = all(validate_ticks(b.symbol, b.ticks, now_msc=NOW).ok for b in blocks)
    quick = blocks_valid(blocks, now_msc=NOW)
    assert not quick or full
    crossed = any((b.ticks["ask"] < b.ticks["bid"]).any() for b in blocks)
    assert quick == full or crossed
    verdict, _ = validate_blocks(blocks, now_msc=NOW)
    assert verdict.ok == full


def test_honest_messages_of_any_size_pass_the_quick_check() -> None:
    for n in (1, 4, SMALL_MESSAGE_TICKS, SMALL_MESSAGE_TICKS + 1, 10_000):
        blocks = [
            TickBatch("EURUSD", honest(n)),
            TickBatch("GBPUSD", honest(3, start=NOW - 900_000)),
        ]
        assert blocks_valid(blocks, now_msc=NOW)
    crossed = honest(4)
    crossed["ask"] = crossed["bid"] - 1e-5
    crossed["flags"] = TICK_FLAG_BID  # one side changed: valid, but left to the full rules
    assert not blocks_valid([TickBatch("X", crossed)], now_msc=NOW)
    assert validate_blocks([TickBatch("X", crossed)], now_msc=NOW)[0].ok


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("volume", 2**64 - 1, Reason.VOLUME_RANGE),  # volume -1 as the wire carries it
        ("time_msc", -(10**15), Reason.TIME_WINDOW),
        ("bid", 1e308, Reason.PRICE_RANGE),
        ("ask", -1e308, Reason.PRICE_RANGE),
        ("bid", -1.0, Reason.PRICE_RANGE),
        ("flags", 2**31, Reason.UNKNOWN_FLAGS),
        ("flags", 0x100, Reason.UNKNOWN_FLAGS),
        ("volume_real", -1.0, Reason.VOLUME_RANGE),
        ("volume_real", math.nan, Reason.NOT_FINITE),
        ("last", math.inf, Reason.NOT_FINITE),
    ],
)
def test_issue_13_values_are_refused_with_their_reason(
    column: str, value: float, reason: Reason
) -> None:
    ticks = honest(5)
    ticks[column][2] = value
    if column == "time_msc":
        ticks["time"][2:] = ticks["time_msc"][2:] // 1000
    verdict = validate_ticks("EURUSD", ticks, now_msc=NOW)
    assert verdict.first_bad() == 2
    assert verdict.reason(2) is reason
    assert verdict.counts()[reason] >= 1
    line = describe(ticks, 2, reason)
    assert line.startswith(reason.value)
    assert "\n" not in line


def test_year_9999_and_far_past_are_outside_the_window() -> None:
    ticks = honest(2)
    ticks["time_msc"][1] = 253_402_300_799_000  # 9999-12-31
    ticks["time"][1] = ticks["time_msc"][1] // 1000
    assert validate_ticks("X", ticks, now_msc=NOW).reason(1) is Reason.TIME_WINDOW
    narrow = TickRules(max_age_s=60.0, max_ahead_s=1.0)
    old = honest(1, start=NOW - 120_000)
    assert validate_ticks("X", old, now_msc=NOW, rules=narrow).reason(0) is Reason.TIME_WINDOW
    later = now_msc(ManualClock(start=CLOCK.time() - 100))  # the window follows the clock
    assert validate_ticks("X", old, now_msc=later, rules=narrow).ok


def test_ask_below_bid_passes_only_when_one_side_changed() -> None:
    ticks = honest(4)
    ticks["ask"] = ticks["bid"] - 1e-5
    ticks["flags"] = [TICK_FLAG_BID, TICK_FLAG_ASK, TICK_FLAG_BID | TICK_FLAG_ASK, TICK_FLAG_LAST]
    verdict = validate_ticks("X", ticks, now_msc=NOW)
    assert [verdict.reason(i) for i in range(4)] == [
        None,
        None,
        Reason.ASK_BELOW_BID,
        Reason.ASK_BELOW_BID,
    ]
    # A side that is not set (0) never counts as crossed: exchange symbols without quotes.
    ticks["bid"] = 0.0
    assert validate_ticks("X", ticks, now_msc=NOW).ok


@pytest.mark.parametrize(
    "symbol", ["", "EUR\x00USD", "EUR\x1b[31mUSD", "EUR\nUSD", "X" * (MAX_SYMBOL_LENGTH + 1)]
)
def test_bad_symbol_names_fail_every_row(symbol: str) -> None:
    assert not symbol_ok(symbol)
    verdict = validate_ticks(symbol, honest(3), now_msc=NOW)
    assert [verdict.reason(i) for i in range(3)] == [Reason.BAD_SYMBOL] * 3
    blocks, _ = validate_blocks([TickBatch(symbol, honest(3))], now_msc=NOW)
    assert blocks.counts() == {Reason.BAD_SYMBOL: 3}


def test_validation_is_vectorised_a_million_ticks_in_well_under_a_second() -> None:
    ticks = honest(1_000_000, start=NOW - 10_000_000)
    started = time.perf_counter()
    verdict = validate_ticks("EURUSD", ticks, now_msc=NOW)
    elapsed = time.perf_counter() - started
    assert verdict.ok
    assert elapsed < 2.0, f"{elapsed:.2f} s for a million ticks"


def test_flag_bits_agree_with_the_terminal_constants() -> None:
    from app.protocol import validation  # noqa: PLC0415
    from app.terminal import constants  # noqa: PLC0415

    assert (validation.TICK_FLAG_BID, validation.TICK_FLAG_ASK) == (
        constants.TICK_FLAG_BID,
        constants.TICK_FLAG_ASK,
    )
    defined = (
        constants.TICK_FLAG_BID
        | constants.TICK_FLAG_ASK
        | constants.TICK_FLAG_LAST
        | constants.TICK_FLAG_VOLUME
        | constants.TICK_FLAG_BUY
        | constants.TICK_FLAG_SELL
    )
    assert defined & ~DEFINED_FLAGS == 0


def test_rules_refuse_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match="max_price"):
        TickRules(max_price=math.nan)
    with pytest.raises(ValueError, match="allowed_flags"):
        TickRules(allowed_flags=2**40)
