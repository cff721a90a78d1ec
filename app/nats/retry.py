"""How the bridge's NATS tasks stay connected: what they retry, and how.

Why one module: the tick forwarder and the signal relay are both background tasks of the
reference bridge that must never stop it nor make it wait — a cluster that is down only
delays them. They share one loop (:class:`Reconnecting`): connect (nats-py reconnecting
underneath), run the task's session on the connection, and on a transient error warn once
per outage, back off (app/backoff.py) and run the session again; the connection is closed
within a bound at the end so that the bridge's ``stop()`` never hangs.

The one exception to retrying is being cancelled: nats-py turns a cancellation into its
own errors in places (a publish waiting for room raises ``TooManyStalledMsgsError``, a
request or a fetch a timeout), so a loop that retries "NATS errors" can swallow the
cancellation of its task and never end. Every retry handler calls
:func:`raise_if_cancelling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats
import nats.errors
from nats.aio.client import Client

from app.backoff import Backoff, BackoffPolicy

log = logging.getLogger(__name__)

__all__ = ["TRANSIENT", "Reconnecting", "raise_if_cancelling"]

#: Errors of a cluster that is down or moving (node killed, leader election, reconnect).
TRANSIENT = (nats.errors.Error, asyncio.TimeoutError, OSError)

#: How long closing the connection may take when the task stops.
CLOSE_TIMEOUT_S = 5.0


def raise_if_cancelling() -> None:
    """Re-raise ``CancelledError`` when the running task was asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


Session = Callable[[Client], Awaitable[None]]


class Reconnecting:
    """One connection to ``servers`` for a background task, kept up until it is cancelled.

    The session runs until it fails; it calls :meth:`progressed` when its work went
    through (a page acked, a round of fetches), which ends the outage: the next failure
    is warned about again and backs off from the shortest delay.
    """

    def __init__(
        self,
        servers: tuple[str, ...],
        what: str,
        *,
        retry_on: tuple[type[Exception], ...] = (),
        policy: BackoffPolicy | None = None,
    ) -> None:
        self.servers = servers
        self.what = what
        self._retry_on = TRANSIENT + retry_on
        self._backoff = Backoff(policy or BackoffPolicy(initial=0.2, maximum=5.0))
        #: Failures retried so far (all outages).
        self.failures = 0

    @property
    def paused(self) -> bool:
        """True from a failure until the session progresses again."""
        return self._backoff.attempt > 0

    def progressed(self) -> None:
        if self.paused:
            log.info("%s resumed", self.what)
        self._backoff.reset()

    async def run(self, session: Session) -> None:
        """Until cancelled: connect, run ``session``; retry what is transient."""
        nc: Client | None = None
        try:
            while True:
                try:
                    if nc is None or nc.is_closed:
                        nc = await self._connect()
                    await session(nc)
                except self._retry_on as exc:
                    raise_if_cancelling()
                    if not self.paused:
                        log.warning("%s paused: %s", self.what, exc or type(exc).__name__)
                    self.failures += 1
                    await asyncio.sleep(self._backoff.next_delay())
        finally:
            if nc is not None:
                with contextlib.suppress(*TRANSIENT):  # bounded: stop() must not hang
                    await asyncio.wait_for(nc.close(), CLOSE_TIMEOUT_S)

    async def _connect(self) -> Client:
        return await nats.connect(
            servers=list(self.servers),
            connect_timeout=2,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            error_cb=_quiet,
        )


async def _quiet(exc: Exception) -> None:
    """nats-py reports every failed reconnect here; the loop warns once per outage."""
    log.debug("nats: %s", exc)
