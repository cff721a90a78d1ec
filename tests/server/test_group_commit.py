"""Group commit at the bridge (issue #12): the messages that arrive while a commit runs
go into the next ONE transaction together, each ack follows the commit that holds its
message, and a group whose commit fails acks none of its messages.

A store whose commits wait at a gate makes the piling up deterministic: the test holds
the first commit, sends more messages, waits until the bridge has accepted them (its
``ticks_received`` counter), then lets the commits run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from app.protocol.codec import Ack, Error
from app.server.auth import Authenticator
from app.server.bridge import Bridge
from app.server.store import Item, TickStore
from tests.conftest import wait_until
from tests.server.conftest import (
    KEYS,
    TIMEOUT,
    concat,
    messages,
    new_session,
    open_ws,
    recv_msg,
    say_hello,
    send_ticks,
    wait_ack,
    wait_closed,
)


class _GatedStore(TickStore):
    """Each store call waits for ``gate``; records the seqs of every call; fails the
    call whose first seq is in ``fail`` (as a full disk would), storing nothing."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls: list[list[int]] = []
        self.fail: set[int] = set()

    def store(self, client_id: str, session: str, items: Sequence[Item]) -> int:
        self.entered.set()
        self.gate.wait(TIMEOUT)
        seqs = [seq for seq, _ in items]
        self.calls.append(seqs)
        if seqs and seqs[0] in self.fail:
            raise sqlite3.OperationalError("disk I/O error")
        return super().store(client_id, session, items)


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[tuple[_GatedStore, str]]:
    store = _GatedStore(tmp_path / "t.sqlite")
    bridge = Bridge(store, Authenticator(None, keys=KEYS))
    url = f"ws://127.0.0.1:{await bridge.start('127.0.0.1', 0)}/ws"
    try:
        yield store, url
    finally:
        store.gate.set()
        await bridge.stop()
        store.close()


async def _hold_first_commit(store: _GatedStore, send_first: asyncio.Future[None]) -> None:
    """Close the gate, let seq 1 reach the store, and return while its commit waits."""
    store.gate.clear()
    store.entered.clear()
    await send_first
    assert await asyncio.to_thread(store.entered.wait, TIMEOUT), "seq 1 never reached the store"


async def test_messages_that_arrive_during_a_commit_share_one_transaction_and_one_ack(
    gated: tuple[_GatedStore, str],
) -> None:
    store, url = gated
    session, msgs = new_session(), messages(6, per_block=7)
    async with open_ws(url) as ws:
        await say_hello(ws, "desk-1", session)
        await _hold_first_commit(store, asyncio.ensure_future(send_ticks(ws, 1, msgs[0])))
        for seq in range(2, 7):
            await send_ticks(ws, seq, msgs[seq - 1])
        total = len(concat(msgs))
        await wait_until(
            lambda: store.stats()["ticks_received"] == total, TIMEOUT, "all six accepted"
        )
        # Nothing is committed yet, so nothing may be acked yet.
        with pytest.raises(TimeoutError):
            await recv_msg(ws, timeout=0.3)
        assert store.stats()["sessions"] == []
        store.gate.set()
        acks = [await recv_msg(ws), await recv_msg(ws)]
    # Seq 1 alone (its commit was running), then 2..6 in ONE transaction and ONE ack.
    assert acks == [Ack(1), Ack(6)]
    assert store.calls == [[1], [2, 3, 4, 5, 6]]
    assert store.commits == 2
    assert np.array_equal(store.read_ticks(session=session), concat(msgs))
    assert store.stats()["sessions"][0]["last_seq"] == 6


async def test_an_ack_is_sent_only_once_its_commit_is_on_disk(
    gated: tuple[_GatedStore, str],
) -> None:
    """Read back from another connection the moment each ack arrives: the acked seq is
    always stored already."""
    store, url = gated
    session, msgs = new_session(), messages(40, per_block=3)
    async with open_ws(url) as ws:
        await say_hello(ws, "desk-1", session)
        for seq, blocks in enumerate(msgs, start=1):
            await send_ticks(ws, seq, blocks)
        acked = 0
        while acked < len(msgs):
            ack = await recv_msg(ws)
            assert isinstance(ack, Ack)
            stored = store.stats()["sessions"][0]["last_seq"]
            assert stored >= ack.seq > acked
            acked = ack.seq
    assert sum(len(call) for call in store.calls) == len(msgs)


async def test_a_group_whose_commit_fails_acks_none_of_its_messages(
    gated: tuple[_GatedStore, str],
) -> None:
    store, url = gated
    session, msgs = new_session(), messages(4, per_block=5)
    async with open_ws(url) as ws:
        await say_hello(ws, "desk-1", session)
        await _hold_first_commit(store, asyncio.ensure_future(send_ticks(ws, 1, msgs[0])))
        for seq in (2, 3, 4):
            await send_ticks(ws, seq, msgs[seq - 1])
        total = len(concat(msgs))
        await wait_until(
            lambda: store.stats()["ticks_received"] == total, TIMEOUT, "all four accepted"
        )
        store.fail = {2}
        store.gate.set()
        got, code = await wait_closed(ws)
    assert store.calls == [[1], [2, 3, 4]]
    assert got[0] == Ack(1)
    assert not [m for m in got if isinstance(m, Ack) and m.seq > 1]
    assert isinstance(got[-1], Error)
    assert got[-1].code == "internal_error"
    assert code == 1011
    assert np.array_equal(store.read_ticks(session=session), concat(msgs[:1]))
    # The client resends what was never acked; the next connection starts after seq 1.
    store.fail = set()
    async with open_ws(url) as ws:
        assert await say_hello(ws, "desk-1", session, resume_from=1) == 1
        for seq in (2, 3, 4):
            await send_ticks(ws, seq, msgs[seq - 1])
        await wait_ack(ws, 4)
    assert np.array_equal(store.read_ticks(session=session), concat(msgs))
