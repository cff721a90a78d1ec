"""``trading-client backend``: the reference backend as a command.

``app/cli.py`` adds this subcommand with :func:`add_backend_parser` and dispatches to
:func:`run_backend`; ``python -m app.server.cli backend …`` runs it standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from app.link.dump import DumpError, dump_lines
from app.nats.subjects import StreamSpec
from app.nats.urls import BadInputError, parse_servers
from app.protocol.codec import DEFAULT_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES
from app.server.server import ReferenceBackend, default_db_path, serve_forever
from app.server.store import TickStore
from app.server.users_cli import add_users_parser, run_users, users_hint

EXAMPLES = """examples:
  trading-client backend
  trading-client backend --bridge-port 3101 --db /tmp/ticks.sqlite
  trading-client backend --max-frame-bytes 1048576
  trading-client backend --forward-nats nats://127.0.0.1:4222 --forward-replicas 3
  trading-client backend stats --db /tmp/ticks.sqlite
  trading-client backend users add alice --client desk-1
"""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not in 0..65535 (0 = any free port)")
    return port


def _frame_bytes(text: str) -> int:
    # Only the syntax here: the range is checked in run_backend, so that a value below
    # the minimum is one clear line instead of argparse's usage block.
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None


def add_backend_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "backend",
        help="run the reference backend (data bridge, API gateway, central hub)",
        description="Serve the data bridge, API gateway and central hub of docs/protocol.md.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    for name, default in (("bridge", 3001), ("gateway", 8000), ("hub", 7000)):
        parser.add_argument(
            f"--{name}-port",
            type=_port,
            default=default,
            metavar="PORT",
            help=f"{name} port (default {default}; 0 = any free port)",
        )
    parser.add_argument(
        "--db", type=Path, default=None, metavar="FILE", help=f"default: {default_db_path()}"
    )
    parser.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="SQLite durability of an ack: FULL survives power loss (default); NORMAL "
        "survives a crash of the backend process and commits faster",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=_frame_bytes,
        default=DEFAULT_MAX_FRAME_BYTES,
        metavar="N",
        help=f"largest WebSocket frame the bridge accepts, announced to clients "
        f"(default {DEFAULT_MAX_FRAME_BYTES}, at least {MIN_MAX_FRAME_BYTES}); larger "
        "frames are closed with 1009",
    )
    parser.add_argument(
        "--no-demo-signals",
        dest="demo_signals",
        action="store_false",
        help="do not run the demo signal source (demo-ma-cross) over the stored ticks",
    )
    parser.add_argument(
        "--forward-nats",
        default=None,
        metavar="URLS",
        help="also publish every stored block (stream --forward-stream) and every issued "
        "signal (stream SIGNALS, outcomes read back from it) to this NATS JetStream cluster "
        "(nats://HOST:PORT[,…]; resumes where it stopped, each once)",
    )
    parser.add_argument(
        "--forward-stream", default="TICKS", metavar="NAME", help="the stream (default TICKS)"
    )
    parser.add_argument(
        "--forward-replicas",
        type=int,
        choices=[1, 3, 5],
        default=1,
        help="replicas of the stream when the forwarder creates it (default 1)",
    )
    actions = parser.add_subparsers(dest="backend_command", metavar="ACTION")
    stats = actions.add_parser(
        "stats",
        help="print the delivery statistics of a database",
        epilog="examples:\n  trading-client backend stats\n"
        "  trading-client backend stats --db /tmp/ticks.sqlite\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # SUPPRESS: ``backend --db X stats`` keeps X instead of being reset to the default.
    stats.add_argument("--db", type=Path, default=argparse.SUPPRESS, metavar="FILE")
    dump = actions.add_parser(
        "dump",
        help="print what a client's spool holds, one JSON line per message",
        epilog="examples:\n"
        "  trading-client backend dump ~/.cache/trading-client/spool/desk-1/SESSION\n"
        "  trading-client backend dump SESSION/seg-00000001.spool --rows 2\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dump.add_argument("path", type=Path, help="a spool session folder or one segment file")
    dump.add_argument(
        "--rows", type=int, default=5, help="ticks shown at each end of a block (default 5)"
    )
    add_users_parser(actions)
    return parser


def _dump(path: Path, rows: int) -> int:
    try:
        for line in dump_lines(path, max(0, rows)):
            print(line)
    except DumpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # | head
        return 0
    return 0


def _print_stats(db: Path) -> int:
    if not db.is_file():
        print(f"error: no backend database at {db}", file=sys.stderr)
        return 1
    with TickStore(db) as store:
        print(json.dumps(store.stats(), indent=2))
    return 0


def _announce(backend: ReferenceBackend) -> None:
    print(
        f"reference backend: bridge {backend.bridge_url}  gateway {backend.gateway_url}  "
        f"hub {backend.hub_url}  (db {backend.db_path})",
        flush=True,
    )
    hint = users_hint(backend.db_path)
    if hint:
        print(hint, file=sys.stderr, flush=True)


def run_backend(args: argparse.Namespace) -> int:
    db: Path = args.db or default_db_path()
    try:
        if getattr(args, "backend_command", None) == "stats":
            return _print_stats(db)
        if getattr(args, "backend_command", None) == "dump":
            return _dump(args.path, args.rows)
        if getattr(args, "backend_command", None) == "users":
            return run_users(args, db)
        if args.max_frame_bytes < MIN_MAX_FRAME_BYTES:
            print(
                f"error: --max-frame-bytes {args.max_frame_bytes} is below the protocol's "
                f"minimum of {MIN_MAX_FRAME_BYTES} bytes",
                file=sys.stderr,
            )
            return 2
        forward = parse_servers(args.forward_nats) if args.forward_nats else ()
        backend = ReferenceBackend(
            host=args.host,
            bridge_port=args.bridge_port,
            gateway_port=args.gateway_port,
            hub_port=args.hub_port,
            db_path=db,
            synchronous=args.synchronous,
            max_frame_bytes=args.max_frame_bytes,
            demo_signals=args.demo_signals,
            forward_nats=forward,
            forward_stream=StreamSpec(name=args.forward_stream, replicas=args.forward_replicas),
        )
        asyncio.run(serve_forever(backend, ready=_announce))
    except BadInputError as exc:
        print(f"error: --forward-nats: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"error: the reference backend could not start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C where the loop cannot install signal handlers
        return 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trading-client")
    add_backend_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_backend(args)


if __name__ == "__main__":
    sys.exit(main())
