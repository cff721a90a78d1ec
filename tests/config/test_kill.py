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

    def child() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.config.saver_loop", str(path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    upcoming: subprocess.Popen[str] | None = child()
    for kill in range(KILLS):
        # The next child starts (and imports) while this one saves and is checked; it
        # touches nothing before its go.
        proc, upcoming = upcoming, (child() if kill + 1 < KILLS else None)
        assert proc is not None
        assert proc.stdout is not None
        assert proc.stdin is not None
        watchdog = threading.Timer(60, proc.kill)  # a hung child ends the readline below
        watchdog.start()
        try:
            assert proc.stdout.readline() == "ready\n", f"kill {kill}: child not ready"
            proc.stdin.write("go\n")
            proc.stdin.flush()
            # Let it run 1..8 saves in, then kill it wherever it is.
            for _ in range(rng.randint(2, 9)):
                line = proc.stdout.readline()
                assert line.startswith("saving"), f"kill {kill}: child said {line!r}"
            proc.kill()
            proc.wait(timeout=60)
        except BaseException:
            if upcoming is not None:
                upcoming.kill()
                upcoming.wait()
            raise
        finally:
            watchdog.cancel()
            proc.kill()
            proc.stdout.close()
            proc.stdin.close()

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
