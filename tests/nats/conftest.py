"""Real nats-server nodes for the scale-out tests (app/nats/cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.nats.cluster import LocalCluster


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[LocalCluster]:
    """One JetStream server (fast: for sink and consumer rules)."""
    with LocalCluster(tmp_path / "nats", size=1) as cluster:
        yield cluster


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three JetStream servers with distinct names, routed to each other (R3 streams)."""
    with LocalCluster(tmp_path / "nats", size=3) as cluster:
        yield cluster
