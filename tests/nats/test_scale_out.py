"""The issue's "done when", as a user would do it: headless clients on a local 3-node
cluster, one ``store`` consumer, one node killed mid-stream (the stream's leader, the
worst one) and restarted — then every tick of every client is in the consumer's
database once, compared with each simulated terminal's own history.

Everything is a real process: ``trading-client run`` per client (with its workers), three
``nats-server`` nodes, ``trading-client store``. Nothing is read from the app's counters.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import nats
import pytest

from app.nats.cluster import LocalCluster
from app.server.store import TickStore
from tests.conftest import wait_until_sync as wait_until
from tests.nats.clients import CLI, client_doc, run_client, write_config
from tests.nats.streamread import message_count
from tests.truth import assert_span_once

pytestmark = pytest.mark.slow

RATES = {"EURUSD": 1_000.0, "XAUUSD": 500.0}


def client_config(tmp_path: Path, client: str, seed: int, servers: str, replicas: int) -> Path:
    doc = client_doc(
        tmp_path, servers, client=client, rates=RATES, seed=seed, nats_replicas=replicas
    )
    return write_config(tmp_path / f"{client}.json", doc)


def store(servers: str, db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "store", "--from", servers, "--db", str(db), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_ticks(db: Path) -> int:
    if not db.exists():
        return 0
    with TickStore(db) as st:
        return int(st.stats()["ticks_stored"])


def stream_messages(servers: str) -> int:
    return asyncio.run(message_count(servers))


def stream_leader(cluster: LocalCluster) -> int:
    """Index of the node that leads the TICKS stream now."""

    async def ask() -> str:
        live = [n.url for n in cluster.nodes if n.running]
        nc = await nats.connect(servers=live, connect_timeout=5)
        try:
            info = await nc.jetstream().stream_info("TICKS")
            assert info.cluster is not None
            return str(info.cluster.leader)
        finally:
            await nc.close()

    leader = asyncio.run(ask())
    return next(i for i, n in enumerate(cluster.nodes) if n.name == leader)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        tail = err[-500:]
        raise AssertionError(f"{proc.args!r} did not end within {timeout} s: {tail}") from None
    return proc.returncode, out, err


def assert_each_client_stored_once(db: Path, clients: dict[str, int]) -> int:
    total = 0
    with TickStore(db) as st:
        for client, seed in clients.items():
            got = {sym: st.read_ticks(client_id=client, symbol=sym) for sym in RATES}
            total += assert_span_once(got, seed, RATES, who=client)
    return total


def test_two_clients_a_cluster_a_consumer_and_a_dead_leader_store_every_tick_once(
    tmp_path: Path, nats_cluster: LocalCluster
) -> None:
    servers = nats_cluster.servers
    clients = {"desk-a": 41, "desk-b": 42}
    db = tmp_path / "ticks.sqlite"
    apps = [
        # Until told to stop (a bound only against a hang): the kill must fall mid-stream
        # however slowly a busy machine starts the clients.
        run_client(client_config(tmp_path, c, seed, servers, 3), 180)
        for c, seed in clients.items()
    ]
    consumer: subprocess.Popen[str] | None = None
    try:
        # The clients create the stream; the consumer refuses a stream that is not there.
        wait_until(lambda: stream_messages(servers) > 0, 40, "the clients' stream")
        consumer = store(servers, db)
        wait_until(lambda: stored_ticks(db) > 3_000, 40, "the first stored ticks")
        leader = stream_leader(nats_cluster)
        nats_cluster.kill(leader)
        at_kill = stored_ticks(db)
        # Clients and the consumer carry on through the two nodes left.
        wait_until(lambda: stored_ticks(db) > at_kill + 5_000, 40, "ticks stored via two nodes")
        nats_cluster.restart(leader)
        seen = stored_ticks(db)
        # ... and on through the three nodes again, then the clients stop as a user stops them.
        wait_until(lambda: stored_ticks(db) > seen + 3_000, 40, "ticks stored after the restart")
        seen = stored_ticks(db)
        for app in apps:
            app.send_signal(signal.SIGTERM)
        for app in apps:
            code, out, err = finish(app, 60)
            assert code == 0, err[-800:]
            assert "; 0 unacknowledged)" in out, out  # the spool drained into the cluster
        consumer.send_signal(signal.SIGTERM)
        code, _, err = finish(consumer, 30)
        assert code == 0, err[-800:]
        # Catch up with what the killed consumer had not stored, then stop by itself.
        code, _, err = finish(store(servers, db, "--until-idle"), 60)
        assert code == 0, err[-800:]
    finally:
        for proc in (*apps, consumer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert assert_each_client_stored_once(db, clients) > seen


def test_four_clients_publishing_at_once_are_each_stored_once(
    tmp_path: Path, nats_server: LocalCluster
) -> None:
    servers = nats_server.servers
    clients = {f"desk-{i}": 50 + i for i in range(4)}
    db = tmp_path / "ticks.sqlite"
    apps = [
        run_client(client_config(tmp_path, c, seed, servers, 1), 6) for c, seed in clients.items()
    ]
    try:
        for app in apps:
            code, out, err = finish(app, 90)
            assert code == 0, err[-800:]
            assert "; 0 unacknowledged)" in out, out
    finally:
        for proc in apps:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    code, out, err = finish(store(servers, db, "--until-idle"), 60)
    assert code == 0, err[-800:]
    assert assert_each_client_stored_once(db, clients) > 4 * 2_000
