"""Child process of the kill test: saves two different settings, alternately, forever.

It prints ``saving N`` before each save, so the test knows it is saving without
guessing with a sleep, then kills it at a random point of a save. It starts saving only
when told (a line on stdin) after printing ``ready``: the test starts the next child
while it checks the last kill, so Python's start-up is not waited for 30 times.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.config.schema import ClientConfig
from app.config.store import ConfigStore


def configs() -> tuple[ClientConfig, ClientConfig]:
    """A small and a large (about 100 kB) document: a torn write of the large one over
    the small one, or the reverse, could not parse."""
    small = ClientConfig()
    symbols = [f"SYM{i:05d}" for i in range(3_000)]
    large = ClientConfig.model_validate(
        {
            "pool": {"size": 7},
            "terminals": [
                {"name": "big", "symbols": symbols, "rates": dict.fromkeys(symbols, 10.0)}
            ],
        }
    )
    return small, large


def main() -> None:
    pair = configs()
    print("ready", flush=True)
    if not sys.stdin.readline():  # the test ended without a go
        return
    store = ConfigStore(Path(sys.argv[1]), backups=3)
    i = 0
    while True:
        print(f"saving {i}", flush=True)
        store.save(pair[i % 2])
        i += 1


if __name__ == "__main__":
    main()
