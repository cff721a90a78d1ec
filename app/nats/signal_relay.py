"""Signals over the cluster: the bridge publishes the signals it issues, and stores the outcomes.

The smallest real relay of issue #17 part 3, beside the tick forwarder
(``backend --forward-nats``). A ``SIGNALS`` stream holds ``signals.<client>`` (bridge →
clients and services) and ``outcomes.<client>`` (clients → bridge):

* every row of the bridge's ``signals`` table (what the gateway and the demo source
  stored) is published once as the protocol v2 ``Signal`` frame the bridge sends on a
  WebSocket, with ``Nats-Msg-Id`` ``signal/<id>``; the position (rowid) is kept in the
  database like the forwarder's (``nats_forward``, row ``SIGNALS``) and saved after the
  acks, so a restart neither skips one nor — within the duplicate window — repeats one;
* a durable pull consumer (``bridge-outcomes``) reads ``signal_received`` and
  ``signal_outcome`` frames from ``outcomes.<client>`` and hands them to the bridge's own
  :meth:`app.server.signal_route.SignalRoute.handle` — the same value rules and the same
  "first outcome stays" store as over the WebSocket — then acks them (the JetStream ack
  replaces ``outcome_stored``). The client id is the subject's token, which is what the
  cluster's permissions can restrict, never a header. Anything else is terminated.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from app.nats.forwarder import ForwardLog
from app.nats.retry import Reconnecting, raise_if_cancelling
from app.nats.stream import StreamRefusedError, ensure_stream
from app.nats.subjects import (
    H_CLIENT,
    MSG_ID,
    OUTCOMES_ROOT,
    SIGNALS_ROOT,
    StreamSpec,
    signals_subject,
    untoken,
)
from app.protocol import codec
from app.server.db import connect
from app.server.signal_route import SignalRoute
from app.server.signal_store import SignalStore

log = logging.getLogger(__name__)

SIGNALS_STREAM = "SIGNALS"
OUTCOMES_DURABLE = "bridge-outcomes"


def signals_spec(replicas: int = 1) -> StreamSpec:
    """The ``SIGNALS`` stream: both directions, kept until deleted (signals are few)."""
    return StreamSpec(
        name=SIGNALS_STREAM,
        replicas=replicas,
        duplicate_window_s=600.0,
        max_age_s=0.0,
        subjects=(f"{SIGNALS_ROOT}.>", f"{OUTCOMES_ROOT}.>"),
    )


def signal_msg_id(signal_id: str) -> str:
    """The de-duplication id of a signal on the stream (one per signal id, ever)."""
    return f"signal/{signal_id}"


def outcome_client(subject: str) -> str | None:
    """The client of an ``outcomes.<client>`` subject; None for any other subject."""
    parts = subject.split(".")
    if len(parts) != 2 or parts[0] != OUTCOMES_ROOT or not parts[1]:
        return None
    try:
        return untoken(parts[1])
    except (ValueError, UnicodeDecodeError):
        return None


async def _discard(_: bytes) -> None:
    """Where a route's ``outcome_stored`` goes on NATS: nowhere, the ack says it."""


class SignalRelay:
    """Publishes issued signals and stores the outcomes consumed from the stream."""

    def __init__(
        self,
        db_path: Path,
        servers: tuple[str, ...],
        signals: SignalStore,
        *,
        replicas: int = 1,
        poll_s: float = 0.2,
    ) -> None:
        self.db_path = db_path
        self.servers = servers
        self._signals = signals
        self._spec = signals_spec(replicas)
        self._poll = poll_s
        self._routes: dict[str, SignalRoute] = {}
        self._link = Reconnecting(servers, "signal relay to NATS", retry_on=(StreamRefusedError,))
        self.published = 0
        self.handled = 0

    async def run(self) -> None:
        """Until cancelled: connect (retrying forever), publish signals, store outcomes."""
        pos = await asyncio.to_thread(ForwardLog, self.db_path, SIGNALS_STREAM)
        try:
            await self._link.run(lambda nc: self._relay(nc, pos))
        finally:
            await asyncio.to_thread(pos.close)

    async def _relay(self, nc: Client, pos: ForwardLog) -> None:
        sub = await self._setup(nc)
        while True:
            await self._publish_new(nc, pos)
            await self._take_outcomes(sub)
            self._link.progressed()

    async def _setup(self, nc: Client) -> nats.js.JetStreamContext.PullSubscription:
        js = nc.jetstream()
        await ensure_stream(js, self._spec, update=False)
        return await js.pull_subscribe(
            f"{OUTCOMES_ROOT}.>",
            durable=OUTCOMES_DURABLE,
            stream=SIGNALS_STREAM,
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=30),
        )

    def _new_signals(self, after: int) -> list[tuple[int, str, bytes]]:
        conn = connect(self.db_path)
        try:
            rows = conn.execute(
                "SELECT rowid, client_id, body FROM signals WHERE rowid > ? ORDER BY rowid "
                "LIMIT 200",
                (after,),
            ).fetchall()
        except sqlite3.OperationalError:  # no signals table yet
            return []
        finally:
            conn.close()
        return [(int(r), str(c), bytes(b)) for r, c, b in rows]

    async def _publish_new(self, nc: Client, pos: ForwardLog) -> None:
        after = await asyncio.to_thread(pos.position)
        rows = await asyncio.to_thread(self._new_signals, after)
        if not rows:
            return
        js = nc.jetstream()
        publishes = []
        for _, client_id, body in rows:
            # The stored body is the Signal frame itself (msgpack of the tagged struct).
            signal = codec.decode_bridge(body)
            if not isinstance(signal, codec.Signal):
                continue
            headers = {MSG_ID: signal_msg_id(signal.id), H_CLIENT: client_id}
            publishes.append(js.publish(signals_subject(client_id), body, headers=headers))
        await asyncio.gather(*publishes)
        await asyncio.to_thread(pos.save, rows[-1][0])  # only once all are acked
        self.published += len(rows)

    async def _take_outcomes(self, sub: nats.js.JetStreamContext.PullSubscription) -> None:
        try:
            msgs = await sub.fetch(100, timeout=self._poll)
        except nats.errors.TimeoutError:
            raise_if_cancelling()
            return
        for msg in msgs:
            await self._handle(msg)

    async def _handle(self, msg: Msg) -> None:
        client_id = outcome_client(msg.subject)
        try:
            message = codec.decode_client(msg.data)
        except codec.ProtocolError:
            message = None
        if client_id is None or not isinstance(message, codec.SignalReceived | codec.SignalOutcome):
            log.warning("signal relay: not an outcome on %s; terminated", msg.subject[:100])
            await msg.term()
            return
        route = self._routes.get(client_id)
        if route is None:
            route = self._routes[client_id] = SignalRoute(self._signals, client_id, _discard)
        await route.handle(message)  # stored (or judged) before the ack
        await msg.ack()
        self.handled += 1
