"""Never twice, across the bridge's death and the app's restart: the reference backend
runs in its own process (as embedded), is killed with SIGKILL mid-way and restarted; the
bridge re-sends a signal whose receipt it did not store; the app restarts from its saved
book. The executor is called exactly once per accepted signal throughout."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from app.server.process import BackendProcess
from app.trading.view import SignalState
from tests.conftest import wait_until
from tests.server.conftest import poll_until as ask_until
from tests.signals.conftest import RecordingExecutor, get, post, signal_body, signal_client

pytestmark = pytest.mark.timeout(180)

CLIENT = "desk-r"


def forget_receipt(db: Path, sid: str) -> None:
    """As if the bridge had died before storing the client's ``signal_received``."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE signals SET received_at_ms = NULL WHERE id = ?", (sid,))
    conn.close()


async def started_backend(db: Path) -> BackendProcess:
    """The reference backend in its own process, as the embedded default runs it."""
    backend = BackendProcess(
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=db,
        client_id=CLIENT,
        synchronous="NORMAL",
    )
    await backend.start()
    return backend


async def test_kill_restart_and_app_restart_execute_once(tmp_path: Path) -> None:
    db, book_file = tmp_path / "backend.sqlite", tmp_path / "signals.json"
    backend = await started_backend(db)
    key = backend.credential.reveal()
    executor = RecordingExecutor()
    try:
        async with signal_client(backend.bridge_url, CLIENT, key, book_file, executor) as (
            desk,
            link,
        ):
            await wait_until(lambda: link.state.connected, 30, "the link")
            gw = backend.gateway_url
            assert (await post(gw, key, signal_body(CLIENT, "k1"))).status_code == 201

            async def state_of(sid: str, state: str) -> bool:
                doc = (await get(backend.gateway_url, key, f"/api/v1/signals/{sid}")).json()
                return bool(doc["state"] == state)

            await ask_until(lambda: state_of("k1", "received"), what="k1's receipt")
            # The backend dies (kill -9) while the signal waits for the trader.
            pid = backend.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await wait_until(lambda: not link.state.connected, 30, "the link to notice")
            await backend.stop()
            # The trader accepts meanwhile: executed, the outcome cannot be sent yet.
            assert desk.accept("k1") == ""
            await wait_until(lambda: len(executor.intents) == 1, 30, "the execution")
            await wait_until(
                lambda: desk.snapshot().get("k1").state is SignalState.EXECUTED,  # type: ignore[union-attr]
                30,
                "executed",
            )
            # The receipt was lost with the bridge: the restarted bridge sends k1 again.
            forget_receipt(db, "k1")
            await backend.start()
            await ask_until(lambda: state_of("k1", "executed"), what="the outcome resent")
            await wait_until(lambda: desk.snapshot().duplicates >= 1, 30, "k1 resent")
            assert len(executor.intents) == 1
        # The app restarts with its saved book; the bridge sends k1 once more.
        forget_receipt(db, "k1")
        again = RecordingExecutor()
        async with signal_client(backend.bridge_url, CLIENT, key, book_file, again) as (
            desk2,
            link2,
        ):
            await wait_until(lambda: link2.state.connected, 30, "the link")
            await wait_until(
                lambda: desk2.snapshot().duplicates >= 1, 30, "k1 resent after restart"
            )
            entry = desk2.snapshot().get("k1")
            assert entry is not None
            assert entry.state is SignalState.EXECUTED
            assert again.intents == []
            assert (
                await post(backend.gateway_url, key, signal_body(CLIENT, "k1"))
            ).status_code == 409
        doc = (await get(backend.gateway_url, key, "/api/v1/signals/k1")).json()
        assert doc["outcome"]["outcome"] == "executed"
        assert doc["outcome"]["ticket"] == 3001
    finally:
        await backend.stop()
    assert [i.signal_id for i in executor.intents] == ["k1"]


async def test_an_order_in_flight_when_the_app_dies_is_not_sent_again(tmp_path: Path) -> None:
    """The app stops (here: its tasks are cancelled, its file saved as it stood) while
    the executor has the order; the next run reports it rejected, naming the request id,
    and never calls the executor for it."""
    db, book_file = tmp_path / "backend.sqlite", tmp_path / "signals.json"
    backend = await started_backend(db)
    key = backend.credential.reveal()
    try:
        stuck = RecordingExecutor(gate=asyncio.Event())  # never answers
        async with signal_client(
            backend.bridge_url, CLIENT, key, book_file, stuck, auto=("auto",)
        ) as (
            _desk,
            link,
        ):
            await wait_until(lambda: link.state.connected, 30, "the link")
            body = signal_body(CLIENT, "f1", "auto")
            assert (await post(backend.gateway_url, key, body)).status_code == 201
            await wait_until(lambda: len(stuck.intents) == 1, 30, "the order in flight")
        request_id = stuck.intents[0].request_id
        forget_receipt(db, "f1")
        later = RecordingExecutor()
        async with signal_client(
            backend.bridge_url, CLIENT, key, book_file, later, auto=("auto",)
        ) as (
            desk2,
            _link2,
        ):
            entry = desk2.snapshot().get("f1")
            assert entry is not None
            assert entry.state is SignalState.REJECTED
            assert request_id in entry.reason

            async def rejected() -> bool:
                doc = (await get(backend.gateway_url, key, "/api/v1/signals/f1")).json()
                return bool(doc["state"] == "rejected")

            await ask_until(rejected, what="the rejection reported", timeout=30)
            await wait_until(lambda: desk2.snapshot().duplicates >= 1, 30, "f1 resent")
            assert later.intents == []
    finally:
        await backend.stop()
