"""The login throttle's rule, on a manual clock, and the password hashes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.clock import ManualClock
from app.server.throttle import MAX_KEYS, LoginThrottle
from app.server.users import hash_password, verify_password


def test_free_failures_then_exponential_lockout_capped() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(clock, free_failures=3, base=1.0, maximum=8.0)
    waits = []
    for _ in range(8):
        throttle.failed("alice", "10.0.0.1")
        waits.append(throttle.retry_after("alice", "10.0.0.1"))
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    clock.advance(8.0)
    assert throttle.retry_after("alice", "10.0.0.1") == 0.0


def test_the_user_is_locked_from_every_address_and_the_address_for_every_user() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(clock, free_failures=2)
    for i in range(3):
        throttle.failed("alice", f"10.0.0.{i}")  # spread over addresses
    assert throttle.retry_after("alice", "192.168.1.1") > 0
    for i in range(3):
        throttle.failed(f"user{i}", "10.9.9.9")  # one address, many users
    assert throttle.retry_after("zed", "10.9.9.9") > 0
    assert throttle.retry_after("zed", "10.1.1.1") == 0


def test_success_starts_afresh_and_old_failures_are_forgotten() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(clock, free_failures=1, forget_after=60)
    throttle.failed("a", "x")
    throttle.succeeded("a", "x")
    throttle.failed("a", "x")
    assert throttle.retry_after("a", "x") == 0
    clock.advance(61)
    throttle.failed("a", "x")
    assert throttle.retry_after("a", "x") == 0


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fail", "ok", "wait"]),
            st.sampled_from(["u1", "u2"]),
            st.sampled_from(["a1", "a2"]),
            st.floats(0, 100),
        ),
        max_size=60,
    )
)
def test_lockout_is_bounded_and_never_lets_more_than_the_free_failures_through(
    steps: list[tuple[str, str, str, float]],
) -> None:
    """Whatever happens, a wait is within 0..maximum, and a guesser who respects no
    lockout gets at most ``free_failures`` checked attempts per lockout window."""
    clock = ManualClock()
    throttle = LoginThrottle(clock, free_failures=4, base=0.5, maximum=60.0)
    for kind, user, address, dt in steps:
        if kind == "wait":
            clock.advance(dt)
        elif throttle.retry_after(user, address) == 0:
            (throttle.failed if kind == "fail" else throttle.succeeded)(user, address)
        wait = throttle.retry_after(user, address)
        assert 0.0 <= wait <= 60.0
    checked = 0
    for _ in range(100):  # no time passes: a burst
        if throttle.retry_after("u3", "a3") == 0:
            throttle.failed("u3", "a3")
            checked += 1
    assert checked <= 5


def test_the_throttle_forgets_the_oldest_keys_beyond_its_bound() -> None:
    throttle = LoginThrottle(ManualClock())
    for i in range(MAX_KEYS):
        throttle.failed(f"u{i}", "a")
    assert len(throttle._entries) <= MAX_KEYS


def test_password_hashes_are_salted_and_verify() -> None:
    one, two = hash_password("pw", n=2**10), hash_password("pw", n=2**10)
    assert one != two
    assert one.startswith("scrypt$1024$")
    assert verify_password("pw", one)
    assert not verify_password("pW", one)
    assert not verify_password("pw", "scrypt$garbage")
    assert not verify_password("pw", "md5$x$y$z$a$b")
