"""The reference bridge forwarding what it stores into the stream (app/nats/forwarder.py).

Truth: the bridge's own rows (what it acked to the client), compared with every message
the stream holds, read back one by one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import nats
import nats.js.errors
import pytest

from app.nats.cluster import LocalCluster
from app.nats.forwarder import Forwarder, ForwardLog
from app.nats.store_rules import classify
from app.nats.subjects import tick_messages
from app.server.store import KeyedBlock, TickStore
from app.ticks import TickBatch
from tests.conftest import wait_until as async_wait_until
from tests.nats.streamread import message_count
from tests.nats.streams import Key, stored, wait_until
from tests.server.conftest import add_user, hello, messages, open_ws, send_ticks, wait_ack

ROOT = Path(__file__).resolve().parents[2]


def test_pages_hold_whole_link_messages_and_the_position_only_moves_on(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    msgs = messages(5, per_block=4, symbols=("EURUSD", "XAUUSD", "GBPUSD"))
    with TickStore(db) as store:
        store.store("c", "s", [(seq, batches) for seq, batches in enumerate(msgs, 1)])
    log = ForwardLog(db, "TICKS", page_rows=4)  # cuts message 2 after its first block
    try:
        first = log.next_page(0)
        assert first is not None
        expected = [*tick_messages("c", "s", 1, msgs[0]), *tick_messages("c", "s", 2, msgs[1])]
        assert first.messages == expected
        assert (first.blocks, first.last_rowid) == (6, 6)
        assert log.position() == 0
        log.save(first.last_rowid)
        log.save(2)  # an older position never moves it back
        assert log.position() == 6
        rest = log.next_page(6)
        assert rest is not None
        assert rest.messages[0] == tick_messages("c", "s", 3, msgs[2])[0]
    finally:
        log.close()


class Backend:
    """``trading-client backend --forward-nats`` as a real process (SIGKILL-able)."""

    def __init__(self, db: Path, servers: str) -> None:
        cmd = [
            sys.executable,
            "-m",
            "app",
            "backend",
            *("--bridge-port", "0", "--gateway-port", "0", "--hub-port", "0"),
            *("--db", str(db), "--no-demo-signals", "--forward-nats", servers),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "reference backend: bridge ws://… gateway …"
        assert "bridge " in line, line
        self.bridge_url = line.split("bridge ", 1)[1].split()[0]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


async def _send(
    url: str, session: str, seqs: Sequence[int], batches: list[list[TickBatch]]
) -> None:
    async with open_ws(url) as ws:
        await hello(ws, "desk-1", session, resume_from=seqs[0] - 1, credential="trader:trader")
        for seq in seqs:
            await send_ticks(ws, seq, batches[seq - 1])
        await wait_ack(ws, seqs[-1])


async def _stream_blocks(servers: str, stream: str = "TICKS") -> dict[Key, list[bytes]]:
    """Every message of the stream, decoded, by block key (a list: a double would show)."""
    nc = await nats.connect(servers=servers.split(","))
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out: dict[Key, list[bytes]] = {}
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            block = classify(msg.headers, msg.data or b"")
            assert isinstance(block, KeyedBlock), block
            key = (block.client_id, block.session, block.seq, block.idx)
            out.setdefault(key, []).append(block.batch.ticks.tobytes())
        return out
    finally:
        await nc.close()


def test_the_bridge_forwards_every_stored_block_once_across_a_kill(
    nats_server: LocalCluster, tmp_path: Path
) -> None:
    db = tmp_path / "backend.sqlite"
    add_user(db)
    batches = messages(40, per_block=30, symbols=("EURUSD", "XAUUSD"))
    session = "s-forward"
    first = Backend(db, nats_server.servers)
    try:
        asyncio.run(_send(first.bridge_url, session, range(1, 21), batches))
        wait_until(
            lambda: asyncio.run(message_count(nats_server.servers)) >= 10, 20, "some forwarding"
        )
    finally:
        first.kill()  # SIGKILL: the position may lag what was published
    second = Backend(db, nats_server.servers)
    try:
        asyncio.run(_send(second.bridge_url, session, range(21, 41), batches))
        wait_until(
            lambda: asyncio.run(message_count(nats_server.servers)) >= 80, 20, "all forwarded"
        )
    finally:
        second.kill()
    rows = stored(db)
    assert len(rows) == 80
    in_stream = asyncio.run(_stream_blocks(nats_server.servers))
    assert {k: len(v) for k, v in in_stream.items() if len(v) != 1} == {}
    assert in_stream == rows


def test_a_bad_forward_url_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "backend",
            "--db",
            str(tmp_path / "b.sqlite"),
            "--forward-nats",
            "nats//nope",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "error: --forward-nats: 'nats//nope' is not a nats://HOST:PORT URL"
    )


async def test_a_stream_with_other_subjects_pauses_forwarding_until_it_is_fixed(
    nats_server: LocalCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The forwarder makes sure of its stream through app/nats/stream.py: one that would
    never ack (other subjects) is warned about once and retried, never published into."""
    db = tmp_path / "b.sqlite"
    batches = messages(2, per_block=5)
    with TickStore(db) as store:
        store.store("c", "s", list(enumerate(batches, start=1)))
    blocks = sum(len(m) for m in batches)
    nc = await nats.connect(servers=nats_server.urls)
    try:
        js = nc.jetstream()
        await js.add_stream(name="TICKS", subjects=["quotes.>"])
        forwarder = Forwarder(db, tuple(nats_server.urls), poll_s=0.05)
        with caplog.at_level(logging.INFO, logger="app.nats.retry"):
            task = asyncio.create_task(forwarder.run())
            try:
                await async_wait_until(
                    lambda: any("paused: stream TICKS exists" in r.message for r in caplog.records),
                    15,
                    "the paused warning",
                )
                assert forwarder.forwarded == 0
                await js.delete_stream("TICKS")  # fixed: the forwarder creates its own
                await async_wait_until(lambda: forwarder.forwarded == blocks, 15, "forwarding")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.message for r in warnings]
        assert any(r.message == "forwarding to NATS resumed" for r in caplog.records)
        info = await js.stream_info("TICKS")
        assert info.config.subjects == ["ticks.>"]
        assert info.state.messages == blocks
    finally:
        await nc.close()
