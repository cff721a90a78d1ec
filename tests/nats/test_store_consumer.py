"""The consumer that stores (app/nats/store_*.py): rules, and against real nats-servers.

Truth is what the test published, compared with the database rows (tests/nats/streams.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.nats.cluster import LocalCluster
from app.nats.store_consumer import StoreConfig, StoreConsumer, StoreSetupError
from app.nats.store_rules import Foreign, Tally, classify
from app.nats.subjects import MSG_ID, BlockKey, OutMessage, lost_message, tick_messages
from app.protocol import codec
from app.server.store import KeyedBlock, KeyedLost, TickStore
from app.ticks import TickBatch
from tests.nats.streams import (
    assert_same,
    link_messages,
    make_ticks,
    publish,
    row_count,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- rules (no I/O)
def test_a_published_block_and_a_lost_marker_are_recognised() -> None:
    batch = TickBatch("EURUSD.m", make_ticks(5, 1000, 1))
    (message,) = tick_messages("desk 1", "s1", 7, [batch])
    block = classify(message.headers, message.payload)
    assert isinstance(block, KeyedBlock)
    assert (block.client_id, block.session, block.seq, block.idx) == ("desk 1", "s1", 7, 0)
    assert block.batch.ticks.tobytes() == batch.ticks.tobytes()
    lost = lost_message("desk 1", "s1", 8, 42, "damaged")
    assert classify(lost.headers, lost.payload) == KeyedLost("desk 1", "s1", 8, 42, "damaged")


def test_foreign_messages_are_named_by_kind() -> None:
    batch = TickBatch("EURUSD", make_ticks(3, 1000, 1))
    headers = BlockKey("c", "s", 5, 0).headers(1)
    two = codec.encode_ticks(5, [batch, TickBatch("XAUUSD", make_ticks(2, 1, 2))])
    cases = {
        "headers": (None, codec.encode_ticks(5, [batch])),
        "payload": (headers, b"\x00garbage"),
        "seq_mismatch": (headers, codec.encode_ticks(6, [batch])),
        "blocks": (headers, two),
        "message_type": (headers, codec.encode(codec.SignalReceived("sig-1", 5))),
    }
    for kind, (h, data) in cases.items():
        judged = classify(h, data)
        assert isinstance(judged, Foreign), kind
        assert judged.kind == kind


@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_are_judged_never_raised_on(data: bytes, with_headers: bool) -> None:
    headers = BlockKey("c", "s", 1, 0).headers(1) if with_headers else None
    assert isinstance(classify(headers, data), Foreign | KeyedBlock | KeyedLost)


def test_a_foreign_kind_is_logged_once() -> None:
    tally = Tally()
    assert tally.note_foreign(Foreign("payload", "x"))
    assert not tally.note_foreign(Foreign("payload", "y"))
    assert tally.note_foreign(Foreign("headers", "z"))
    assert tally.foreign == {"payload": 2, "headers": 1}


def test_store_blocks_is_idempotent_and_keeps_the_bridge_schema(tmp_path: Path) -> None:
    blocks = [
        KeyedBlock("c", "s", seq, 0, TickBatch("EURUSD", make_ticks(4, seq * 10, seq)))
        for seq in (3, 1, 2)
    ]
    lost = [KeyedLost("c", "s", 4, 9, "damaged")]
    with TickStore(tmp_path / "db.sqlite") as store:
        first = store.store_blocks(blocks, lost)
        again = store.store_blocks(blocks[:2], lost)
        assert (first.blocks, first.ticks, first.duplicates, first.lost) == (3, 12, 0, 1)
        assert (again.blocks, again.duplicates, again.lost) == (0, 2, 0)
        ticks = store.read_ticks(symbol="EURUSD")  # the bridge's reader: in seq order
        expected = np.concatenate([b.batch.ticks for b in sorted(blocks, key=lambda b: b.seq)])
        assert ticks.tobytes() == expected.tobytes()
        stats = store.stats()
        assert stats["lost_batches"] == 1
        assert stats["duplicate_batches"] == 2


# ---------------------------------------------------------------- against nats-server
def _config(cluster: LocalCluster, db: Path, **kw: object) -> StoreConfig:
    return StoreConfig(servers=tuple(cluster.urls), db=db, **kw)  # type: ignore[arg-type]


def test_consumer_stores_each_block_once_and_skips_garbage(
    nats_server: LocalCluster, tmp_path: Path
) -> None:
    messages, truth = link_messages("desk-1", "s1", 60, 25, ["EURUSD", "XAUUSD.m"])
    # Resent beyond the duplicate window (no Nats-Msg-Id): the stream keeps both copies.
    resent = [
        (m.subject, m.payload, {k: v for k, v in m.headers.items() if k != MSG_ID})
        for m in messages[:10]
    ]
    lost = lost_message("desk-1", "s1", 61, 7, "damaged record")
    garbage = [
        ("ticks.x.y", b"hello", None),
        ("ticks.x.y", b"\x01\x02", BlockKey("x", "s", 1, 0).headers(1)),
        ("ticks.x.z", b"again", None),
    ]
    raw = [*resent, (lost.subject, lost.payload, lost.headers), *garbage]
    asyncio.run(publish(nats_server.servers, messages + messages[:5], raw=raw))
    db = tmp_path / "store.sqlite"

    async def consume() -> Tally:
        with TickStore(db) as store:
            return await StoreConsumer(_config(nats_server, db, batch=32), store).run(
                until_idle=True
            )

    tally = asyncio.run(asyncio.wait_for(consume(), 30))
    assert_same(db, truth)
    assert tally.duplicates == 10
    assert tally.foreign == {"headers": 2, "payload": 1}
    with TickStore(db) as store:
        assert store.stats()["lost_batches"] == 1
    # Everything was acked or terminated: a second run finds nothing to do.
    again = asyncio.run(asyncio.wait_for(consume(), 30))
    assert again.acked == 0
    assert again.foreign_total == 0


def test_two_consumers_of_one_durable_share_the_work(
    nats_server: LocalCluster, tmp_path: Path
) -> None:
    """Both instances wait on the durable before anything is published, so the server
    hands batches to both (asserted: each stored some) and every block is stored once."""
    messages, truth = link_messages("desk-2", "s1", 400, 25, ["EURUSD", "GBPUSD"])
    asyncio.run(publish(nats_server.servers, []))  # the stream, empty
    db = tmp_path / "store.sqlite"

    async def both() -> list[Tally]:
        stop = asyncio.Event()
        with TickStore(db) as one, TickStore(db) as two:
            cfg = _config(nats_server, db, batch=20)
            runs = [
                asyncio.create_task(StoreConsumer(cfg, store).run(stop=stop))
                for store in (one, two)
            ]
            nc = await nats.connect(servers=nats_server.urls)
            js = nc.jetstream()

            async def waiting() -> int:
                try:
                    return (await js.consumer_info("TICKS", "store")).num_waiting or 0
                except nats.js.errors.NotFoundError:
                    return 0

            deadline = time.monotonic() + 20
            while await waiting() < 2:
                assert time.monotonic() < deadline, "both consumers never pulled"
                await asyncio.sleep(0.02)
            await nc.close()
            await publish(nats_server.servers, messages)
            while row_count(db) < len(truth):
                assert time.monotonic() < deadline + 10, "not everything stored"
                await asyncio.sleep(0.02)
            stop.set()
            return list(await asyncio.gather(*runs))

    tallies = asyncio.run(asyncio.wait_for(both(), 30))
    assert_same(db, truth)
    assert all(t.stored_blocks > 0 for t in tallies), [t.stored_blocks for t in tallies]
    assert sum(t.stored_blocks for t in tallies) == len(truth)


def _store_cmd(servers: str, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "app", "store", "--from", servers, "--db", str(db), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_consumer_killed_mid_batch_stores_nothing_twice_and_loses_nothing(
    nats_server: LocalCluster, tmp_path: Path
) -> None:
    messages, truth = link_messages("desk-3", "s1", 1500, 25, ["EURUSD", "XAUUSD"])
    asyncio.run(publish(nats_server.servers, messages))
    db = tmp_path / "store.sqlite"
    args = ("--batch", "50", "--ack-wait", "1", "--quiet")
    first = subprocess.Popen(_store_cmd(nats_server.servers, db, *args), env=_env())
    try:
        wait_until(lambda: row_count(db) >= 300, 20, "the first consumer to store some rows")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert row_count(db) < len(truth), "killed too late: the test would prove nothing"
    done = subprocess.run(
        _store_cmd(nats_server.servers, db, *args, "--until-idle"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "stored" in done.stdout
    assert_same(db, truth)


async def stream_leader(cluster: LocalCluster) -> int:
    """The index of the node leading the TICKS stream (the worst one to lose)."""
    nc = await nats.connect(servers=cluster.urls)
    try:
        info = await nc.jetstream().stream_info("TICKS")
    finally:
        await nc.close()
    assert info.cluster is not None
    return [n.name for n in cluster.nodes].index(str(info.cluster.leader))


def test_three_node_cluster_with_a_node_killed_while_storing(
    nats_cluster: LocalCluster, tmp_path: Path
) -> None:
    messages, truth = link_messages("desk-4", "s1", 600, 25, ["EURUSD", "XAUUSD"])
    asyncio.run(publish(nats_cluster.servers, messages, replicas=3))
    db = tmp_path / "store.sqlite"
    args = ("--batch", "20", "--ack-wait", "2", "--quiet", "--until-idle")
    proc = subprocess.Popen(
        _store_cmd(nats_cluster.servers, db, *args),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: row_count(db) >= 100, 20, "the consumer to store some rows")
        nats_cluster.kill(asyncio.run(stream_leader(nats_cluster)))
        _out, err = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert_same(db, truth)


# ---------------------------------------------------------------- CLI bad input
@pytest.mark.parametrize(
    ("servers", "extra", "expected"),
    [
        ("http://127.0.0.1:4222", (), "is not a nats://HOST:PORT URL"),
        ("nats://127.0.0.1:99999", (), "port is not a number"),
        ("nats://u:pw@127.0.0.1:4222", (), "no credentials in the URL"),
        ("nats://127.0.0.1:{port}", ("--connect-timeout", "1"), "no NATS server reachable"),
        ("{servers}", ("--stream", "NOPE"), "no stream 'NOPE'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    nats_server: LocalCluster, tmp_path: Path, servers: str, extra: tuple[str, ...], expected: str
) -> None:
    from app.ports import free_ports  # noqa: PLC0415

    url = servers.format(port=free_ports(1)[0], servers=nats_server.servers)
    done = subprocess.run(
        _store_cmd(url, tmp_path / "db.sqlite", *extra),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "pw" not in done.stderr


def test_setup_error_without_a_server(tmp_path: Path) -> None:
    from app.ports import free_ports  # noqa: PLC0415

    cfg = StoreConfig(
        servers=(f"nats://127.0.0.1:{free_ports(1)[0]}",),
        db=tmp_path / "db.sqlite",
        connect_timeout_s=0.5,
    )

    async def run() -> None:
        with TickStore(cfg.db) as store:
            await StoreConsumer(cfg, store).run(until_idle=True)

    with pytest.raises(StoreSetupError, match="no NATS server reachable"):
        asyncio.run(run())


def test_user_password_comes_from_the_environment_never_the_command_line(
    tmp_path: Path,
) -> None:
    """A server with a user: ``--user`` plus the env password stores; a wrong one is a line."""
    from app.nats.cluster import find_server  # noqa: PLC0415
    from app.ports import free_ports  # noqa: PLC0415

    port = free_ports(1)[0]
    conf = tmp_path / "auth.conf"
    store_dir = (tmp_path / "js").as_posix()
    conf.write_text(
        f'listen: 127.0.0.1:{port}\njetstream {{ store_dir: "{store_dir}" }}\n'
        'authorization { user: bob, password: "s3cret-pw" }\n'
    )
    server = subprocess.Popen([str(find_server()), "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        url = f"nats://127.0.0.1:{port}"
        messages, truth = link_messages("desk-5", "s1", 5, 10, ["EURUSD"])
        wait_until(
            lambda: _publishes(f"nats://bob:s3cret-pw@127.0.0.1:{port}", messages),
            20,
            "the server to take a publish",
        )
        db = tmp_path / "store.sqlite"
        cmd = _store_cmd(url, db, "--user", "bob", "--until-idle", "--quiet")
        ok = subprocess.run(
            cmd,
            env={**_env(), "TRADING_CLIENT_NATS_PASSWORD": "s3cret-pw"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        assert_same(db, truth)
        bad = subprocess.run(
            [*cmd, "--connect-timeout", "2"],
            env={**_env(), "TRADING_CLIENT_NATS_PASSWORD": "wrong-pw"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert bad.returncode != 0
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "wrong-pw" not in bad.stderr
        assert "uthorization" in bad.stderr, bad.stderr
    finally:
        server.kill()
        server.wait(10)


def _publishes(servers: str, messages: list[OutMessage]) -> bool:
    try:
        asyncio.run(publish(servers, messages))
    except (OSError, nats.errors.Error):
        return False
    return True
