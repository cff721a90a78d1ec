"""The ``bench`` command's arguments (the runs themselves: app/bench/pipeline.py,
remote.py, and ui/bench.py for the window)."""

from __future__ import annotations

import argparse

from app.bench import PHASES, parse_phases


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure throughput and latency, printing JSON",
        epilog=(
            "examples:\n  trading-client bench pipeline --seconds 5 --json\n"
            "  trading-client bench gui --seconds 10\n"
            "  trading-client bench remote --seconds 5   # remote terminal (RPyC) vs native\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "what",
        choices=["pipeline", "gui", "remote"],
        help="pipeline: capture to backend; gui: the window at 10k and 100k ticks/s; "
        "remote: capture through terminal serve (RPyC) against the native path",
    )
    bench.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    bench.add_argument("--json", action="store_true", help="print only the JSON document")
    bench.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="durability the reference bridge commits with (see 'backend --help')",
    )
    bench.add_argument(
        "--phases",
        type=parse_phases,
        default=PHASES,
        metavar="A,B",
        help=f"pipeline: run only these phases (default all: {','.join(PHASES)})",
    )
    bench.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="pipeline: a phase whose processes are not up within S seconds fails (default 120)",
    )
