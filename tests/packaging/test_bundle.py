"""The PyInstaller bundle, built here and run as a user would: a frozen executable whose
workers are copies of itself (multiprocessing spawn), its Qt plugins, and its doctor.

Built once per module into a temporary folder with ``packaging/build --dist``, started
when the session's tests are known (tests/prestart.py) so that it runs alongside the
other tests; the timings (build, ``--version``, first status line of ``run``) are
printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import prestart

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.prestart("bundle")]

ROOT = Path(__file__).resolve().parents[2]
EXE_NAME = "trading-client.exe" if sys.platform == "win32" else "trading-client"


#: Where the prestarted build puts the bundle (created by the build, removed after).
OUT = Path(tempfile.gettempdir()) / f"trading-client-bundle-{os.getpid()}"
BUILD = (
    sys.executable,
    str(ROOT / "packaging" / "build"),
    *("--dist", str(OUT / "dist"), "--work", str(OUT / "work")),
)
#: Started at collection (tests/prestart.py): the build runs alongside the other tests.
PRESTART = {"bundle": lambda: BUILD}


@pytest.fixture(scope="module")
def bundle() -> Iterator[Path]:
    pytest.importorskip("PyInstaller", reason="pip install -e '.[package]' (or '.[test]')")
    try:
        result = prestart.result("bundle", BUILD, cwd=ROOT, timeout=840)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        exe = OUT / "dist" / "trading-client" / EXE_NAME
        assert exe.is_file()
        size = sum(
            f.stat().st_size for f in exe.parent.rglob("*") if f.is_file() and not f.is_symlink()
        )
        print(f"\nbundle: built in {result.seconds:.0f} s, {size / 1e6:.0f} MB")
        yield exe
    finally:
        shutil.rmtree(OUT, ignore_errors=True)  # a quarter of a gigabyte per build


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
    """Until both frozen workers stream and ticks are counted, then SIGTERM: a clean stop
    with a summary (no fixed run time to outlast on a slow machine)."""
    config = _config(tmp_path)
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(bundle), "run", "--duration", "120", "--config", str(config)],
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
            total = re.search(r"total\s+([\d,]+)", line)
            if "workers 2/2 streaming" in line and total and total.group(1) != "0":
                proc.send_signal(signal.SIGTERM)
                break
        out, stderr = proc.communicate(timeout=60)
        lines.extend(out.splitlines(keepends=True))
        code = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
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
