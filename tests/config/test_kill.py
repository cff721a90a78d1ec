"""A save killed at any moment never leaves an unusable settings file."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.config import parse_config
from app.config.store import ConfigStore, canonical_json
from tests.config.saver_loop import configs

ROOT = Path(__file__).resolve().parents[2]
KILLS = 30


@pytest.mark.slow
def test_a_save_killed_at_random_moments_never_leaves_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "client-config.json"
    expected = {canonical_json(c) for c in configs()}
    rng = random.Random(20241124)  # the kill points vary with timing, the plan does not
    outcomes: set[bytes] = set()
    for kill in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.config.saver_loop", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        watchdog = threading.Timer(60, proc.kill)  # a hung child ends the readline below
        watchdog.start()
        try:
            # Let it run 1..8 saves in, then kill it wherever it is.
            for _ in range(rng.randint(2, 9)):
                line = proc.stdout.readline()
                assert line.startswith("saving"), f"kill {kill}: child said {line!r}"
            proc.kill()
            proc.wait(timeout=60)
        finally:
            watchdog.cancel()
            proc.kill()
            proc.stdout.close()

        config = parse_config(path.read_bytes(), str(path))  # raises if torn or invalid
        outcomes.add(canonical_json(config))
        assert canonical_json(config) in expected, f"kill {kill}: unexpected content"
        store = ConfigStore(path, backups=3)
        loaded = store.load()
        assert loaded.warnings == [], f"kill {kill}: {loaded.warnings}"
        assert loaded.source == "file"
        assert canonical_json(loaded.config) == canonical_json(config)
        kept = store.backups()
        assert 1 <= len(kept) <= 3, f"kill {kill}: {kept}"
        assert all(b.valid for b in kept), f"kill {kill}: {kept}"
        # Leftover temp files of the killed save are hidden and never look like settings.
        for leftover in tmp_path.rglob("*.tmp"):
            assert leftover.name.startswith(".client-config."), leftover
    assert outcomes == expected, "the kills always hit the same point of the loop"
