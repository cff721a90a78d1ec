"""``trading-client terminal serve``: serve the simulated terminal over RPyC classic.

``app/cli.py`` adds the subcommand with :func:`add_terminal_parser` and dispatches to
:func:`run_terminal`. Values are checked here rather than by argparse types, so that a
bad one is one line (argparse prints its usage block too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.ports import is_loopback
from app.servertime import parse_server_time_zone
from app.terminal.remote import DEFAULT_PORT, REMOTE_CODE_WARNING

EXAMPLES = """examples:
  trading-client terminal serve
  trading-client terminal serve --port 18813 --seed 7 --rate 500
  trading-client terminal serve --server-time-zone Europe/Athens
then, in the settings: "terminals": [{"kind": "remote", "host": "127.0.0.1", "port": 18812}]
"""


def add_terminal_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "terminal",
        help="serve the simulated terminal as a remote MetaTrader5 module (RPyC)",
        description="Terminal tools.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="terminal_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve the simulated terminal over RPyC classic, like mt5linux's server",
        description="Serve the simulated terminal as the MetaTrader5 module over RPyC "
        "classic, the protocol of the mt5linux server a real terminal runs under Wine: a "
        "terminal of kind 'remote' connects to it. RPyC classic lets anyone who can "
        "connect run code as you: it listens on this machine only unless told otherwise.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port",
        default=str(DEFAULT_PORT),
        metavar="PORT",
        help=f"port (default {DEFAULT_PORT}, mt5linux's; 0 = any free port, printed)",
    )
    serve.add_argument(
        "--allow-remote-code",
        action="store_true",
        help="listen on an address other machines can reach (anyone there can run code as "
        "you; prefer an SSH tunnel)",
    )
    serve.add_argument("--seed", default="42", metavar="N", help="market seed (default 42)")
    serve.add_argument(
        "--rate", default=None, metavar="N", help="ticks per second per symbol (1..1000000)"
    )
    serve.add_argument(
        "--server-time-zone",
        default=None,
        metavar="Z",
        help="zone the ticks are stamped in: ny-close (default), an IANA name or +HH:MM",
    )
    serve.add_argument(
        "--market-hours",
        choices=("sessions", "always"),
        default="sessions",
        help="'sessions' (default): closed at the weekend and in gold's daily break, like "
        "a broker and like the built-in simulated terminal; 'always': every symbol ticks",
    )
    serve.add_argument(
        "--control-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON fault control file of the simulated terminal (tests, demos)",
    )
    return parser


class _BadValueError(ValueError):
    pass


def _int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _BadValueError(f"{what} must be a whole number") from None
    if not low <= value <= high:
        raise _BadValueError(f"{what} {value} is not in {low}..{high}")
    return value


def run_terminal(args: argparse.Namespace) -> int:
    # Imported here: the server pulls in the simulated market and rpyc.
    from app.sessions import SessionBook  # noqa: PLC0415
    from app.terminal.market import DEFAULT_PROFILES  # noqa: PLC0415
    from app.terminal.serve import TerminalServer, simulated_module  # noqa: PLC0415
    from app.terminal.simulated import SimulatedTerminal  # noqa: PLC0415
    from app.terminal.spec import TerminalSpec  # noqa: PLC0415

    try:
        port = _int(args.port, "--port", 0, 65535)
        seed = _int(args.seed, "--seed", -(2**63), 2**63 - 1)
        rate = None if args.rate is None else _int(args.rate, "--rate", 1, 1_000_000)
        zone = None
        if args.server_time_zone is not None:
            try:
                zone = parse_server_time_zone(args.server_time_zone).key
            except ValueError as exc:
                raise _BadValueError(f"--server-time-zone: {exc}") from None
        if not is_loopback(args.host) and not args.allow_remote_code:
            raise _BadValueError(
                f"--host {args.host} is reachable from other machines, and anyone who can "
                f"connect could run code as you; tunnel over SSH instead (ssh -L "
                f"{port or DEFAULT_PORT}:127.0.0.1:{port or DEFAULT_PORT} THIS-HOST) or "
                "add --allow-remote-code"
            )
    except _BadValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rates = () if rate is None else tuple((sym, float(rate)) for sym in DEFAULT_PROFILES)
    spec = TerminalSpec(
        seed=seed,
        rates=rates,
        control_file=args.control_file,
        server_time_zone=zone,
        sessions=SessionBook.default() if args.market_hours == "sessions" else None,
    )
    terminal = SimulatedTerminal.from_spec(spec)
    try:
        server = TerminalServer(args.host, port, simulated_module(terminal))
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1

    def announce(s: TerminalServer) -> None:
        print(
            f"serving the simulated terminal on {s.host}:{s.port} ({REMOTE_CODE_WARNING})",
            flush=True,
        )

    server.serve_until_signal(announce)
    return 0
