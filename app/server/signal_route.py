"""The bridge's half of the ``signals`` feature: a client's signals out, its answers in.

One :class:`SignalRoute` per bridge connection whose hello and welcome both name the
feature. It sends every stored signal of the connection's client that is still valid
and not yet received, and sends it again every ``resend_s`` until the client's
``signal_received`` (a frame lost with a dying connection is sent on the next one: the
client de-duplicates by id, so a resend can never execute twice). It stores the
client's ``signal_outcome`` (the first one of an id) and answers ``outcome_stored``, so
the client stops resending it.

It wakes when the gateway stores a signal for its client (:meth:`Bridge.wake_signals`)
and polls the store every ``poll_s`` besides, so a bridge in another process than the
gateway still finds new signals (see :mod:`app.server.signal_store` for why the
database is the route).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.protocol.codec import MAX_TEXT, OutcomeStored, SignalOutcome, SignalReceived, encode
from app.protocol.signal_rules import OUTCOMES
from app.security.redact import escape_controls
from app.server.signal_store import SignalStore

log = logging.getLogger(__name__)

#: How often a bridge looks for new signals in the store without being woken, seconds.
SIGNAL_POLL_S = 0.5
#: A signal not acknowledged within this is sent again, seconds.
SIGNAL_RESEND_S = 2.0


class SignalRoute:
    def __init__(
        self,
        store: SignalStore,
        client_id: str,
        send: Callable[[bytes], Awaitable[None]],
        *,
        clock: Clock = SYSTEM_CLOCK,
        poll_s: float = SIGNAL_POLL_S,
        resend_s: float = SIGNAL_RESEND_S,
    ) -> None:
        self._store = store
        self.client_id = client_id
        self._send = send
        self._clock = clock
        self._poll_s = poll_s
        self._resend_s = resend_s
        self.wake = asyncio.Event()
        self._sent: dict[str, float] = {}

    async def run(self) -> None:
        """Send waiting signals until cancelled (the connection ended)."""
        while True:
            self.wake.clear()
            now = now_msc(self._clock)
            waiting = await asyncio.to_thread(self._store.waiting, self.client_id, now)
            mono = time.monotonic()
            ids = set()
            for signal in waiting:
                ids.add(signal.id)
                last = self._sent.get(signal.id)
                if last is None or mono - last >= self._resend_s:
                    self._sent[signal.id] = mono
                    await self._send(encode(signal))
            for gone in self._sent.keys() - ids:  # received or expired: forget it
                del self._sent[gone]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._poll_s)

    async def handle(self, message: SignalReceived | SignalOutcome) -> None:
        at = now_msc(self._clock)
        if isinstance(message, SignalReceived):
            if await asyncio.to_thread(
                self._store.mark_received, self.client_id, message.id[:MAX_TEXT], at
            ):
                log.info(
                    "bridge: client %r received signal %s",
                    self.client_id,
                    escape_controls(message.id[:100]),
                )
            self._sent.pop(message.id, None)
            return
        if message.outcome not in OUTCOMES:
            log.warning(
                "bridge: client %r reported outcome %r for signal %s: not an outcome; ignored",
                self.client_id,
                message.outcome[:20],
                escape_controls(message.id[:100]),
            )
        else:
            clean = SignalOutcome(
                message.id[:MAX_TEXT],
                message.outcome,
                message.reason[:MAX_TEXT],
                message.ticket,
                message.price,
                message.slippage_points,
                message.latency_ms,
            )
            stored = await asyncio.to_thread(self._store.store_outcome, self.client_id, clean, at)
            if stored:
                log.info(
                    "bridge: signal %s of client %r: %s %s",
                    escape_controls(clean.id[:100]),
                    self.client_id,
                    clean.outcome,
                    escape_controls(clean.reason),
                )
        self._sent.pop(message.id, None)
        await self._send(encode(OutcomeStored(message.id)))
