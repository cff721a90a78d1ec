"""The data bridge against a raw websockets peer speaking protocol v2: the exactly-once
rules of protocol.md §1, the frame limit, lost messages and v1 clients."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.protocol.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    MIN_MAX_FRAME_BYTES,
    Ack,
    Error,
    Hello,
    Lost,
    Ticks,
    block_bytes,
    encode,
    encode_ticks,
    max_ticks_per_block,
    ticks_frame_bytes,
)
from app.server import ReferenceBackend
from app.server.accept import INT64_MAX
from app.server.auth import Authenticator
from app.server.bridge import Bridge
from app.server.limits import BridgeLimits
from app.server.store import TickStore
from app.ticks import TickBatch
from tests.conftest import wait_until
from tests.server.conftest import (
    ADMIN_KEY,
    KEYS,
    concat,
    hello,
    make_ticks,
    messages,
    new_session,
    open_ws,
    recv_msg,
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
            ack = await recv_msg(ws)
            assert isinstance(ack, Ack)
            assert ack.seq > acked  # cumulative and increasing
            acked = ack.seq
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
        assert await recv_msg(ws) == Ack(2)
    # A new connection resends from before welcome.last_seq: still duplicates.
    async with open_ws(backend.bridge_url) as ws:
        assert await say_hello(ws, "desk-1", session, resume_from=1) == 2
        await send_ticks(ws, 1, msgs[0])
        assert await recv_msg(ws) == Ack(2)
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
    assert got[-1] == Error("seq_gap", "expected seq 2, got 3")
    assert Ack(1) in got
    assert code == 1008
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs[:1]))
    assert backend.store.stats()["refused_messages"] == 1


def _code(msg: object) -> str:
    assert isinstance(msg, Error), msg
    return msg.code


def _raw(n: int = 3, **columns: Any) -> bytes:
    ticks = make_ticks(n)
    for name, value in columns.items():
        ticks[name] = value
    return ticks.tobytes()


def _ticks(seq: Any, *blocks: tuple[str, bytes]) -> bytes:
    return encode(Ticks(seq, list(blocks) or [("EURUSD", _raw())]))


def _packed(doc: Any) -> bytes:
    return msgspec.msgpack.encode(doc)


# (name, bad frame, whether it is sent instead of hello)
GARBAGE: list[tuple[str, Callable[[], str | bytes], bool]] = [
    ("not MessagePack", lambda: b"\xc1\xc1garbage", False),
    ("truncated frame", lambda: _ticks(2)[:-7], False),
    ("not a map", lambda: _packed([1, 2, 3]), False),
    ("unknown type", lambda: _packed({"type": "subscribe", "seq": 2}), False),
    ("a second hello", lambda: encode(Hello("x", "y", 0)), False),
    ("a bridge message", lambda: encode(Ack(1)), False),
    ("ticks before hello", lambda: _ticks(1), True),
    ("lost before hello", lambda: encode(Lost(1)), True),
    ("hello without session", lambda: _packed({"type": "hello", "client_id": "x"}), True),
    ("hello with an empty client_id", lambda: encode(Hello("", "y", 0)), True),
    ("hello with resume_from 2^63", lambda: encode(Hello("x", "y", 2**63)), True),
    ("text that is not JSON", lambda: "hello?", False),
    ("seq as a string", lambda: _packed({"type": "ticks", "seq": "2", "blocks": []}), False),
    ("empty blocks", lambda: encode(Ticks(2, [])), False),
    ("a partial tick", lambda: _ticks(2, ("EURUSD", _raw()[:-1])), False),
    ("an empty block", lambda: _ticks(2, ("EURUSD", b"")), False),
    ("an empty symbol", lambda: _ticks(2, ("", _raw())), False),
    ("NaN price", lambda: _ticks(2, ("EURUSD", _raw(bid=np.nan))), False),
    ("infinite volume", lambda: _ticks(2, ("EURUSD", _raw(volume_real=np.inf))), False),
    ("time not time_msc // 1000", lambda: _ticks(2, ("EURUSD", _raw(time=5))), False),
    (
        "time_msc going backwards",
        lambda: _ticks(2, ("EURUSD", _raw(3, time_msc=[3000, 2000, 1000], time=[3, 2, 1]))),
        False,
    ),
    ("seq 0", lambda: _ticks(0), False),
    ("negative seq", lambda: _ticks(-5), False),
    ("seq 2^63", lambda: _ticks(2**63), False),
    ("lost with negative ticks", lambda: encode(Lost(2, ticks=-1)), False),
    ("lost with seq 0", lambda: encode(Lost(0)), False),
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
        assert isinstance(got[-1], Error)
        # Malformed: bad_message; well formed with impossible values: bad_tick
        # (tests/server/test_bridge_limits.py checks each reason).
        assert got[-1].code in ("bad_message", "bad_tick")
        assert len(got[-1].message) <= 200
        assert code == 1008

        await send_ticks(ok, 2, msgs[1])  # the other connection keeps going
        await wait_ack(ok, 2)

    expected_bad = concat([]) if instead_of_hello else concat(msgs[:1])
    assert np.array_equal(backend.store.read_ticks(session=bad), expected_bad)
    assert np.array_equal(backend.store.read_ticks(session=good), concat(msgs))
    assert backend.store.stats()["refused_messages"] == 1


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(
            orjson.dumps(
                {"type": "hello", "version": 1, "client_id": "x", "session": "y", "resume_from": 0}
            ).decode(),
            id="v1 JSON text hello",
        ),
        pytest.param(
            encode(Hello("x", "y", 0, versions=[1, 3], credential=ADMIN_KEY)),
            id="v2 hello without v2",
        ),
    ],
)
async def test_a_client_of_another_protocol_version_is_refused(
    backend: ReferenceBackend, frame: str | bytes
) -> None:
    async with open_ws(backend.bridge_url) as ws:
        await ws.send(frame)
        got, code = await wait_closed(ws)
    assert len(got) == 1
    assert isinstance(got[0], Error)
    assert got[0].code == "bad_version"
    assert code == 1008
    assert backend.store.stats()["refused_messages"] == 1


async def test_the_welcome_announces_the_bridge_frame_limit(backend: ReferenceBackend) -> None:
    async with open_ws(backend.bridge_url) as ws:
        welcome = await hello(ws, "desk-1", new_session())
    assert (welcome.last_seq, welcome.max_frame_bytes, welcome.version) == (
        0,
        DEFAULT_MAX_FRAME_BYTES,
        2,
    )


async def test_a_frame_over_the_configured_limit_is_closed_with_1009_and_harms_nobody_else(
    db_path: Path,
) -> None:
    limit = 65536
    good, bad = new_session(), new_session()
    msgs = messages(2)
    # The biggest message that fits, sized with the codec's exact arithmetic.
    n = max_ticks_per_block("EURUSD", limit - ticks_frame_bytes(3, 1, 0))
    biggest = [TickBatch("EURUSD", make_ticks(n, seed=9))]
    assert ticks_frame_bytes(3, 1, block_bytes("EURUSD", n)) == len(encode_ticks(3, biggest))
    assert limit - 2 * 60 < len(encode_ticks(3, biggest)) <= limit
    async with ReferenceBackend(
        keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path, max_frame_bytes=limit
    ) as backend:
        async with open_ws(backend.bridge_url) as ok:
            assert (await hello(ok, "desk-ok", good)).max_frame_bytes == limit
            # Not ``async with``: closing a client whose send was cut short trips an
            # asyncio bug in Python 3.11 (transport.abort() after connection_lost).
            ws = await open_ws(backend.bridge_url)
            assert (await hello(ws, "desk-bad", bad)).max_frame_bytes == limit
            await send_ticks(ws, 1, msgs[0])
            await wait_ack(ws, 1)
            with contextlib.suppress(ConnectionClosed):  # the bridge may close mid-frame
                await ws.send(encode(Ticks(2, [("EURUSD", b"\0" * 100_000)])))
            with pytest.raises(ConnectionClosed) as closed:
                await recv_msg(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009

            for seq in (1, 2):
                await send_ticks(ok, seq, msgs[seq - 1])
            await send_ticks(ok, 3, biggest)
            await wait_ack(ok, 3)
        await wait_until(lambda: backend.store.stats()["refused_messages"] == 1, 10, "refusal")
        assert np.array_equal(backend.store.read_ticks(session=bad), concat(msgs[:1]))
        assert np.array_equal(backend.store.read_ticks(session=good), concat([*msgs, biggest]))


def test_a_frame_limit_below_the_protocol_minimum_is_refused(tmp_path: Path) -> None:
    with TickStore(tmp_path / "t.sqlite") as store, pytest.raises(ValueError, match="minimum"):
        Bridge(store, Authenticator(None), max_frame_bytes=MIN_MAX_FRAME_BYTES - 1)
    with pytest.raises(ValueError, match="minimum"):
        ReferenceBackend(keys=KEYS, db_path=tmp_path / "x.sqlite", max_frame_bytes=100)


async def test_a_lost_message_advances_last_seq_and_counts_in_lost_batches(
    backend: ReferenceBackend,
) -> None:
    session = new_session()
    msgs = messages(4)
    async with open_ws(backend.bridge_url) as ws:
        await say_hello(ws, "desk-1", session)
        await send_ticks(ws, 1, msgs[0])
        await ws.send(encode(Lost(2, ticks=100, reason="spool record damaged")))
        await send_ticks(ws, 3, msgs[2])
        await wait_ack(ws, 3)
        await ws.send(encode(Lost(2)))  # a resend of the marker is a duplicate
        assert await recv_msg(ws) == Ack(3)
    async with open_ws(backend.bridge_url) as ws:
        assert await say_hello(ws, "desk-1", session, resume_from=3) == 3
        await ws.send(encode(Lost(4)))
        await wait_ack(ws, 4)
    assert np.array_equal(backend.store.read_ticks(session=session), concat([msgs[0], msgs[2]]))
    stats = backend.store.stats()
    assert (stats["lost_batches"], stats["batches_stored"], stats["duplicate_batches"]) == (2, 2, 1)
    assert stats["ticks_received"] == stats["ticks_stored"] == len(concat([msgs[0], msgs[2]]))
    assert stats["sessions"][0]["last_seq"] == 4


async def test_resumes_near_2_63_do_not_stop_storage_for_anyone(backend: ReferenceBackend) -> None:
    """Two hellos claiming acks up to nearly 2**63 (a broken or hostile client) would push
    lost_batches past SQLite's INTEGER range; every later commit wrote that counter and
    failed. Such a claim is now refused (``bad_resume``: beyond MAX_RESUME_GAP), so the
    counter stays truthful, and other clients go on storing."""
    session = new_session()
    msgs = messages(2)
    for resume_from in (INT64_MAX, INT64_MAX - 1):
        async with open_ws(backend.bridge_url) as ws:
            await ws.send(encode(Hello("desk-huge", session, resume_from, credential=ADMIN_KEY)))
            got, _ = await wait_closed(ws)
            assert isinstance(got[-1], Error), got
            assert got[-1].code == "bad_resume"
            session = new_session()
    async with open_ws(backend.bridge_url) as ws:
        await say_hello(ws, "desk-1", session)
        for seq in (1, 2):
            await send_ticks(ws, seq, msgs[seq - 1])
        await wait_ack(ws, 2)
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))
    stats = backend.store.stats()
    assert stats["lost_batches"] == 0
    assert stats["refused_by_reason"]["bad_resume"] == 2
    assert stats["batches_stored"] == 2


async def test_a_session_at_the_top_of_the_seq_range_is_refused_not_overflowed(
    db_path: Path,
) -> None:
    session = new_session()
    # Only a bridge that lets any resume through can get a session to the top.
    async with ReferenceBackend(
        keys=KEYS,
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=db_path,
        bridge_limits=BridgeLimits(max_resume_gap=INT64_MAX),
    ) as backend:
        async with open_ws(backend.bridge_url) as ws:
            assert await say_hello(ws, "desk-huge", session, INT64_MAX) == INT64_MAX
            await ws.send(encode(Lost(2**63)))
            got, code = await wait_closed(ws)
        assert isinstance(got[-1], Error)
        assert (got[-1].code, code) == ("bad_message", 1008)
        assert backend.store.last_seq("desk-huge", session) == INT64_MAX
        assert backend.store.stats()["lost_batches"] == INT64_MAX  # saturated, not overflowed


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
        assert _code(got[-1]) == "superseded"

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
        assert _code(got[-1]) == "superseded"
    assert np.array_equal(backend.store.read_ticks(session=session), concat(msgs))


async def test_last_seq_survives_a_restart_of_the_backend(db_path: Path) -> None:
    session = new_session()
    msgs = messages(6)
    async with (
        ReferenceBackend(
            keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
        ) as first,
        open_ws(first.bridge_url) as ws,
    ):
        await say_hello(ws, "desk-1", session)
        for seq in range(1, 4):
            await send_ticks(ws, seq, msgs[seq - 1])
        await wait_ack(ws, 3)
    async with ReferenceBackend(
        keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
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
            keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "new.sqlite"
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
        bridge = Bridge(store, Authenticator(None), hello_timeout=0.2)
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
    backend = ReferenceBackend(
        keys=KEYS, bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
    )
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
            keys=KEYS,
            bridge_port=0,
            gateway_port=0,
            hub_port=0,
            db_path=db_path,
            compression="deflate",
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
        bridge = Bridge(store, Authenticator(None, keys=KEYS))
        url = f"ws://127.0.0.1:{await bridge.start('127.0.0.1', 0)}/ws"
        try:
            async with open_ws(url) as ws:
                await say_hello(ws, "desk-1", session)
                await send_ticks(ws, 1, msgs[0])
                await wait_ack(ws, 1)
                store.fail_next = True
                await send_ticks(ws, 2, msgs[1])
                got, code = await wait_closed(ws)
            assert _code(got[-1]) == "internal_error"
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
