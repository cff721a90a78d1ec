"""``run``'s closing summary tells the truth about what was not delivered.

It used to read the links after their spools had closed (a closed spool holds nothing),
and said "0 unacknowledged" while every tick of the run waited in the spool."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from app.ports import free_ports

CLI = (sys.executable, "-m", "app")


def test_a_run_whose_bridge_never_answers_reports_every_tick_unacknowledged(
    tmp_path: Path,
) -> None:
    bridge, hub = free_ports(2)  # nothing listens on either
    spool = tmp_path / "spool"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "terminals": [
                    {
                        "symbols": ["EURUSD"],
                        "rates": {"EURUSD": 2_000.0},
                        "seed": 7,
                        "market_hours": "always",
                    }
                ],
                "pool": {"size": 1},
                "backend": {
                    "bridge_url": f"ws://127.0.0.1:{bridge}/ws",
                    "hub_url": f"http://127.0.0.1:{hub}",
                    "client_id": "desk-summary",
                    "embedded": "never",
                    "spool_dir": str(spool),
                },
                "backfill": {"state_file": str(tmp_path / "spans.json")},
                "monitor": {"enabled": False},
            }
        )
    )
    env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": "unused-master-pass"}
    done = subprocess.run(
        [*CLI, "run", "--config", str(config), "--duration", "3", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-800:]
    captured = re.search(r"\(([\d,]+) live", done.stdout)
    summary = re.search(r"delivered ([\d,]+) ticks .*; ([\d,]+) unacknowledged\)", done.stdout)
    assert captured is not None, done.stdout
    assert summary is not None, done.stdout
    live = int(captured.group(1).replace(",", ""))
    assert live > 0, done.stdout
    assert summary.group(1) == "0"
    # Nothing was acknowledged: every captured tick is in the spool, and the summary says so.
    assert int(summary.group(2).replace(",", "")) >= live
    assert any(spool.rglob("seg-*.spool")), "the unacknowledged ticks are not in the spool"
    assert "kept in the spool for the next run" in done.stderr
