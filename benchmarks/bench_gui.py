"""The window under load, as JSON: event-loop lag, frame rates and GUI CPU at idle (the
baseline, same run), 10k and 100k ticks/s. Same as ``trading-client bench gui``.

Run from the repository root: ``python benchmarks/bench_gui.py [--seconds 10]``
(offscreen when there is no display).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ui.bench import run_bench_gui


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    args = parser.parse_args()
    print(json.dumps(run_bench_gui(args.seconds), indent=2))


if __name__ == "__main__":
    main()
