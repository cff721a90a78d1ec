"""The embedded default: the reference backend in a child process of the client.

Real processes and sockets, no mocks. Most tests only look at processes and ports, so
they hold whatever the wire protocol does; the one that needs ticks acknowledged says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from app.config import ClientConfig
from app.link.embedded import EmbeddedBackend, EmbeddedBackendError, start_embedded
from app.link.link import BridgeLink
from app.ports import free_ports
from app.runtime import Runtime
from app.security.secret import Secret
from app.server.server import ReferenceBackend
from tests.conftest import wait_until, wait_until_sync
from tests.server.conftest import ADMIN_KEY, KEYS

pytestmark = pytest.mark.slow


class Ports:
    def __init__(self) -> None:
        self.bridge, self.gateway, self.hub = free_ports(3)

    @property
    def all(self) -> tuple[int, int, int]:
        return self.bridge, self.gateway, self.hub

    def backend_doc(self, tmp_path: Path, **backend: object) -> dict[str, object]:
        return {
            "bridge_url": f"ws://127.0.0.1:{self.bridge}/ws",
            "gateway_url": f"http://127.0.0.1:{self.gateway}",
            "hub_url": f"http://127.0.0.1:{self.hub}",
            "client_id": "test-desk",
            "embedded": "always",
            "embedded_db": str(tmp_path / "emb.sqlite"),
            "spool_dir": str(tmp_path / "spool"),
            "hub_heartbeat_s": 0.5,
            "backoff": {"initial_s": 0.1, "maximum_s": 0.5},
            **backend,
        }

    def config(
        self, tmp_path: Path, rates: dict[str, float] | None = None, **backend: object
    ) -> ClientConfig:
        rates = rates or {"EURUSD": 200.0}
        return ClientConfig.model_validate(
            {
                "terminals": [
                    {"symbols": list(rates), "rates": rates, "seed": 11, "market_hours": "always"}
                ],
                "pool": {"size": len(rates), "backoff": {"initial_s": 0.2, "maximum_s": 1.0}},
                "backend": self.backend_doc(tmp_path, **backend),
            }
        )


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def listen_ports(proc: psutil.Process) -> set[int]:
    try:
        return {
            c.laddr.port for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
        }
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return set()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def backend_children() -> list[psutil.Process]:
    """Processes this one spawned with multiprocessing that still run (the tests that
    call this have no capture workers running)."""
    found = []
    for child in psutil.Process().children():
        try:
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if "spawn_main" in cmdline and not gone(child.pid):
            found.append(child)
    return found


@pytest.fixture
async def runtimes() -> AsyncIterator[list[Runtime]]:
    started: list[Runtime] = []
    yield started
    for rt in started:
        await rt.stop()


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A loopback port some other program listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


async def test_the_backend_runs_in_a_child_process_and_stops_with_the_runtime(
    tmp_path: Path, runtimes: list[Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ports = Ports()
    rt = Runtime(ports.config(tmp_path))
    runtimes.append(rt)
    await rt.start()
    emb = rt.embedded
    assert emb is not None
    pid = emb.pid
    assert pid is not None
    assert pid != os.getpid()
    child = psutil.Process(pid)
    assert child.ppid() == os.getpid()
    # It listens on the ports it reports, which are the configured ones.
    assert (emb.bridge_port, emb.gateway_port, emb.hub_port) == ports.all
    assert emb.bridge_url == f"ws://127.0.0.1:{ports.bridge}/ws"
    assert emb.gateway_url == f"http://127.0.0.1:{ports.gateway}"
    assert emb.hub_url == f"http://127.0.0.1:{ports.hub}"
    assert listen_ports(child) >= set(ports.all)
    assert emb.db_path == tmp_path / "emb.sqlite"
    # The child's log records reach this process's handlers (the window's journal).
    assert any(
        r.name == "app.server.server" and "reference backend up" in r.getMessage()
        for r in caplog.records
    )

    await rt.stop()
    runtimes.remove(rt)
    assert gone(pid), "stop() returns once the child has exited"
    assert emb.pid is None
    assert not any(listening(p) for p in ports.all)
    assert not backend_children()


async def test_stop_and_start_again_on_the_same_ports_and_database(tmp_path: Path) -> None:
    """What the alerts panel test does to take the bridge down and bring it back."""
    ports = Ports()
    emb = await start_embedded(ports.config(tmp_path).backend)
    assert isinstance(emb, EmbeddedBackend)
    try:
        first = emb.pid
        assert first is not None
        await emb.stop()
        await emb.stop()  # idempotent
        assert gone(first)
        assert not listening(ports.bridge)
        await emb.start()
        assert emb.pid not in (None, first)
        assert listening(ports.bridge)
        assert (emb.bridge_port, emb.gateway_port, emb.hub_port) == ports.all
        assert emb.stats()["sessions"] == []  # read from the same database file
    finally:
        await emb.stop()
    assert not backend_children()


async def test_ports_asked_as_zero_are_kept_for_a_restart(tmp_path: Path) -> None:
    emb = EmbeddedBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "z.db")
    await emb.start()
    try:
        bound = (emb.bridge_port, emb.gateway_port, emb.hub_port)
        assert 0 not in bound
        assert emb.bridge_url.startswith(f"ws://127.0.0.1:{bound[0]}/")
        await emb.stop()
        await emb.start()
        assert (emb.bridge_port, emb.gateway_port, emb.hub_port) == bound
    finally:
        await emb.stop()


async def test_a_taken_port_is_one_clear_error_and_no_child(
    tmp_path: Path, held_port: socket.socket
) -> None:
    ports = Ports()
    taken = held_port.getsockname()[1]
    # The gateway's port is taken: the child has already bound the bridge, and must
    # let it go again as well as exit.
    config = ports.config(tmp_path, gateway_url=f"http://127.0.0.1:{taken}").backend
    with pytest.raises(EmbeddedBackendError) as err:
        await start_embedded(config)
    text = str(err.value)
    assert text.startswith("the embedded backend could not start (")
    assert "address already in use" in text.lower() or "in use" in text.lower(), text
    assert text.endswith(
        f"free ports {ports.bridge}/{taken}/{ports.hub} or set backend.embedded to 'never'"
    )
    assert not backend_children()
    assert not listening(ports.bridge)


async def test_auto_leaves_a_running_bridge_alone(tmp_path: Path, runtimes: list[Runtime]) -> None:
    ports = Ports()
    external = ReferenceBackend(
        host="127.0.0.1",
        bridge_port=ports.bridge,
        gateway_port=ports.gateway,
        hub_port=ports.hub,
        db_path=tmp_path / "ext.sqlite",
        keys=KEYS,
    )
    async with external:
        rt = Runtime(ports.config(tmp_path, embedded="auto"), credential=Secret(ADMIN_KEY))
        runtimes.append(rt)
        await rt.start()
        assert rt.embedded is None
        # The capture workers are spawned children too (started with the backend's
        # process since #15): no child of this process listens, so none is a backend.
        assert not [c for c in backend_children() if listen_ports(c)]
        # (needs the link's handshake with the bridge to work)
        await wait_until(lambda: link_of(rt).state.connected, 30, "link to the external bridge")


def test_kill_9_of_the_app_leaves_no_embedded_backend(tmp_path: Path) -> None:
    ports = Ports()
    config = tmp_path / "client.json"
    doc = {
        "terminals": [{"symbols": ["EURUSD"], "rates": {"EURUSD": 500}, "market_hours": "always"}],
        "pool": {"size": 1},
        "backend": ports.backend_doc(tmp_path),
    }
    config.write_text(json.dumps(doc))
    app = subprocess.Popen(
        [sys.executable, "-m", "app", "run", "--config", str(config), "--duration", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_sync(
            lambda: app.poll() is not None or listening(ports.bridge), 30, "the embedded bridge"
        )
        assert app.poll() is None, "the app exited early"
        owners = [
            p
            for p in psutil.Process(app.pid).children(recursive=True)
            if ports.bridge in listen_ports(p)
        ]
        assert len(owners) == 1, "one child process listens on the bridge port"
        backend = owners[0]
        assert backend.pid != app.pid
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=10)
        # The orphan notices (pipe EOF, parent watch), stops, and lets the ports go.
        wait_until_sync(lambda: gone(backend.pid), 20, "the embedded backend to exit")
        wait_until_sync(
            lambda: not any(listening(p) for p in ports.all), 10, "the ports to be free"
        )
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()


def link_of(rt: Runtime) -> BridgeLink:
    assert rt.link is not None
    return rt.link


async def test_ticks_reach_the_embedded_bridge_and_are_stored(
    tmp_path: Path, runtimes: list[Runtime]
) -> None:
    """End to end through the child's bridge: needs the link and the bridge to speak
    the same protocol (the only test here that depends on delivery)."""
    ports = Ports()
    rt = Runtime(ports.config(tmp_path, {"EURUSD": 500.0}, embedded="auto"))
    runtimes.append(rt)
    await rt.start()
    emb = rt.embedded
    assert emb is not None
    await wait_until(
        lambda: link_of(rt).state.ticks_acked > 500, 60, "acks from the embedded bridge"
    )
    await rt.stop()
    runtimes.remove(rt)
    # Every acknowledged tick was committed by the child before it exited.
    stats = await asyncio.to_thread(emb.stats)
    assert stats["ticks_stored"] == link_of(rt).state.ticks_acked
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", ports.bridge)
