"""What the NATS adapters retry, and the one exception to it: being cancelled.

Why this module: nats-py turns a cancellation into its own errors in places (a publish
waiting for room raises ``TooManyStalledMsgsError``, a request or a fetch a timeout),
so a loop that retries "NATS errors" can swallow the cancellation of its task and never
end — a backend's ``stop()`` then waits forever. Every retry loop calls
:func:`raise_if_cancelling` in its handler.
"""

from __future__ import annotations

import asyncio

import nats.errors

#: Errors of a cluster that is down or moving (node killed, leader election, reconnect).
TRANSIENT = (nats.errors.Error, asyncio.TimeoutError, OSError)


def raise_if_cancelling() -> None:
    """Re-raise ``CancelledError`` when the running task was asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
