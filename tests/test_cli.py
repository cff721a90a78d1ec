"""``trading-client`` as a user runs it: real subprocesses, real signals, real files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest

from app.ports import free_ports
from tests.conftest import wait_until_sync
from tests.processes import mp_children
from tests.server.conftest import add_user

CLI = [sys.executable, "-m", "app"]


def vault_login(tmp_path: Path, db: Path, user: str, client_id: str) -> dict[str, str]:
    """A backend user for ``client_id`` in ``db``'s users file and its password in the
    file vault at ``tmp_path/vault.bin`` (the backend has no default account); returns
    the environment that unlocks the vault. The config must name ``user`` as
    ``backend.gateway_username`` and the vault file in ``security``."""
    password = f"{user}-password-1"
    add_user(db, user, password, [client_id])
    env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": f"{user}-master-pass"}
    vault = str(tmp_path / "vault.bin")
    stored = run_cli(
        "credentials",
        "--vault-file",
        vault,
        "--no-keyring",
        "set",
        f"gateway/{user}",
        env=env,
        stdin=password + "\n",
    )
    assert stored.returncode == 0, stored.stderr
    return env


def run_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=stdin,
        check=False,
    )


def run_clis(
    *commands: Sequence[str], timeout: float = 120, env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands started together (a CLI start is mostly CPU on one core:
    two run at once take the time of one on two cores); their results in order."""
    procs = [
        subprocess.Popen(
            [*CLI, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for args in commands
    ]
    results = []
    try:
        for proc, args in zip(procs, commands, strict=True):
            out, err = proc.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess([*CLI, *args], proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_invalid_config_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pool": {"size": 0}}))
    result = run_cli("run", "--config", str(bad), "--duration", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: pool.size: 0 is below the minimum 1"
    ]
    assert "Traceback" not in result.stderr


def test_a_bad_command_line_value_is_one_clear_line_like_a_file_gets(tmp_path: Path) -> None:
    """``--workers 0`` printed pydantic's error text and its web link."""
    good = tmp_path / "good.json"
    good.write_text("{}")
    result = run_cli("run", "--config", str(good), "--workers", "0", "--duration", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: command line: pool.size: 0 is below the minimum 1"
    ]


def test_unreadable_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"pool": ')
    result = run_cli("run", "--config", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "not valid JSON" in result.stderr


def _total(status_line: str) -> int:
    """The running total of a status line (``... total 12,345 workers ...``)."""
    found = re.search(r"total\s+([\d,]+)", status_line)
    return int(found.group(1).replace(",", "")) if found else 0


@pytest.mark.slow
def test_run_streams_from_five_workers_and_sigterm_stops_cleanly() -> None:
    """The default run: five workers stream and a status line comes every second; then
    SIGTERM (not a fixed run time, which a slow machine may not outlast) stops it cleanly
    with a summary, and no worker is left behind."""
    proc = subprocess.Popen(
        [*CLI, "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        streaming: list[str] = []
        for line in proc.stdout:
            if "ticks/s" in line and "workers 5/5 streaming" in line:
                streaming.append(line)
                if len(streaming) >= 2 and _total(line) > 0:
                    break
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    summary = [ln for ln in lines if ln.startswith("  worker ")]
    assert len(summary) == 5, out
    assert all("0 reconnects" in ln for ln in summary), out
    captured = next(ln for ln in lines if ln.startswith("captured "))
    assert int(captured.split()[1].replace(",", "")) > 0
    wait_until_sync(
        lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children),
        30,
        "workers to exit",
    )


@pytest.mark.slow
def test_workers_exit_when_the_app_is_killed_outright() -> None:
    proc = subprocess.Popen(
        [*CLI, "run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "workers 5/5 streaming" in line:
                break
        workers = mp_children(psutil.Process(proc.pid))
        # Five workers, and the embedded backend's process when it started (nothing
        # else listened on the bridge port).
        assert len(workers) in (5, 6)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 30
    wait_until_sync(
        lambda: (
            not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
            or time.monotonic() > deadline
        ),
        40,
        "orphaned workers to exit",
    )
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def _start_backend(ports: list[int], db: Path) -> subprocess.Popen[str]:
    args = ["backend", "--bridge-port", str(ports[0]), "--gateway-port", str(ports[1])]
    args += ["--hub-port", str(ports[2]), "--db", str(db)]
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert f"ws://127.0.0.1:{ports[0]}/ws" in line, line + (
        proc.stderr.read() if proc.stderr else ""
    )
    return proc


def _acked(status_line: str) -> int:
    found = re.search(r"acked ([\d,]+)", status_line)
    return int(found.group(1).replace(",", "")) if found else 0


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_backend_and_run_from_two_terminals_survive_a_killed_backend(tmp_path: Path) -> None:
    ports = free_ports(3)
    db = tmp_path / "bridge.sqlite"
    config = tmp_path / "client.json"
    config.write_text(
        json.dumps(
            {
                "terminals": [
                    {
                        "symbols": ["EURUSD", "GBPUSD"],
                        "rates": {"EURUSD": 2000, "GBPUSD": 2000},
                        "market_hours": "always",
                    }
                ],
                "pool": {"size": 2},
                "backend": {
                    "bridge_url": f"ws://127.0.0.1:{ports[0]}/ws",
                    "gateway_url": f"http://127.0.0.1:{ports[1]}",
                    "hub_url": f"http://127.0.0.1:{ports[2]}",
                    "embedded": "never",
                    "client_id": "cli-desk",
                    "gateway_username": "cli-user",
                    "spool_dir": str(tmp_path / "spool"),
                    "backoff": {"initial_s": 0.1, "maximum_s": 0.5},
                },
                "security": {"vault": "file", "vault_file": str(tmp_path / "vault.bin")},
            }
        )
    )
    env = vault_login(tmp_path, db, "cli-user", "cli-desk")
    backend = _start_backend(ports, db)
    run = subprocess.Popen(
        [*CLI, "run", "--config", str(config), "--duration", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout is not None
        lines = []
        for line in run.stdout:
            lines.append(line)
            if "link up, acked" in line and "acked 0," not in line:
                break
        os.kill(backend.pid, signal.SIGKILL)
        backend.wait(timeout=20)
        for line in run.stdout:
            lines.append(line)
            if "link DOWN" in line:
                break
        acked_at_down = max(_acked(ln) for ln in lines)
        backend = _start_backend(ports, db)
        # Delivering again on the new backend: then SIGTERM, a clean stop that drains.
        for line in run.stdout:
            lines.append(line)
            if "link up, acked" in line and _acked(line) > acked_at_down:
                break
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
        lines.extend(out.splitlines())
    finally:
        _stop(run)
        _stop(backend)
    assert run.returncode == 0, err
    text = "".join(lines)
    assert "link DOWN" in text
    captured = int(
        next(ln for ln in lines if ln.startswith("captured ")).split()[1].replace(",", "")
    )
    delivered = next(ln for ln in lines if ln.startswith("delivered "))
    assert int(delivered.split()[1].replace(",", "")) == captured, delivered
    assert "; 0 unacknowledged" in delivered
    stats = json.loads(run_cli("backend", "stats", "--db", str(db)).stdout)
    assert stats["ticks_stored"] == captured
    assert [s["ticks"] for s in stats["sessions"]] == [captured]


def test_a_real_terminal_without_a_stored_password_names_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "mt5.json"
    config.write_text(
        json.dumps(
            {
                "terminals": [
                    {"name": "broker", "kind": "mt5", "login": 5001, "symbols": ["EURUSD"]}
                ],
                "security": {"vault": "file", "vault_file": str(tmp_path / "vault.bin")},
                "backend": {"enabled": False},
            }
        )
    )
    env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": "correct horse battery"}
    result = run_cli("run", "--config", str(config), "--duration", "1", env=env)
    assert result.returncode == 2
    assert "trading-client credentials set mt5/broker" in result.stderr
    # With the password stored, the run gets as far as the terminal itself: on this
    # machine the MetaTrader5 package is missing, which the worker reports in one line.
    vault = str(tmp_path / "vault.bin")
    stored = run_cli(
        "credentials",
        "--vault-file",
        vault,
        "--no-keyring",
        "set",
        "mt5/broker",
        env=env,
        stdin="broker-password-123\n",
    )
    assert stored.returncode == 0, stored.stderr
    result = run_cli("run", "--config", str(config), "--duration", "30", env=env)
    assert result.returncode == 1
    assert "MetaTrader5" in result.stderr
    assert "broker-password-123" not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"broker-password-123" not in path.read_bytes(), path


def test_a_corrupt_default_settings_file_is_kept_aside_and_the_run_goes_on() -> None:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "trading-client"
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "client-config.json"
    bad.write_bytes(b'{"pool": {"size": 0}')  # truncated JSON
    result = run_cli("run", "--duration", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr
    assert str(bad) in result.stderr
    kept = list(folder.glob("client-config.json.bad-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == b'{"pool": {"size": 0}'
    assert "captured " in result.stdout


@pytest.mark.slow
def test_run_writes_stats_and_history(tmp_path: Path) -> None:
    stats, history = tmp_path / "stats.json", tmp_path / "history.csv"
    # The default settings, with a market that trades on any day: every symbol ticks.
    config = tmp_path / "client-config.json"
    config.write_text(json.dumps({"terminals": [{"market_hours": "always"}]}))
    # Stopped by SIGTERM after two status lines with every worker streaming and ticks
    # counted (a fixed --duration 4 captured nothing on a loaded machine).
    proc = subprocess.Popen(
        [
            *(*CLI, "run", "--config", str(config), "--duration", "120"),
            *("--stats", str(stats), "--history", str(history)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        streaming = 0
        for line in proc.stdout:
            if "workers 5/5 streaming" in line and _total(line) > 0:
                streaming += 1
                if streaming == 2:
                    break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    doc = json.loads(stats.read_text())
    assert doc["ticks_captured"] == doc["monitor"]["ticks_total"] > 0
    assert set(doc["monitor"]["ticks_per_symbol"]) == {
        "EURUSD",
        "GBPUSD",
        "USDJPY",
        "XAUUSD",
        "BTCUSD",
    }
    assert doc["monitor"]["latency"]["tick_to_collector"]["p99_ms"] > 0
    # The default simulated server is at ny-close (GMT+2/+3): the monitor still measures
    # the pipeline (seconds at worst on a busy machine), not the server's offset.
    assert doc["monitor"]["latency"]["tick_to_collector"]["max_ms"] < 30_000
    assert doc["monitor"]["peaks"]["system.rss_bytes"] > 10 * 2**20
    header = history.read_text().splitlines()[0].split(",")
    assert "tps.total" in header
    assert "system.cpu_percent" in header


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_everything_cleanly() -> None:
    """A terminal's Ctrl-C reaches the whole process group, workers included."""
    proc = subprocess.Popen(
        [*CLI, "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "workers 5/5 streaming" in line:
                break
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "last error" not in out
    assert "0 unacknowledged" in out


def test_summary_reports_the_live_rate_apart_from_the_backfilled_history() -> None:
    """The backfill burst (past ticks fetched at start) is not capture rate: the summary
    gives live ticks/s over the live ticks only and counts the history on its own."""
    import numpy as np  # noqa: PLC0415

    from app.cli import _summary  # noqa: PLC0415
    from app.config import ClientConfig  # noqa: PLC0415
    from app.runtime import Runtime  # noqa: PLC0415
    from app.ticks import TickBatch, empty_ticks  # noqa: PLC0415

    def ticks(n: int, first_msc: int) -> np.ndarray:
        out = empty_ticks(n)
        out["time_msc"] = np.arange(first_msc, first_msc + n)
        out["bid"], out["ask"] = 1.1, 1.2
        return out

    runtime = Runtime(ClientConfig())
    now_msc = 1_700_000_000_000
    runtime.collector.ingest_history(TickBatch("EURUSD", ticks(50_000, now_msc - 3_600_000)))
    runtime.collector.ingest(TickBatch("EURUSD", ticks(1_000, now_msc)))
    text = _summary(runtime.status(), 10.0)
    captured = text.splitlines()[0]
    assert captured.startswith("captured 51,000 ticks"), captured
    assert "1,000 live, 100 live ticks/s" in captured, captured
    assert "50,000 backfilled from history" in captured, captured
