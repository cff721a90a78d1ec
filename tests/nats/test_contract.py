"""The publisher/consumer contract, and the real cluster launcher every NATS test uses."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TypeVar

import nats
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.nats.cluster import LocalCluster
from app.nats.subjects import (
    BlockKey,
    lost_message,
    lost_subject,
    tick_messages,
    ticks_subject,
    token,
    untoken,
)
from app.protocol import codec
from app.ticks import TICK_DTYPE, TickBatch
from tests.nats.streams import settled

T = TypeVar("T")


@given(st.text(min_size=1, max_size=20))
def test_token_round_trips_and_is_one_subject_token(text: str) -> None:
    tok = token(text)
    assert untoken(tok) == text
    assert not set(tok) & set(". *>\t\r\n")


def test_broker_suffixes_stay_readable() -> None:
    assert ticks_subject("desk-1", "EURUSD.m") == "ticks.desk-1.EURUSD%2Em"


def test_block_key_round_trips_through_headers() -> None:
    key = BlockKey("desk-1", "s-9", 42, 3)
    headers = key.headers(blocks=5)
    assert headers["Nats-Msg-Id"] == "desk-1/s-9/42/3"
    assert BlockKey.from_headers(headers) == key


@pytest.mark.parametrize("headers", [None, {}, {"Tc-Client": "a"}])
def test_foreign_messages_are_named_not_crashed_on(headers: dict[str, str] | None) -> None:
    with pytest.raises(ValueError, match="header"):
        BlockKey.from_headers(headers)


def test_three_node_cluster_replicates_dedups_and_survives_a_node_kill(
    nats_cluster: LocalCluster,
) -> None:
    """An R3 stream keeps every message once, whatever node is killed and restarted."""

    async def publish(first: int, last: int) -> int:
        live = [n.url for n in nats_cluster.nodes if n.running]
        nc = await nats.connect(servers=live, max_reconnect_attempts=-1)
        js = nc.jetstream()
        await settled(lambda: js.add_stream(name="T", subjects=["ticks.>"], num_replicas=3), 60)
        for i in range(first, last):
            headers = {"Nats-Msg-Id": str(i)}
            await settled(partial(js.publish, "ticks.a.b", b"x", headers=headers, timeout=5), 60)
        info = await settled(lambda: js.stream_info("T"), 60)
        await nc.close()
        return info.state.messages

    assert asyncio.run(publish(0, 50)) == 50
    nats_cluster.kill(0)
    assert asyncio.run(publish(25, 80)) == 80  # 25..49 resent: dropped as duplicates
    nats_cluster.restart(0)
    assert asyncio.run(publish(0, 100)) == 100


def test_tick_messages_carry_one_block_each_and_decode_back() -> None:
    """What a publisher builds is what a consumer reads: subject, key and the ticks."""
    ticks = np.zeros(3, dtype=TICK_DTYPE)
    ticks["time_msc"] = [1, 2, 3]
    batches = [TickBatch("EURUSD.m", ticks), TickBatch("US30#", ticks[:1])]
    out = tick_messages("desk 1", "s1", 7, batches)
    assert [m.subject for m in out] == ["ticks.desk%201.EURUSD%2Em", "ticks.desk%201.US30%23"]
    for idx, (message, batch) in enumerate(zip(out, batches, strict=True)):
        assert BlockKey.from_headers(message.headers) == BlockKey("desk 1", "s1", 7, idx)
        decoded = codec.decode_client(message.payload)
        assert isinstance(decoded, codec.Ticks)
        assert decoded.seq == 7
        (back,) = codec.ticks_batches(decoded)
        assert back.symbol == batch.symbol
        assert back.ticks.tobytes() == batch.ticks.tobytes()
    lost = lost_message("desk 1", "s1", 8, 5, "damaged record")
    assert lost.subject == lost_subject("desk 1")
    assert lost.subject.endswith(".%00")
    assert codec.decode_client(lost.payload) == codec.Lost(8, 5, "damaged record")
