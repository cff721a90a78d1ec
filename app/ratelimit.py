"""A token bucket on the project's :class:`~app.clock.Clock`: at most ``rate`` events a
second on average, with bursts of up to ``burst``.

Pure and clock-driven so that a limit (orders per second in the risk engine) is tested
with a :class:`~app.clock.ManualClock` instead of sleeping. The bucket starts full: the
first ``burst`` events pass at once, then one every ``1 / rate`` seconds.
"""

from __future__ import annotations

from app.clock import Clock

__all__ = ["TokenBucket"]

#: Tolerance on a whole token: ``0.1 * 10`` seconds of refill must make a token although
#: floating point sums it to 0.9999999999999999.
_EPS = 1e-9


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst`` (default ``max(1, rate)``)."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, clock: Clock, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("a token bucket's rate must be above 0")
        self._clock = clock
        self._rate = float(rate)
        self._burst = float(burst) if burst is not None else max(1.0, self._rate)
        self._tokens = self._burst
        self._last = clock.monotonic()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def reconfigure(self, rate: float, burst: float | None = None) -> None:
        """New rate (a settings change): tokens already earned stay, capped by the new burst."""
        if rate <= 0:
            raise ValueError("a token bucket's rate must be above 0")
        self._refill()
        self._rate = float(rate)
        self._burst = float(burst) if burst is not None else max(1.0, self._rate)
        self._tokens = min(self._tokens, self._burst)

    def wait_s(self) -> float:
        """Seconds until a token is there (0.0: one is there now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 - _EPS else (1.0 - self._tokens) / self._rate

    def try_take(self) -> bool:
        """Take a token if there is one."""
        self._refill()
        if self._tokens >= 1.0 - _EPS:
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._last = now
