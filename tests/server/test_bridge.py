"""The data bridge against a raw websockets peer: the exactly-once rules of protocol.md §1."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.protocol.codec import MAX_FRAME_BYTES, encode_ticks
from app.server import ReferenceBackend
from app.server.bridge import Bridge
from app.server.store import TickStore
from tests.conftest import wait_until
from tests.server.conftest import (
    concat,
    messages,
    new_session,
    open_ws,
    recv_json,
    say_hello,
    send_ticks,
    wait_ack,
    wait_closed,
)


async def test_hello_ticks_ack_and_the_stored_ticks_equal_the_sent_ones(
    backend: ReferenceBackend,
) -> None:
    session = new_session()
    msgs = messages(5)
    async with open_ws(backend.bridge_url) as ws:
        assert await say_hello(ws, "desk-1", session) == 0
        for seq, blocks in enumerate(msgs, start=1):
            await send_ticks(ws, seq, blocks)
        await wait_ack(ws, 5)

    for symbol in ("EURUSD", "XAUUSD"):
        stored = backend.store.read_ticks("desk-1", session, symbol)
        assert stored.dtype == concat(msgs).dtype
        assert np.array_equal(stored, concat(msgs, symbol))
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))
    stats = backend.store.stats()
    assert stats["batches_stored"] == 5
    assert stats["ticks_stored"] == stats["ticks_received"] == len(concat(msgs))
    assert stats["sessions"] == [
        {"client_id": "desk-1", "session": session, "last_seq": 5, "ticks": len(concat(msgs))}
    ]


async def test_a_window_of_unacked_messages_is_committed_in_groups(
    backend: ReferenceBackend,
) -> None:
    session, count, window = new_session(), 300, 32
    msgs = messages(count, per_block=20)
    acked = 0
    async with open_ws(backend.bridge_url) as ws:
        await say_hello(ws, "desk-1", session)
        next_seq = 1
        while acked < count:
            while next_seq <= count and next_seq - acked <= window:
                await send_ticks(ws, next_seq, msgs[next_seq - 1])
                next_seq += 1
            doc = await recv_json(ws)
            assert doc["type"] == "ack"
            assert doc["seq"] > acked  # cumulative and increasing
            acked = doc["seq"]
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))
    assert backend.store.commits < count


async def test_a_duplicate_is_acked_again_and_not_stored_twice(backend: ReferenceBackend) -> None:
    session = new_session()
    msgs = messages(3)
    async with open_ws(backend.bridge_url) as ws:
        await say_hello(ws, "desk-1", session)
        for seq in (1, 2):
            await send_ticks(ws, seq, msgs[seq - 1])
        await wait_ack(ws, 2)
        await send_ticks(ws, 2, msgs[1])  # its ack was "lost"
        assert await recv_json(ws) == {"type": "ack", "seq": 2}
    # A new connection resends from before welcome.last_seq: still duplicates.
    async with open_ws(backend.bridge_url) as ws:
        assert await say_hello(ws, "desk-1", session, resume_from=1) == 2
        await send_ticks(ws, 1, msgs[0])
        assert await recv_json(ws) == {"type": "ack", "seq": 2}
        await send_ticks(ws, 3, msgs[2])
        await wait_ack(ws, 3)
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))
    stats = backend.store.stats()
    assert stats["duplicate_batches"] == 2
    assert stats["batches_stored"] == 3


async def test_a_seq_gap_is_refused_after_the_good_messages_are_acked(
    backend: ReferenceBackend,
) -> None:
    session = new_session()
    msgs = messages(3)
    async with open_ws(backend.bridge_url) as ws:
        await say_hello(ws, "desk-1", session)
        await send_ticks(ws, 1, msgs[0])
        await send_ticks(ws, 3, msgs[2])
        got, code = await wait_closed(ws)
    assert got[-1] == {"type": "error", "code": "seq_gap", "message": "expected seq 2, got 3"}
    assert {"type": "ack", "seq": 1} in got
    assert code == 1008
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs[:1]))
    assert backend.store.stats()["refused_messages"] == 1


def _ticks_doc(seq: int, **block_changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(encode_ticks(seq, messages(1)[0]))
    doc["blocks"][0].update(block_changes)
    return doc


def _text(doc: dict[str, Any]) -> str:
    return orjson.dumps(doc).decode()


_NAN_TEXT = (
    '{"type":"ticks","seq":2,"blocks":[{"symbol":"EURUSD","time_msc":[1],"bid":[NaN],'
    '"ask":[1.0],"last":[0.0],"volume":[0],"volume_real":[0.0],"flags":[6]}]}'
)

# (name, bad frame, whether it is sent instead of hello)
GARBAGE: list[tuple[str, Callable[[], str | bytes], bool]] = [
    ("invalid JSON", lambda: '{"type": "ticks", "seq": 2,', False),
    ("not an object", lambda: "[1, 2, 3]", False),
    ("unknown type", lambda: _text({"type": "subscribe", "seq": 2}), False),
    ("a second hello", lambda: _text({"type": "hello", "client_id": "x", "session": "y"}), False),
    ("ticks before hello", lambda: _text(_ticks_doc(1)), True),
    ("hello without session", lambda: _text({"type": "hello", "client_id": "x"}), True),
    ("unequal columns", lambda: _text(_ticks_doc(2, bid=[1.0])), False),
    ("empty blocks", lambda: _text({"type": "ticks", "seq": 2, "blocks": []}), False),
    ("text in a price column", lambda: _text(_ticks_doc(2, bid=["1.1"] * 50)), False),
    ("NaN as JSON text", lambda: _NAN_TEXT, False),
    ("seq 0", lambda: _text(_ticks_doc(0)), False),
    ("negative seq", lambda: _text(_ticks_doc(-5)), False),
    (
        "time_msc going backwards",
        lambda: _text(_ticks_doc(2, time_msc=list(range(50, 0, -1)))),
        False,
    ),
    ("binary garbage", lambda: b"\xff\xfe\x00garbage", False),
]


@pytest.mark.parametrize(
    ("frame", "instead_of_hello"),
    [pytest.param(f, h, id=name) for name, f, h in GARBAGE],
)
async def test_garbage_is_refused_and_harms_nobody_else(
    backend: ReferenceBackend, frame: Callable[[], str | bytes], instead_of_hello: bool
) -> None:
    good, bad = new_session(), new_session()
    msgs = messages(2)
    async with open_ws(backend.bridge_url) as ok, open_ws(backend.bridge_url) as ws:
        await say_hello(ok, "desk-ok", good)
        await send_ticks(ok, 1, msgs[0])
        await wait_ack(ok, 1)

        if not instead_of_hello:
            await say_hello(ws, "desk-bad", bad)
            await send_ticks(ws, 1, msgs[0])
            await wait_ack(ws, 1)
        await ws.send(frame())
        got, code = await wait_closed(ws)
        assert got, "expected an error message before the close"
        assert got[-1]["type"] == "error"
        assert got[-1]["code"] == "bad_message"
        assert code == 1008

        await send_ticks(ok, 2, msgs[1])  # the other connection keeps going
        await wait_ack(ok, 2)

    expected_bad = concat([]) if instead_of_hello else concat(msgs[:1])
    assert np.array_equal(backend.store.read_ticks(session=bad), expected_bad)
    assert np.array_equal(backend.store.read_ticks(session=good), concat(msgs))
    assert backend.store.stats()["refused_messages"] == 1


async def test_an_unsupported_protocol_version_is_refused(backend: ReferenceBackend) -> None:
    async with open_ws(backend.bridge_url) as ws:
        await ws.send(_text({"type": "hello", "version": 99, "client_id": "x", "session": "y"}))
        got, code = await wait_closed(ws)
    assert got[-1]["code"] == "bad_version"
    assert code == 1008


async def test_an_oversized_frame_is_closed_with_1009_and_harms_nobody_else(
    backend: ReferenceBackend,
) -> None:
    good, bad = new_session(), new_session()
    msgs = messages(2)
    async with open_ws(backend.bridge_url) as ok:
        await say_hello(ok, "desk-ok", good)
        # Not ``async with``: closing a client whose 16 MiB send was cut short trips an
        # asyncio bug in Python 3.11 (transport.abort() after connection_lost).
        ws = await open_ws(backend.bridge_url)
        await say_hello(ws, "desk-bad", bad)
        await send_ticks(ws, 1, msgs[0])
        await wait_ack(ws, 1)
        with contextlib.suppress(ConnectionClosed):  # the bridge may close mid-frame
            await ws.send("x" * (MAX_FRAME_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009

        for seq in (1, 2):
            await send_ticks(ok, seq, msgs[seq - 1])
        await wait_ack(ok, 2)
    await wait_until(lambda: backend.store.stats()["refused_messages"] == 1, 10, "the refusal")
    assert np.array_equal(backend.store.read_ticks(session=bad), concat(msgs[:1]))
    assert np.array_equal(backend.store.read_ticks(session=good), concat(msgs))


async def test_other_paths_get_404(backend: ReferenceBackend) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with open_ws(backend.bridge_url.replace("/ws", "/other")):
            pass
    assert refused.value.response.status_code == 404


async def test_a_newer_connection_takes_over_its_session(backend: ReferenceBackend) -> None:
    session = new_session()
    msgs = messages(3)
    async with open_ws(backend.bridge_url) as old, open_ws(backend.bridge_url) as new:
        await say_hello(old, "desk-1", session)
        await send_ticks(old, 1, msgs[0])
        await wait_ack(old, 1)

        assert await say_hello(new, "desk-1", session, resume_from=1) == 1
        got, _ = await wait_closed(old)
        assert got[-1]["code"] == "superseded"

        await send_ticks(new, 2, msgs[1])
        await send_ticks(new, 3, msgs[2])
        await wait_ack(new, 3)
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))


async def test_takeover_waits_for_the_older_connections_commits(backend: ReferenceBackend) -> None:
    """The newer connection's welcome must count what the older one had accepted, or the
    client would resend it and it would be stored twice."""
    session = new_session()
    msgs = messages(40, per_block=200)
    async with open_ws(backend.bridge_url) as old, open_ws(backend.bridge_url) as new:
        await say_hello(old, "desk-1", session)
        for seq, blocks in enumerate(msgs, start=1):
            await send_ticks(old, seq, blocks)
        last = await say_hello(new, "desk-1", session)
        for seq in range(last + 1, len(msgs) + 1):
            await send_ticks(new, seq, msgs[seq - 1])
        if last < len(msgs):
            await wait_ack(new, len(msgs))
        got, _ = await wait_closed(old)
        assert got[-1]["code"] == "superseded"
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))


async def test_last_seq_survives_a_restart_of_the_backend(db_path: Path) -> None:
    session = new_session()
    msgs = messages(6)
    async with (
        ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path) as first,
        open_ws(first.bridge_url) as ws,
    ):
        await say_hello(ws, "desk-1", session)
        for seq in range(1, 4):
            await send_ticks(ws, seq, msgs[seq - 1])
        await wait_ack(ws, 3)
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
    ) as second:
        async with open_ws(second.bridge_url) as ws:
            assert await say_hello(ws, "desk-1", session, resume_from=3) == 3
            for seq in range(4, 7):
                await send_ticks(ws, seq, msgs[seq - 1])
            await wait_ack(ws, 6)
        assert np.array_equal(second.store.read_ticks(session=session), concat(msgs))
        assert second.store.stats()["batches_stored"] == 6


async def test_a_replaced_database_records_the_loss_and_delivery_goes_on(
    tmp_path: Path,
) -> None:
    session = new_session()
    msgs = messages(5)
    # The client holds acks up to 3, but this (new) database never saw them.
    async with (
        ReferenceBackend(
            bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "new.sqlite"
        ) as backend,
        open_ws(backend.bridge_url) as ws,
    ):
        assert await say_hello(ws, "desk-1", session, resume_from=3) == 3
        for seq in (4, 5):
            await send_ticks(ws, seq, msgs[seq - 1])
        await wait_ack(ws, 5)
        stats = backend.store.stats()
        assert stats["lost_batches"] == 3
        assert stats["batches_stored"] == 2
        assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs[3:]))


async def test_a_connection_without_hello_is_closed(tmp_path: Path) -> None:
    with TickStore(tmp_path / "t.sqlite") as store:
        bridge = Bridge(store, hello_timeout=0.2)
        port = await bridge.start("127.0.0.1", 0)
        try:
            async with open_ws(f"ws://127.0.0.1:{port}/ws") as ws:
                got, code = await wait_closed(ws)
            assert (got, code) == ([], 1008)
        finally:
            await bridge.stop()


async def test_stopping_the_backend_commits_what_it_accepted(db_path: Path) -> None:
    session = new_session()
    msgs = messages(50, per_block=100)
    backend = ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path)
    await backend.start()
    try:
        async with open_ws(backend.bridge_url) as ws:
            await say_hello(ws, "desk-1", session)
            for seq, blocks in enumerate(msgs, start=1):
                await send_ticks(ws, seq, blocks)
            await wait_ack(ws, 1)
            await backend.stop()
            await wait_closed(ws)
    finally:
        await backend.stop()
    with TickStore(db_path) as store:
        last = store.last_seq("desk-1", session)
        assert last >= 1
        assert np.array_equal(store.read_ticks(session=session), concat(msgs[:last]))


async def test_compression_can_be_enabled(db_path: Path) -> None:
    async with (
        ReferenceBackend(
            bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path, compression="deflate"
        ) as backend,
        connect(backend.bridge_url, compression="deflate") as ws,
    ):
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await say_hello(ws, "desk-1", "s")
        await send_ticks(ws, 1, messages(1)[0])
        await wait_ack(ws, 1)


class _FlakyStore(TickStore):
    """Fails the next store call, as a full disk would."""

    fail_next = False

    def store(self, client_id: str, session: str, items: Any) -> int:
        if self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("database or disk is full")
        return super().store(client_id, session, items)


async def test_a_failed_commit_closes_only_that_connection_and_the_resend_is_stored(
    tmp_path: Path,
) -> None:
    session = new_session()
    msgs = messages(3)
    with _FlakyStore(tmp_path / "t.sqlite") as store:
        bridge = Bridge(store)
        url = f"ws://127.0.0.1:{await bridge.start('127.0.0.1', 0)}/ws"
        try:
            async with open_ws(url) as ws:
                await say_hello(ws, "desk-1", session)
                await send_ticks(ws, 1, msgs[0])
                await wait_ack(ws, 1)
                store.fail_next = True
                await send_ticks(ws, 2, msgs[1])
                got, code = await wait_closed(ws)
            assert got[-1]["code"] == "internal_error"
            assert code == 1011
            async with open_ws(url) as ws:
                assert await say_hello(ws, "desk-1", session, resume_from=1) == 1
                await send_ticks(ws, 2, msgs[1])
                await send_ticks(ws, 3, msgs[2])
                await wait_ack(ws, 3)
        finally:
            await bridge.stop()
        assert np.array_equal(store.read_ticks(session=session), concat(msgs))


async def test_repeated_takeovers_mid_stream_lose_nothing_and_double_nothing(
    backend: ReferenceBackend,
) -> None:
    """A client that keeps reconnecting while its older links still have messages in
    flight: each welcome must name exactly what is stored, never less (the resend would
    be stored twice) and never more (messages would be lost)."""
    session = new_session()
    msgs = messages(400, per_block=100)
    links = [await open_ws(backend.bridge_url)]
    welcomes = [await say_hello(links[0], "desk-1", session)]
    try:
        while True:
            first = welcomes[-1] + 1
            last = min(first + 79, len(msgs))
            if last == len(msgs):
                for seq in range(first, last + 1):
                    await send_ticks(links[-1], seq, msgs[seq - 1])
                await wait_ack(links[-1], last)
                break
            links.append(await open_ws(backend.bridge_url))  # handshake done beforehand
            for seq in range(first, last + 1):
                await send_ticks(links[-2], seq, msgs[seq - 1])
            # The hello races the frames still in flight on the older link.
            welcomes.append(await say_hello(links[-1], "desk-1", session))
    finally:
        for ws in links:
            await ws.close()
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))
