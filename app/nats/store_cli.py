"""``trading-client store``: the stream consumer as a command (``app/cli.py`` registers it).

Progress goes to stderr once a second (rate and lag first), the final summary is one
line on stdout. Bad input — a URL that is not ``nats://HOST:PORT``, no server reachable
within the deadline, no such stream — is one line on stderr and a non-zero exit, never a
traceback. The password of ``--user`` never comes from the command line (where other
users' ``ps`` would show it): :data:`ENV_PASSWORD`, or the vault under ``nats/<user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from app.nats.store_consumer import Progress, StoreConfig, StoreConsumer, StoreSetupError
from app.nats.store_rules import progress_line, summary_line
from app.nats.urls import ENV_PASSWORD, BadInputError, parse_servers
from app.security.secret import Secret
from app.server.server import default_db_path
from app.server.store import TickStore

EXAMPLES = f"""examples:
  trading-client store --from nats://127.0.0.1:4222
  trading-client store --from nats://10.0.0.1:4222,nats://10.0.0.2:4222 --db ticks.sqlite
  trading-client store --from nats://127.0.0.1:4222 --until-idle     (exit once caught up)
  trading-client store --from nats://host:4222 --user store
      (the password: ${ENV_PASSWORD}, or the vault: trading-client credentials set nats/store)
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be more than 0 seconds")
    return value


def add_store_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "store",
        help="store the ticks of a NATS JetStream stream into a backend database",
        description="A durable pull consumer of the tick stream writing into the same SQLite "
        "storage as the reference bridge, each block exactly once; several instances with "
        "one --durable share the work.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--from", dest="servers", required=True, metavar="URLS", help="nats://HOST:PORT[,…]"
    )
    parser.add_argument(
        "--db", type=Path, default=None, metavar="FILE", help=f"default: {default_db_path()}"
    )
    parser.add_argument("--stream", default="TICKS", help="the tick stream (default TICKS)")
    parser.add_argument("--durable", default="store", help="durable consumer (default store)")
    parser.add_argument(
        "--batch", type=_positive, default=256, metavar="N", help="messages per fetch (256)"
    )
    parser.add_argument(
        "--ack-wait",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="seconds before a fetched, unacked message is redelivered (30)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="give up when no server answers within S seconds (10)",
    )
    parser.add_argument(
        "--until-idle", action="store_true", help="exit 0 once the stream is caught up"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--user", default=None, help=f"NATS user (password: ${ENV_PASSWORD} or vault nats/USER)"
    )
    parser.add_argument(
        "--synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="SQLite durability of a commit before the ack (FULL survives power loss)",
    )
    return parser


def _password(user: str) -> Secret:
    """``--user``'s password: the environment (taken out of it), else the vault."""
    value = os.environ.pop(ENV_PASSWORD, None)
    if value is not None:
        return Secret(value)
    from app.config.schema import SecurityConfig  # noqa: PLC0415 - only with --user
    from app.security.logins import (  # noqa: PLC0415 - as above
        open_configured_vault,
        prompt_master_password,
    )

    secret = open_configured_vault(SecurityConfig(), prompt_master_password).get(f"nats/{user}")
    if secret is None:
        raise BadInputError(
            f"no password for NATS user {user!r}: set ${ENV_PASSWORD} or run "
            f"'trading-client credentials set nats/{user}'"
        )
    return secret


def _print_progress(progress: Progress) -> None:
    print(progress_line(progress.tally, progress.rate, progress.lag), file=sys.stderr, flush=True)


async def _consume(consumer: StoreConsumer, until_idle: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    await consumer.run(until_idle=until_idle, stop=stop)


def run_store(args: argparse.Namespace) -> int:
    try:
        servers = parse_servers(args.servers)
        password = _password(args.user) if args.user else None
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    db: Path = args.db or default_db_path()
    if not db.parent.is_dir():
        print(f"error: --db {db}: folder {db.parent} does not exist", file=sys.stderr)
        return 2
    config = StoreConfig(
        servers=servers,
        db=db,
        stream=args.stream,
        durable=args.durable,
        batch=args.batch,
        ack_wait_s=args.ack_wait,
        connect_timeout_s=args.connect_timeout,
        synchronous=args.synchronous,
        user=args.user,
        password=password,
    )
    started = time.monotonic()
    try:
        with TickStore(db, synchronous=args.synchronous) as store:
            consumer = StoreConsumer(
                config, store, on_progress=None if args.quiet else _print_progress
            )
            asyncio.run(_consume(consumer, args.until_idle))
    except StoreSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:
        print(f"error: the database {db} failed: {exc}", file=sys.stderr)
        return 1
    print(summary_line(consumer.tally, time.monotonic() - started, consumer.lag), flush=True)
    return 0
