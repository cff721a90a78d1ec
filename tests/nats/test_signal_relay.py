"""Signals over the cluster (app/nats/signal_relay.py): issued signals out, outcomes in.

Truth: the stream's own messages read back, and the bridge's signal rows read through
its store (the gateway's ``GET`` reads the same rows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from app.nats.cluster import LocalCluster
from app.nats.signal_relay import SIGNALS_STREAM, outcome_client, signal_msg_id
from app.nats.subjects import MSG_ID, outcomes_subject, signals_subject
from app.protocol import codec
from app.server import ReferenceBackend
from tests.server.conftest import KEYS


def test_outcome_subjects_name_their_client() -> None:
    assert outcome_client(outcomes_subject("desk 1")) == "desk 1"
    assert outcome_client("outcomes.a.b") is None
    assert outcome_client("signals.a") is None


def _signal(sid: str, now_ms: int) -> codec.Signal:
    return codec.Signal(
        id=sid,
        source="tests",
        symbol="EURUSD",
        side="buy",
        valid_until_ms=now_ms + 600_000,
        created_at_ms=now_ms,
        volume=0.01,
    )


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_signals_go_out_once_and_outcomes_come_back(
    nats_server: LocalCluster, tmp_path: Path
) -> None:
    db = tmp_path / "backend.sqlite"
    nc = await nats.connect(servers=nats_server.urls)
    js = nc.jetstream()

    async def signal_messages() -> list[nats.aio.msg.Msg]:
        try:
            info = await js.stream_info(SIGNALS_STREAM)
        except nats.js.errors.NotFoundError:
            return []
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            with_msg = await js.get_msg(SIGNALS_STREAM, seq)
            if with_msg.subject and with_msg.subject.startswith("signals."):
                out.append(with_msg)
        return out

    async def count_is(n: int) -> bool:
        return len(await signal_messages()) >= n

    def backend() -> ReferenceBackend:
        return ReferenceBackend(
            bridge_port=0,
            gateway_port=0,
            hub_port=0,
            db_path=db,
            keys=KEYS,
            demo_signals=False,
            forward_nats=tuple(nats_server.urls),
        )

    now = int(time.time() * 1000)
    first = _signal("sig-1", now)
    try:
        async with backend() as running:
            assert running.signals.add("desk-1", first, now) == "stored"
            await _until(lambda: count_is(1), "the signal in the stream")
            (out,) = await signal_messages()
            assert out.subject == signals_subject("desk-1")
            assert (out.headers or {})[MSG_ID] == signal_msg_id("sig-1")
            assert codec.decode_bridge(out.data or b"") == first

            executed = codec.SignalOutcome("sig-1", "executed", ticket=7, price=1.1)
            for subject, payload, headers in [
                (outcomes_subject("desk-2"), codec.encode(executed), None),  # not its signal
                ("outcomes.desk-1", b"garbage", None),
                (outcomes_subject("desk-1"), codec.encode(executed), {MSG_ID: "o/sig-1"}),
                (outcomes_subject("desk-1"), codec.encode(executed), {MSG_ID: "o/sig-1"}),
                (
                    outcomes_subject("desk-1"),
                    codec.encode(codec.SignalOutcome("sig-1", "refused")),
                    None,
                ),
            ]:
                await js.publish(subject, payload, headers=headers)

            async def decided() -> bool:
                relay = running.relay
                return relay is not None and relay.handled >= 3

            await _until(decided, "the outcomes handled")
            stored = running.signals.get("sig-1")
            assert stored is not None
            assert stored.outcome == executed  # the first one stays
            assert stored.received_at_ms is not None

        async with backend() as again:  # restarted: resumes after sig-1
            assert again.signals.add("desk-1", _signal("sig-2", now), now) == "stored"
            await _until(lambda: count_is(2), "the second signal in the stream")
        ids = [(m.headers or {})[MSG_ID] for m in await signal_messages()]
        assert ids == [signal_msg_id("sig-1"), signal_msg_id("sig-2")]
    finally:
        await nc.close()
