"""The NATS sink's rules against a real nats-server: acks in seq order, duplicates,
damaged records, the in-flight bound, the max_payload cut. Truth: the stream read back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import nats
import numpy as np
import pytest

from app.backoff import BackoffPolicy
from app.collector import SequencedBatch
from app.link.adapter import LinkOptions
from app.link.spool import RECORD_HEADER_BYTES, Spool, read_records
from app.nats.cluster import LocalCluster, Node
from app.nats.connect import NatsOptions
from app.nats.sink import HEADER_ROOM, NatsLink
from app.nats.stream import StreamRefusedError, ensure_stream
from app.nats.subjects import StreamSpec, tick_messages
from app.protocol import codec
from app.ticks import TICK_DTYPE, TickBatch
from tests.nats.streamread import doubled_keys, read_stream, ticks_by_symbol

SYMBOLS = ("EURUSD", "XAUUSD.m", "US30#")


def ticks(start: int, n: int) -> np.ndarray:
    arr = np.zeros(n, dtype=TICK_DTYPE)
    arr["time_msc"] = np.arange(start, start + n)
    arr["bid"] = 1.0 + np.arange(n) * 1e-5
    return arr


def batches(count: int, size: int) -> list[TickBatch]:
    return [
        TickBatch(SYMBOLS[i % len(SYMBOLS)], ticks(i * size, size), 1, time.time())
        for i in range(count)
    ]


def options(cluster: LocalCluster, **kw: float) -> NatsOptions:
    return NatsOptions(tuple(cluster.urls), StreamSpec(), **kw)  # type: ignore[arg-type]


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def running(link: NatsLink, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(link.run())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.close()


def expected(sent: list[TickBatch]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for b in sent:
        out.setdefault(b.symbol, []).append(b.ticks)
    return {s: np.concatenate(p) for s, p in out.items()}


def test_every_block_once_and_acks_release_the_spool_in_order(nats_server: LocalCluster) -> None:
    sent = batches(60, 700)
    spool = Spool(2**26, 0, None, client_id="desk", session="s1")
    link = NatsLink(
        options(nats_server, max_in_flight=3), "desk", spool, LinkOptions(batch_max_ticks=2_000)
    )
    acked: list[int] = []
    original = link.machine.on_ack

    def record(seq: int) -> object:
        acked.append(seq)
        return original(seq)

    link.machine.on_ack = record  # type: ignore[method-assign]

    async def body() -> None:
        await until(lambda: link.connected)
        for i, b in enumerate(sent):
            link.offer(SequencedBatch(i + 1, b, time.time()))
        assert await link.drain(15)

    asyncio.run(running(link, body))
    assert acked == sorted(acked)
    assert acked[-1] == spool.last_seq
    assert len(spool) == 0
    assert link.peak_in_flight <= 3
    stored = asyncio.run(read_stream(nats_server.servers))
    assert not doubled_keys(stored)
    got = ticks_by_symbol(stored)
    want = expected(sent)
    assert got.keys() == want.keys()
    for sym in want:
        assert got[sym].tobytes() == want[sym].tobytes()
    # Every message of a seq says how many blocks it has, and all of them are there.
    per_seq: dict[int, int] = {}
    for s in stored:
        per_seq[s.key.seq] = per_seq.get(s.key.seq, 0) + 1
    assert set(per_seq) == set(range(1, spool.last_seq + 1))


def test_blocks_stored_before_count_as_acked_duplicates(nats_server: LocalCluster) -> None:
    """A resend (after a crash) gets 'duplicate' acks: acked, and not stored twice."""
    sent = batches(6, 100)
    spool = Spool(2**26, 0, None, client_id="desk", session="s2")
    for seq, pair in enumerate((sent[:3], sent[3:]), start=1):
        spool.append(seq, codec.encode_ticks(seq, pair), sum(len(b) for b in pair))

    async def prepublish() -> None:
        nc = await nats.connect(nats_server.urls)
        js = nc.jetstream()
        await ensure_stream(js, StreamSpec())
        for m in tick_messages("desk", "s2", 1, sent[:3]):
            await js.publish(m.subject, m.payload, headers=m.headers)
        await nc.close()

    asyncio.run(prepublish())
    link = NatsLink(options(nats_server), "desk", spool, intake=False)
    asyncio.run(running(link, lambda: until(link.all_acked)))
    assert link.duplicates == 3
    stored = asyncio.run(read_stream(nats_server.servers))
    assert len(stored) == 6
    assert not doubled_keys(stored)


def test_a_damaged_spool_record_is_published_as_lost(
    nats_server: LocalCluster, tmp_path: Path
) -> None:
    sent = batches(5, 50)
    folder = tmp_path / "spool"
    spool = Spool(0, 2**24, folder, client_id="desk", session="s3")
    for seq, b in enumerate(sent, start=1):
        spool.append(seq, codec.encode_ticks(seq, [b]), len(b))
    spool.close()
    seg = next(folder.glob("seg-*.spool"))
    offsets = [r.offset for r in read_records(seg)]
    data = bytearray(seg.read_bytes())
    data[offsets[2] + RECORD_HEADER_BYTES + 4 + 40] ^= 0x40  # inside seq 3's payload
    seg.write_bytes(bytes(data))
    with Spool(0, 2**24, folder) as reopened:
        link = NatsLink(options(nats_server), "desk", reopened, intake=False)
        asyncio.run(running(link, lambda: until(link.all_acked)))
        assert link.state.lost_batches == 1
    stored = asyncio.run(read_stream(nats_server.servers))
    lost = [s for s in stored if s.lost is not None]
    assert [(s.key.seq, s.lost.ticks if s.lost else 0) for s in lost] == [(3, 50)]
    assert sorted(s.key.seq for s in stored if s.lost is None) == [1, 2, 4, 5]


class SmallPayloadCluster(LocalCluster):
    def _config(self, node: Node) -> str:
        return super()._config(node) + "max_payload: 65536\n"


@pytest.fixture
def small_payload_server(tmp_path: Path) -> Iterator[LocalCluster]:
    with SmallPayloadCluster(tmp_path / "nats-small", size=1) as cluster:
        yield cluster


def test_messages_are_cut_within_the_servers_max_payload(
    small_payload_server: LocalCluster,
) -> None:
    big = [TickBatch("EURUSD", ticks(0, 40_000), 1, time.time())]
    spool = Spool(2**26, 0, None, client_id="desk", session="s4")
    link = NatsLink(options(small_payload_server), "desk", spool)

    async def body() -> None:
        await until(lambda: link.connected)
        link.offer(SequencedBatch(1, big[0], time.time()))
        assert await link.drain(15)

    asyncio.run(running(link, body))
    assert link.state.max_frame_bytes == 65536 - HEADER_ROOM
    assert 0 < link.state.largest_frame_bytes <= 65536 - HEADER_ROOM
    stored = asyncio.run(read_stream(small_payload_server.servers))
    assert len(stored) > 20
    assert ticks_by_symbol(stored)["EURUSD"].tobytes() == big[0].ticks.tobytes()


def test_a_stream_that_cannot_match_is_refused_in_one_line(nats_server: LocalCluster) -> None:
    async def check() -> None:
        nc = await nats.connect(nats_server.urls)
        js = nc.jetstream()
        try:
            with pytest.raises(StreamRefusedError, match="replica"):
                await ensure_stream(js, StreamSpec(replicas=3))
            await js.add_stream(name="OTHER", subjects=["other.>"])
            with pytest.raises(StreamRefusedError, match=r"subjects \['other.>'\]"):
                await ensure_stream(js, StreamSpec(name="OTHER"))
            assert await ensure_stream(js, StreamSpec()) == "created"
            assert await ensure_stream(js, StreamSpec()) == "ok"
            changed = await ensure_stream(js, StreamSpec(max_age_s=3600, duplicate_window_s=60))
            assert changed.startswith("updated: duplicate window")
        finally:
            await nc.close()

    asyncio.run(check())


def test_outage_keeps_everything_and_resends_after_the_server_returns(
    nats_server: LocalCluster,
) -> None:
    sent = batches(30, 200)
    spool = Spool(2**26, 0, None, client_id="desk", session="s5")
    link = NatsLink(
        options(nats_server, ack_timeout=1.0),
        "desk",
        spool,
        LinkOptions(batch_max_ticks=500, policy=_fast()),
    )

    async def body() -> None:
        await until(lambda: link.connected)
        for i, b in enumerate(sent[:10]):
            link.offer(SequencedBatch(i + 1, b, time.time()))
        await until(link.all_acked)
        await asyncio.to_thread(nats_server.kill, 0)
        await until(lambda: not link.connected)
        for i, b in enumerate(sent[10:], start=10):
            link.offer(SequencedBatch(i + 1, b, time.time()))
        link.cut()
        assert spool.ticks == 20 * 200  # kept while the server is down
        # The outage is said, not hidden (once the connection's teardown has run: the
        # client reports itself disconnected a moment before).
        await until(lambda: bool(link.state.last_error), 10)
        await asyncio.to_thread(nats_server.restart, 0)
        await until(link.all_acked, 20)

    asyncio.run(running(link, body))
    stored = asyncio.run(read_stream(nats_server.servers))
    assert not doubled_keys(stored)
    want = expected(sent)
    got = ticks_by_symbol(stored)
    for sym in want:
        assert got[sym].tobytes() == want[sym].tobytes()


def _fast() -> BackoffPolicy:
    return BackoffPolicy(initial=0.05, maximum=0.5)
