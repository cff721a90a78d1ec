"""``benchmarks/bench_risk.py`` as it is run: JSON on stdout, progress on stderr, every
phase measured, the queued audit file holding one line per decision."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_risk.py"


def test_small_run_reports_every_phase(tmp_path: Path) -> None:
    args = ["--orders", "300", "--audit-orders", "30", "--inline-orders", "5"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args, "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    phases = doc["phases"]
    assert list(phases) == ["baseline", "engine", "engine_audit_queued", "engine_audit_inline"]
    assert phases["engine"]["orders"] == 300
    assert phases["engine_audit_queued"]["audit_lines"] == 30
    assert all(p["refused"] == 0 and p["p50_us"] > 0 for p in phases.values())
    assert "[bench_risk] engine:" in done.stderr


def test_bad_arguments_are_one_line_and_a_non_zero_exit() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--orders", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "bench_risk: order counts and the deadline must be above 0"
