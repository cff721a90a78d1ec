"""``trading-client bench pipeline`` as a user runs it: a cheap subset of phases, and a
phase that fails — exit code, one clear stderr line, the JSON document all the same."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

CLI = [sys.executable, "-m", "app", "bench", "pipeline", "--json"]

pytestmark = pytest.mark.slow


def _bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_cheap_phases_give_their_figures_and_progress() -> None:
    done = _bench("--seconds", "1", "--phases", "capture_ceiling,raw_ceiling")
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)  # stdout holds the JSON document alone
    assert doc["phases"] == ["raw_ceiling", "capture_ceiling"]  # run order, not typed order
    assert doc["failed"] == []
    assert doc["raw_ceiling_ticks_per_s"] > 0
    assert doc["capture_ceiling_ticks_per_s"] > 0
    capture = doc["capture_ceiling"]
    assert set(capture["rss_mb_workers"]) == {"1", "2", "3", "4", "5"}
    assert "acked_ticks_per_s" not in capture  # delivery was off
    cpu = capture["cpu_ns_per_tick"]  # per captured tick: no bridge, every worker
    assert {"app", "workers", "total"} <= set(cpu)
    assert {f"worker {i}" for i in range(1, 6)} <= set(cpu)
    assert "bridge" not in cpu
    assert cpu["total"] == cpu["app"] + cpu["workers"] > 0
    assert doc["full_speed"] is None
    assert set(doc["targets"]) == {
        "full_speed_ge_1_5M",
        "ratio_to_capture_ceiling_ge_0_8",
        "p99_tick_to_ack_le_2ms_at_10k",
        "rss_app_le_300mb",
        "backlog_drained",
        "largest_frame_within_limit",
        "monitoring_within_5_percent",
    }
    assert all(v is None for v in doc["targets"].values())  # none of their phases ran
    err = done.stderr
    for phase in ("raw_ceiling", "capture_ceiling"):
        assert f"phase {phase}: started" in err
        assert f"phase {phase}: done" in err
    assert "raw_ceiling: acked" in err
    assert "capture_ceiling: captured" in err


def test_a_failing_phase_exits_1_with_one_line() -> None:
    done = _bench("--seconds", "1", "--phases", "capture_ceiling", "--startup-timeout", "0.01")
    assert done.returncode == 1
    failures = [line for line in done.stderr.splitlines() if "failed" in line]
    assert failures == [
        "phase capture_ceiling failed: the pipeline did not come up within 0.01 s"
    ], done.stderr
    assert "Traceback" not in done.stderr
    doc = orjson.loads(done.stdout)
    assert doc["failed"] == ["capture_ceiling"]
    assert doc["capture_ceiling"] is None


def test_unknown_phases_are_refused_without_echo() -> None:
    done = _bench("--phases", "full_speed,s3cret")
    assert done.returncode == 2
    assert "s3cret" not in done.stderr
    assert "raw_ceiling" in done.stderr  # names the valid phases
