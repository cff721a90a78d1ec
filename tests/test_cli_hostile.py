"""``trading-client run`` against hostile files: real subprocesses, one clear line each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from app.terminal.export_files import write_ticks
from tests.conftest import wait_until_sync
from tests.export.helpers import market_ticks
from tests.processes import mp_children
from tests.test_cli import CLI, run_cli


def _replay_config(tmp_path: Path, files: dict[str, Path]) -> Path:
    config = tmp_path / "config.json"
    terminal = {
        "name": "replay",
        "kind": "replay",
        "symbols": list(files),
        "replay_files": {sym: [str(p)] for sym, p in files.items()},
        "replay_speed": 0,
    }
    config.write_text(
        json.dumps(
            {
                "terminals": [terminal],
                "pool": {"size": len(files)},
                "backend": {"enabled": False},
                "backfill": {"enabled": False},
            }
        )
    )
    return config


def test_a_worker_failing_on_bad_data_names_file_line_and_field_and_run_exits_1(
    tmp_path: Path,
) -> None:
    good, bad = tmp_path / "EURUSD.csv", tmp_path / "GBPUSD.csv"
    write_ticks(good, market_ticks("EURUSD", seconds=2))
    write_ticks(bad, market_ticks("GBPUSD", seconds=2))
    lines = bad.read_text().splitlines()
    fields = lines[5].split("\t")
    fields[-1] = str(2**63 + 5)  # flags beyond any integer the capture can hold
    lines[5] = "\t".join(fields)
    bad.write_text("\n".join(lines) + "\n")
    config = _replay_config(tmp_path, {"EURUSD": good, "GBPUSD": bad})
    result = run_cli("run", "--config", str(config), "--duration", "20", "--quiet")
    assert result.returncode == 1, (result.stdout, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert f"{bad}:6: <FLAGS>" in errors[0]
    assert "Traceback" not in result.stderr


def _settings_path(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A hostile settings path and the reason ``run`` must give for refusing it."""
    path = tmp_path / f"{kind}.json"
    if kind == "fifo":
        os.mkfifo(path)  # used to hang forever
        return path, "a FIFO, not a regular file"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")  # used to end in a MemoryError at 5.4 GB
        return path, "a character device, not a regular file"
    if kind == "huge":
        with path.open("wb") as f:
            f.truncate(64 * 2**20)
        return path, "larger than the 4 MiB allowed"
    if kind == "duplicate":
        path.write_text('{"pool": {"size": 1}, "pool": {"size": 64}}')
        return path, "the key 'pool' appears twice in one object"
    if kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)  # used to be a RecursionError
        return path, "not valid JSON"
    path.write_text('{"pool": {"\\u001b[2Jsize\\u0000": 1}}')
    return path, "pool.\\x1b[2Jsize\\x00: unknown setting"


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge", "duplicate", "deep", "controls"])
def test_a_hostile_settings_file_is_refused_with_one_clear_line(tmp_path: Path, kind: str) -> None:
    path, reason = _settings_path(tmp_path, kind)
    result = run_cli("run", "--config", str(path), "--duration", "1", timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: ")
    assert reason in lines[0]
    assert lines[0].isprintable()  # no NUL, no escape sequence reaches the terminal


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero")
def test_a_replay_source_that_is_a_fifo_or_a_device_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "EURUSD.csv"
    os.mkfifo(fifo)
    zero = tmp_path / "GBPUSD.csv"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "a FIFO"), (zero, "a character device")):
        result = run_cli("run", "--source", f"replay:{path}", "--duration", "5", timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"error: --source: {path.name[:6]}: {path}: {kind}, not a regular file"
        ]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/PID/environ")
def test_the_master_password_reaches_no_child_process_environment() -> None:
    password = "master-" + os.urandom(8).hex()
    env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": password}
    proc = subprocess.Popen(
        [*CLI, "run", "--duration", "30", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = psutil.Process(proc.pid)

        def workers() -> list[psutil.Process]:
            return mp_children(app)

        # The 5 workers (and the resource tracker) have started: the children to read.
        wait_until_sync(lambda: len(workers()) >= 5, 60, "the pool's worker processes")
        children = app.children(recursive=True)
        assert any("resource_tracker" in _cmdline(c) for c in children)
        for child in children:
            environ = Path(f"/proc/{child.pid}/environ").read_bytes()
            assert b"TRADING_CLIENT_MASTER_PASSWORD" not in environ, _cmdline(child)
            assert password.encode() not in environ, _cmdline(child)
    finally:
        proc.terminate()
        proc.wait(30)


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _network_bridge_config(tmp_path: Path, allowed: list[str]) -> Path:
    config = tmp_path / "network.json"
    config.write_text(
        json.dumps(
            {
                "terminals": [{"symbols": ["EURUSD"], "market_hours": "always"}],
                "pool": {"size": 1},
                "backfill": {"enabled": False},
                "security": {"plaintext_allowed": allowed},
                "backend": {
                    # TEST-NET-1: another machine, never answering.
                    "bridge_url": "ws://192.0.2.1:3001/ws",
                    "hub_url": "http://127.0.0.1:9/",
                    "embedded": "never",
                    "spool_dir": str(tmp_path / "spool"),
                },
            }
        )
    )
    return config


def test_plain_ws_to_another_machine_is_refused_unless_allowed_per_endpoint(
    tmp_path: Path,
) -> None:
    refused = run_cli("run", "--config", str(_network_bridge_config(tmp_path, [])), timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        "error: Unencrypted connection: ws://192.0.2.1:3001 is not a loopback address, so "
        "data and credentials cross the network in plain text; use wss://; refused (to allow "
        "it anyway, list '192.0.2.1:3001' in security.plaintext_allowed)"
    ]
    # Another endpoint's permission does not count; this one's does.
    other = _network_bridge_config(tmp_path, ["192.0.2.1:80"])
    assert run_cli("run", "--config", str(other), timeout=60).returncode == 2
    allowed = _network_bridge_config(tmp_path, ["192.0.2.1:3001"])
    result = run_cli("run", "--config", str(allowed), "--duration", "2", "--quiet", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "allowed by security.plaintext_allowed" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")
def test_export_from_a_fifo_is_refused_with_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "EURUSD.csv"
    os.mkfifo(fifo)
    out = tmp_path / "out.csv"
    result = run_cli(
        "export",
        "ticks",
        "--symbol",
        "EURUSD",
        "--input",
        str(fifo),
        "--out",
        str(out),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"error: {fifo}: a FIFO, not a regular file"]
