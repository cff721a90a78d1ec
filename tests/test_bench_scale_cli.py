"""``bench scale --clients``: bad counts are one line and exit 2, before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("clients", ["0", "1,x", "9", ","])
def test_bad_client_counts_are_one_line(clients: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "bench", "scale", "--clients", clients],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.startswith("trading-client")]
    assert any("--clients" in line and "client counts" in line for line in lines), done.stderr
    assert "Traceback" not in done.stderr
