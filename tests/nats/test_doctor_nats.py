"""``trading-client doctor`` with the ticks going to NATS (app/doctor_nats.py), against
real nats-server processes: one line per server of ``backend.nats_url``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from app.config import ClientConfig
from app.doctor import run_checks
from app.doctor_nats import check_nats
from app.nats.cluster import LocalCluster, Node
from app.ports import free_ports
from tests.nats.clients import client_doc, write_config
from tests.nats.test_sink_login import PASSWORD, AuthCluster


def config(tmp_path: Path, servers: str, **backend: object) -> ClientConfig:
    doc = client_doc(
        tmp_path, servers, client="doc", rates={"EURUSD": 10.0}, seed=1, pool_size=1, **backend
    )
    return ClientConfig.model_validate(doc)


def lines(config: ClientConfig) -> list[str]:
    return [c.line() for c in check_nats(config, timeout=2.0)]


async def _add_stream(servers: list[str], name: str, subjects: list[str]) -> None:
    nc = await nats.connect(servers=servers)
    try:
        await nc.jetstream().add_stream(name=name, subjects=subjects)
    finally:
        await nc.close()


def test_the_stream_missing_then_present_then_with_other_subjects(
    tmp_path: Path, nats_server: LocalCluster
) -> None:
    url = nats_server.urls[0]
    (line,) = lines(config(tmp_path, url))
    assert line.startswith(f"[ok]   nats {url}: reached (n1 ")
    assert "JetStream on; stream TICKS missing: the first start creates it" in line

    asyncio.run(_add_stream(nats_server.urls, "TICKS", ["ticks.>"]))
    (line,) = lines(config(tmp_path, url))
    assert line.startswith("[ok]")
    assert line.endswith(
        "stream TICKS present (0 messages); the next start updates duplicate window "
        "120 s -> 600 s, max age 0 s -> 604800 s"
    )

    asyncio.run(_add_stream(nats_server.urls, "OTHER", ["quotes.>"]))
    (line,) = lines(config(tmp_path, url, nats_stream="OTHER"))
    assert line.startswith("[fail]")
    assert "stream OTHER exists with subjects ['quotes.>'], not ['ticks.>']" in line
    assert "— fix: the client refuses to publish into this stream" in line


def test_a_dead_server_beside_a_live_one_warns_alone_they_fail(
    tmp_path: Path, nats_server: LocalCluster
) -> None:
    (port,) = free_ports(1)
    dead = f"nats://127.0.0.1:{port}"
    live = nats_server.urls[0]
    both = lines(config(tmp_path, f"{live},{dead}"))
    assert [ln[:6] for ln in both] == ["[ok]  ", "[warn]"]
    assert both[1].startswith(f"[warn] nats {dead}: unreachable: ")
    assert "(the other servers answer) — fix: start nats-server with JetStream" in both[1]
    (alone,) = lines(config(tmp_path, dead))
    assert alone.startswith(f"[fail] nats {dead}: unreachable: ")
    assert "ticks wait in the spool until it is up" in alone


def test_three_replicas_asked_of_a_lone_server_fail_before_the_run_does(
    tmp_path: Path, nats_server: LocalCluster
) -> None:
    (line,) = lines(config(tmp_path, nats_server.urls[0], nats_replicas=3))
    assert line.startswith("[fail]")
    assert line.endswith(
        "stream TICKS is missing and cannot be created: 3 replicas need a cluster, this "
        "server is alone — fix: set backend.nats_replicas to 1, or run a cluster of that "
        "many servers"
    )


class NoJetStream(LocalCluster):
    def _config(self, node: Node) -> str:
        return "\n".join(
            ln for ln in super()._config(node).splitlines() if not ln.startswith("jetstream")
        )


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[LocalCluster]:
    with NoJetStream(tmp_path / "plain", size=1) as cluster:
        yield cluster


def test_a_server_without_jetstream_is_named_with_the_fix(
    tmp_path: Path, plain_server: LocalCluster
) -> None:
    (line,) = lines(config(tmp_path, plain_server.urls[0]))
    assert "reached (n1 " in line
    assert line.startswith("[fail]")
    assert "), but JetStream is not enabled — fix: start nats-server with JetStream (" in line


def test_the_doctor_runs_it_only_when_the_sink_uses_nats(
    tmp_path: Path, nats_cluster: LocalCluster
) -> None:
    path = write_config(
        tmp_path / "c.json",
        client_doc(
            tmp_path,
            nats_cluster.servers,
            client="doc",
            rates={"EURUSD": 10.0},
            seed=1,
            sink="both",
            nats_replicas=3,
        ),
    )
    checks, _, _ = run_checks(path, timeout=2.0)
    nats_lines = [c for c in checks if c.what.startswith("nats ")]
    assert [c.what for c in nats_lines] == [f"nats {u}" for u in nats_cluster.urls]
    assert all(c.level == "ok" for c in nats_lines), [c.line() for c in nats_lines]
    assert all("first start creates it" in c.detail for c in nats_lines)
    bridge_only = config(tmp_path, nats_cluster.servers, sink="bridge")
    assert check_nats(bridge_only, timeout=2.0) == []


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[LocalCluster]:
    with AuthCluster(tmp_path / "nats-auth", size=1) as cluster:
        yield cluster


def test_a_server_that_wants_a_login_the_doctor_cannot_read_is_a_warning(
    tmp_path: Path, auth_server: LocalCluster
) -> None:
    cfg = config(tmp_path, auth_server.urls[0], nats_username="bob")
    cfg = cfg.model_copy(update={"security": cfg.security.model_copy(update={"vault": "file"})})
    (line,) = lines(cfg)
    assert line == (
        f"[warn] nats {auth_server.urls[0]}: answers, asks for a login; nats/bob is not read "
        "by doctor (the vault is the encrypted file)"
    )
    assert PASSWORD not in line
