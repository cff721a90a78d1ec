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
            "  trading-client bench scale --clients 1,2,4 --seconds 5\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "what",
        choices=["pipeline", "gui", "remote", "scale"],
        help="pipeline: capture to backend; gui: the window at 10k and 100k ticks/s; "
        "remote: capture through terminal serve (RPyC) against the native path; "
        "scale: K headless clients into one bridge vs a 3-node NATS cluster, then a consumer",
    )
    bench.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    bench.add_argument(
        "--clients",
        type=_client_counts,
        default=(1, 2, 4),
        metavar="K,K",
        help="scale: how many clients in each run (default 1,2,4)",
    )
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


def _client_counts(text: str) -> tuple[int, ...]:
    """``--clients 1,2,4``: positive counts, at most 8 (each client is two processes)."""
    try:
        counts = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "a comma-separated list of client counts, e.g. 1,2,4"
        ) from None
    if not counts or counts[0] < 1 or counts[-1] > 8:
        raise argparse.ArgumentTypeError("client counts from 1 to 8, e.g. 1,2,4")
    return counts
