"""``trading-client run`` against hostile files: real subprocesses, one clear line each."""

from __future__ import annotations

import json
from pathlib import Path

from app.terminal.export_files import write_ticks
from tests.export.helpers import market_ticks
from tests.test_cli import run_cli


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
