"""The PyInstaller bundle, built here and run as a user would: a frozen executable whose
workers are copies of itself (multiprocessing spawn), its Qt plugins, and its doctor.

Built once per module into a temporary folder with ``packaging/build --dist``; the
timings (build, ``--version``, first status line of ``run``) are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
EXE_NAME = "trading-client.exe" if sys.platform == "win32" else "trading-client"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("PyInstaller", reason="pip install -e '.[package]' (or '.[test]')")
    out = tmp_path_factory.mktemp("bundle")
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "packaging" / "build"),
            "--dist",
            str(out / "dist"),
            "--work",
            str(out / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exe = out / "dist" / "trading-client" / EXE_NAME
    assert exe.is_file()
    size = sum(
        f.stat().st_size for f in exe.parent.rglob("*") if f.is_file() and not f.is_symlink()
    )
    print(f"\nbundle: built in {time.monotonic() - started:.0f} s, {size / 1e6:.0f} MB")
    yield exe
    shutil.rmtree(out, ignore_errors=True)  # a quarter of a gigabyte per build


def _config(tmp_path: Path) -> Path:
    """Settings that need nothing from the machine: simulated terminal, no backend."""
    path = tmp_path / "client-config.json"
    doc = {
        "terminals": [{"symbols": ["EURUSD", "XAUUSD"], "seed": 3, "market_hours": "always"}],
        "pool": {"size": 2},
        "backend": {"enabled": False},
    }
    path.write_text(json.dumps(doc))
    return path


def test_version_answers_quickly(bundle: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(bundle), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("trading-client ")
    assert "0.0.0+source" not in result.stdout  # the package metadata is bundled
    print(f"\nbundle: --version in {elapsed:.2f} s")


def test_run_captures_with_frozen_workers(bundle: Path, tmp_path: Path) -> None:
    config = _config(tmp_path)
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(bundle), "run", "--duration", "3", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first_status: float | None = None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if first_status is None and "ticks/s" in line:
                first_status = time.monotonic() - started
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    output = "".join(lines)
    assert code == 0, output + stderr
    # The workers are the bundle itself, re-executed by multiprocessing's spawn.
    assert "workers 2/2 streaming" in output, output + stderr
    assert next(ln for ln in lines if ln.startswith("captured ")).split()[1] != "0"
    assert first_status is not None
    print(f"\nbundle: first status line of run after {first_status:.2f} s (1 s interval)")
    log_file = Path(os.environ["XDG_STATE_HOME"]) / "trading-client" / "log" / "trading-client.log"
    assert "run started" in log_file.read_text(encoding="utf-8")


def test_gui_writes_a_screenshot_offscreen(bundle: Path, tmp_path: Path) -> None:
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [
            str(bundle),
            "gui",
            "--config",
            str(_config(tmp_path)),
            "--screenshot",
            str(shot),
            "--quit-after",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000, len(data)


def test_doctor_probes_qt_inside_the_bundle(bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [str(bundle), "doctor", "--config", str(_config(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok]   qt: Qt " in result.stdout, result.stdout
    assert "(bundled)" in result.stdout
