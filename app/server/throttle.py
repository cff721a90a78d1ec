"""Login throttling, pure: failures per user and per address, exponential lockout.

Kept apart from the servers so that its rule can be driven by a manual clock in tests.
The first ``free_failures`` failures of a key cost nothing (typos); every further one
locks the key for ``base * 2**k`` seconds, capped at ``maximum``. A locked key is refused
without even checking the password, so that a guessing run gains nothing by hammering.
Both the user and the address are keys: spreading guesses over many addresses still
locks the user, and one address trying many users is locked too. Locking a user is a
denial of service an attacker can cause; the lockout is short and capped for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.clock import SYSTEM_CLOCK, Clock

#: Most keys remembered; the oldest are forgotten first (bounded memory under a flood).
MAX_KEYS = 10_000


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass(slots=True)
class LoginThrottle:
    clock: Clock = SYSTEM_CLOCK
    free_failures: int = 5
    base: float = 1.0
    maximum: float = 300.0
    #: A key with no failure for this long starts afresh.
    forget_after: float = 3600.0
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.free_failures < 0 or self.base <= 0 or self.maximum < self.base:
            raise ValueError("throttle needs free_failures >= 0 and 0 < base <= maximum")

    @staticmethod
    def _keys(user: str, address: str) -> tuple[str, str]:
        return "u:" + user, "a:" + address

    def _entry(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and self.clock.monotonic() - entry.last > self.forget_after:
            del self._entries[key]
            return None
        return entry

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until a login of ``user`` from ``address`` may be tried; 0 if now."""
        now = self.clock.monotonic()
        waits = [0.0]
        for key in self._keys(user, address):
            entry = self._entry(key)
            if entry is not None:
                waits.append(entry.locked_until - now)
        return max(waits)

    def failed(self, user: str, address: str) -> None:
        now = self.clock.monotonic()
        for key in self._keys(user, address):
            entry = self._entry(key)
            if entry is None:
                if len(self._entries) >= MAX_KEYS:
                    del self._entries[next(iter(self._entries))]
                entry = self._entries[key] = _Entry()
            entry.failures += 1
            entry.last = now
            over = entry.failures - self.free_failures
            if over > 0:
                lock = min(self.maximum, self.base * 2.0 ** min(over - 1, 64))
                entry.locked_until = max(entry.locked_until, now + lock)

    def succeeded(self, user: str, address: str) -> None:
        """A correct password: the user's count starts afresh (the address's too)."""
        for key in self._keys(user, address):
            self._entries.pop(key, None)
