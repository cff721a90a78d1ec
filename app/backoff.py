"""The one retry policy of the project: exponential backoff with jitter.

Workers, the bridge link and the hub client all reconnect through this, so that a
backend outage never turns into a synchronised stampede of reconnects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """``delay(n) = min(maximum, initial * multiplier**n)``, then jittered.

    ``jitter`` is the fraction of the delay that is randomised: 0 gives the bare
    exponential, 1 gives "full jitter" (uniform between 0 and the delay). The default
    0.5 keeps every delay within [50 %, 100 %] of the exponential, which spreads
    reconnects while still guaranteeing a minimum pause.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be within [0, 1]")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay before retry number ``attempt`` (0-based)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # Cap the exponent so that huge attempt counts never overflow a float.
        exp = min(attempt, 64)
        return float(min(self.maximum, self.initial * self.multiplier**exp))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(attempt)
        r = (rng or random).random()
        return ceiling * (1.0 - self.jitter * r)


@dataclass(slots=True)
class Backoff:
    """Attempt counter over a :class:`BackoffPolicy`; ``reset()`` after a success."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        d = self.policy.delay(self.attempt, self.rng)
        self.attempt += 1
        return d

    def reset(self) -> None:
        self.attempt = 0
