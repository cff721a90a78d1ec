"""``trading-client doctor`` as a user runs it: a real subprocess, real sockets, real TLS."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config.store import default_config_path
from app.doctor import pins_for
from app.ports import free_ports
from app.security.tls import TlsSettings
from tests.security.test_tls import Pki, _server_context
from tests.security.test_tls import pki as pki  # noqa: PLC0414 - the module's fixture
from tests.test_cli import run_cli


def doctor(*args: str) -> tuple[int, list[str]]:
    # The environment is read at call time: the autouse fixture's XDG folders apply.
    result = run_cli("doctor", *args, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def line(lines: list[str], what: str) -> str:
    found = [ln for ln in lines if ln.split("]", 1)[-1].strip().startswith(f"{what}:")]
    assert found, f"no '{what}' line in:\n" + "\n".join(lines)
    return found[0]


def write_config(tmp_path: Path, backend: dict[str, Any], **extra: Any) -> Path:
    path = tmp_path / "client-config.json"
    path.write_text(json.dumps({"backend": backend, **extra}))
    return path


def test_the_embedded_default_needs_nothing_running(tmp_path: Path) -> None:
    bridge, gateway, hub = free_ports(3)
    config = write_config(
        tmp_path,
        {
            "bridge_url": f"ws://127.0.0.1:{bridge}/ws",
            "gateway_url": f"http://127.0.0.1:{gateway}",
            "hub_url": f"http://127.0.0.1:{hub}",
        },
    )
    code, lines = doctor("--config", str(config))
    assert code == 0, "\n".join(lines)
    for what in ("bridge", "gateway", "hub"):
        text = line(lines, what)
        assert text.startswith("[ok]"), text
        assert "not running — the embedded backend will start it" in text
    assert line(lines, "settings").startswith("[ok]")
    assert line(lines, "python").startswith("[ok]")
    assert line(lines, "qt").startswith("[ok]")
    assert line(lines, "disk").startswith("[ok]")
    assert lines[-1].endswith(" 0 failures")


def test_a_dead_backend_fails_with_a_fix(tmp_path: Path) -> None:
    bridge, gateway, hub = free_ports(3)
    config = write_config(
        tmp_path,
        {
            "bridge_url": f"ws://127.0.0.1:{bridge}/ws",
            "gateway_url": f"http://127.0.0.1:{gateway}",
            "hub_url": f"http://127.0.0.1:{hub}",
            "embedded": "never",
        },
    )
    code, lines = doctor("--config", str(config))
    assert code == 1
    text = line(lines, "bridge")
    assert text.startswith("[fail]"), text
    assert f"nothing listens on 127.0.0.1:{bridge}" in text
    assert "— fix: start it: trading-client backend" in text
    assert line(lines, "gateway").startswith("[warn]")
    assert line(lines, "hub").startswith("[warn]")


def test_a_listening_bridge_is_ok(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        config = write_config(tmp_path, {"bridge_url": f"ws://127.0.0.1:{port}/ws"})
        _, lines = doctor("--config", str(config))
    assert line(lines, "bridge").startswith("[ok]")
    assert f"ws://127.0.0.1:{port}/ws: listening" in line(lines, "bridge")


def test_a_bad_settings_file_fails_and_the_other_checks_still_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pool": {"size": 0}}))
    code, lines = doctor("--config", str(bad))
    assert code == 1
    text = line(lines, "settings")
    assert text.startswith("[fail]"), text
    assert "pool.size: 0 is below the minimum 1" in text
    assert "— fix:" in text
    assert line(lines, "python").startswith("[ok]")
    assert line(lines, "disk")


def test_a_corrupt_default_file_points_at_the_backups() -> None:
    path = default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"pool": ')
    code, lines = doctor()
    assert code == 1
    text = line(lines, "settings")
    assert text.startswith("[fail]")
    assert "not valid JSON" in text
    assert "trading-client config rollback 0" in text
    assert path.read_text() == '{"pool": '  # the doctor looks; it never repairs


def test_no_settings_yet_is_fine_and_nothing_is_written() -> None:
    code, lines = doctor()
    text = line(lines, "settings")
    assert text.startswith("[ok]")
    assert "not created yet" in text
    assert not default_config_path().exists()
    assert code in (0, 1)  # whatever the machine says; the settings are not the cause


def test_the_paths_are_printed() -> None:
    _, lines = doctor()
    start = lines.index("paths:")
    shown = dict(ln.split(None, 1) for ln in lines[start + 1 : start + 7])
    assert set(shown) == {"settings", "backups", "vault", "logs", "data", "cache"}
    home = Path(os.environ["XDG_CONFIG_HOME"]).parent  # the autouse fixture's temp home
    for value in shown.values():
        assert Path(value).is_relative_to(home), value
    assert any(ln.strip().startswith("log file") for ln in lines[start:])


# ------------------------------------------------------------------------------ TLS
@pytest.fixture
def tls_port(pki: Pki) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that completes handshakes (the doctor reads the key)."""
    context = _server_context(pki)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                conn.close()  # the reachability probe closes without a handshake

    thread = threading.Thread(target=serve, name="tls-test-server", daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def _tls_config(tmp_path: Path, pki: Pki, port: int, pin: str) -> Path:
    url = f"https://localhost:{port}"
    return write_config(
        tmp_path,
        {"bridge_url": f"wss://localhost:{port}/ws", "gateway_url": url, "hub_url": url},
        security={"tls": {"ca_bundle": str(pki.ca_pem), "pins": {"localhost": [pin]}}},
    )


def test_a_pin_the_server_does_not_match_fails(tmp_path: Path, pki: Pki, tls_port: int) -> None:
    code, lines = doctor("--config", str(_tls_config(tmp_path, pki, tls_port, pki.other_spki)))
    assert code == 1
    text = line(lines, "tls bridge")
    assert text.startswith("[fail]"), text
    assert f"presents key pin {pki.spki}" in text
    assert pki.other_spki in text
    assert "security.tls.pins" in text


def test_the_right_pin_is_ok(tmp_path: Path, pki: Pki, tls_port: int) -> None:
    _, lines = doctor("--config", str(_tls_config(tmp_path, pki, tls_port, pki.spki)))
    for what in ("tls bridge", "tls gateway", "tls hub"):
        text = line(lines, what)
        assert text.startswith("[ok]"), text
        assert "certificate verified, pin matches" in text


def test_pins_for_host_and_host_port() -> None:
    a, b, c = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2, 3))
    settings = TlsSettings(pins={"Example.COM": (a,), "example.com:8443": (b,), "[::1]:443": (c,)})
    assert pins_for(settings, "example.com", 443) == (a,)
    assert pins_for(settings, "example.com", 8443) == (a, b)
    assert pins_for(settings, "::1", 443) == (c,)
    assert pins_for(settings, "other.example", 443) == ()


def test_each_terminal_shows_the_server_clock_it_is_read_with() -> None:
    from app.config import ClientConfig  # noqa: PLC0415
    from app.doctor_terminals import check_server_time  # noqa: PLC0415

    config = ClientConfig.model_validate(
        {
            "terminals": [
                {"name": "sim", "symbols": ["EURUSD"]},
                {"name": "broker", "kind": "mt5", "symbols": ["GBPUSD"]},
                {
                    "name": "athens",
                    "kind": "mt5",
                    "symbols": ["XAUUSD"],
                    "server_time_zone": "Europe/Athens",
                },
            ]
        }
    )
    july = 1_751_371_200.0  # 2025-07-01 12:00 UTC: summer in New York and in Athens
    lines = [c.line() for c in check_server_time(config, july)]
    assert lines == [
        "[ok]   terminal sim server time: ny-close (GMT+3), default",
        "[ok]   terminal broker server time: detected at connect from a fresh tick (a closed "
        "market delays it; terminals[].server_time_zone sets it)",
        "[ok]   terminal athens server time: Europe/Athens (GMT+3), set",
    ]
