"""The one retry policy: exponential growth, a cap, and jitter within its bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.backoff import Backoff, BackoffPolicy


def test_ceiling_grows_exponentially_up_to_the_maximum() -> None:
    policy = BackoffPolicy(initial=0.5, maximum=4.0, multiplier=2.0, jitter=0.0)
    assert [policy.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [policy.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert BackoffPolicy(maximum=30.0).ceiling(10_000) == 30.0


@given(
    attempt=st.integers(0, 100),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_jittered_delay_stays_within_its_band(attempt: int, jitter: float, seed: int) -> None:
    policy = BackoffPolicy(initial=0.2, maximum=10.0, jitter=jitter)
    d = policy.delay(attempt, random.Random(seed))
    ceiling = policy.ceiling(attempt)
    assert ceiling * (1 - jitter) - 1e-12 <= d <= ceiling


def test_jitter_spreads_simultaneous_retries() -> None:
    policy = BackoffPolicy(initial=1.0, maximum=1.0, jitter=0.5)
    rng = random.Random(1)
    delays = {round(policy.delay(0, rng), 6) for _ in range(50)}
    assert len(delays) > 40


def test_counter_advances_and_resets() -> None:
    b = Backoff(BackoffPolicy(initial=1.0, maximum=8.0, jitter=0.0))
    assert [b.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    b.reset()
    assert b.next_delay() == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0}, "initial"),
        ({"initial": 5, "maximum": 1}, "initial"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackoffPolicy(**kwargs)
