"""The client side of backend authentication: the link presents its credential, a
refused one is one clear status (not a reconnect storm), and the embedded backend takes
exactly the per-run key of the app that started it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.backoff import BackoffPolicy
from app.collector import SequencedBatch
from app.link.link import BridgeLink, LinkOptions
from app.link.spool import Spool
from app.protocol.codec import Error, Hello, Welcome, encode
from app.security.secret import Secret
from app.server.process import BackendProcess
from app.server.server import ReferenceBackend
from app.ticks import TickBatch
from tests.conftest import wait_until
from tests.server.conftest import add_user, make_ticks, new_session, open_ws, recv_msg

pytestmark = pytest.mark.timeout(120)


def fast_options() -> LinkOptions:
    return LinkOptions(policy=BackoffPolicy(initial=0.02, maximum=0.05))


async def test_a_refused_credential_is_one_clear_status_without_hammering(
    tmp_path: Path,
) -> None:
    db = tmp_path / "b.sqlite"
    add_user(db, "alice", "alice-pw", ["desk-a"])
    async with ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=db) as b:
        spool = Spool(2**20, 0, None, client_id="desk-a", session=new_session())
        link = BridgeLink(
            b.bridge_url, "desk-a", spool, fast_options(), credential=Secret("alice:wrong")
        )
        task = asyncio.create_task(link.run())
        try:
            expected = "the bridge refused the credential for client 'desk-a'"
            await wait_until(lambda: expected in link.state.last_error, 30, "the refusal")
            # With a 20-50 ms backoff a storm would reconnect dozens of times in this
            # second; a refused credential waits AUTH_RETRY_S instead.
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                await asyncio.sleep(0.05)
            state = link.state
            assert state.reconnects <= 1
            assert not state.connected
            assert not state.halted
            assert "alice:wrong" not in state.last_error
            assert b.store.stats()["sessions"] == []
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await link.close()


async def test_the_link_delivers_with_a_users_file_login(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    add_user(db, "alice", "alice-pw", ["desk-a"])
    async with ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=db) as b:
        spool = Spool(2**20, 0, None, client_id="desk-a", session=new_session())
        link = BridgeLink(
            b.bridge_url, "desk-a", spool, fast_options(), credential=Secret("alice:alice-pw")
        )
        task = asyncio.create_task(link.run())
        try:
            await wait_until(lambda: link.state.connected, 30, "the link")
            ticks = make_ticks(100)
            link.offer(SequencedBatch(1, TickBatch("EURUSD", ticks, 1, time.time()), time.time()))
            await wait_until(link.all_acked, 30, "the ack")
            assert len(b.store.read_ticks("desk-a")) == 100
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await link.close()


@pytest.mark.slow
async def test_the_embedded_backend_takes_only_its_per_run_key(tmp_path: Path) -> None:
    backend = BackendProcess(
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=tmp_path / "embedded.sqlite",
        client_id="desk-e",
    )
    other = BackendProcess(db_path=tmp_path / "x.sqlite", client_id="desk-e")
    assert backend.credential != other.credential  # fresh for every backend
    assert "desk-e" not in repr(backend.credential)
    await backend.start()
    try:
        key = backend.credential.reveal()
        cases = [
            (Hello("desk-e", new_session(), 0), "unauthorized"),
            (
                Hello("desk-e", new_session(), 0, credential=other.credential.reveal()),
                "invalid_token",
            ),
            (Hello("desk-x", new_session(), 0, credential=key), "forbidden"),
            (Hello("desk-e", new_session(), 0, credential=key), None),
        ]
        for message, code in cases:
            async with open_ws(backend.bridge_url) as ws:
                await ws.send(encode(message))
                answer = await recv_msg(ws)
            if code is None:
                assert isinstance(answer, Welcome), answer
            else:
                assert isinstance(answer, Error), answer
                assert answer.code == code
        # No secret on disk: the key is in no file of the backend's folder.
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path
    finally:
        await backend.stop()
