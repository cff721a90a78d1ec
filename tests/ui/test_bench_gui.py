"""``bench gui`` says what it does while it runs: a line when a phase starts and one a
second after, on stderr, so a minute of measuring never looks stuck."""

from __future__ import annotations

import io
import re
from pathlib import Path

from app.bench.harness import Progress
from ui.bench import _phase


async def test_a_phase_reports_from_its_start_and_every_second(tmp_path: Path) -> None:
    out = io.StringIO()
    result = await _phase("10k", tmp_path / "10k", 2_000.0, 1.5, Progress(out))
    lines = out.getvalue().splitlines()
    assert re.search(r"phase 10k: started \(2,000 ticks/s", lines[0]), lines
    seconds = [ln for ln in lines if "  10k: captured" in ln]
    # The warm-up and the measured 1.5 s: a line each second of them at least.
    assert len(seconds) >= 3, lines
    assert any("loop lag p99" in ln for ln in seconds), lines
    assert "phase 10k: done in" in lines[-1], lines
    assert result["captured_ticks_per_s"] > 0  # the lines describe a phase that measured
