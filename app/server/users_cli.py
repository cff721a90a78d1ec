"""``trading-client backend users``: add, list, remove users and set their passwords.

A password is never an argument (it would show in ``ps`` and the shell history): it is
asked for with a hidden prompt, or read as the first line of stdin when stdin is not a
terminal (automation).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from app.server.users import UsersError, UserStore, users_path

EXAMPLES = """examples:
  trading-client backend users add alice --client desk-1 --client desk-2
  printf '%s\\n' "$PASSWORD" | trading-client backend users add bot --client desk-9
  trading-client backend users list
  trading-client backend users passwd alice
  trading-client backend users remove alice
"""


def add_users_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    users = actions.add_parser(
        "users",
        help="manage who may use the backend (bridge, gateway, hub)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    users.add_argument("--db", type=Path, default=argparse.SUPPRESS, metavar="FILE")
    ops = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def action(name: str, text: str, example: str) -> argparse.ArgumentParser:
        return ops.add_parser(
            name,
            help=text,
            epilog=f"examples:\n  trading-client backend users {example}\n",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    add = action("add", "add a user (asks for its password)", "add alice --client desk-1")
    add.add_argument("name")
    add.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="CLIENT_ID",
        help="a client id the user may write and read (repeat for more)",
    )
    add.add_argument("--admin", action="store_true", help="may use every client id")
    action("list", "list users and their client ids", "list --db /tmp/ticks.sqlite")
    action("remove", "remove a user", "remove alice").add_argument("name")
    action("passwd", "set a user's password (asks for it)", "passwd alice").add_argument("name")


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise UsersError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run_users(args: argparse.Namespace, db: Path) -> int:
    store = UserStore(users_path(db))
    try:
        if args.users_command == "list":
            for user in store.all():
                clients = "all client ids (admin)" if user.admin else ", ".join(user.clients)
                print(f"{user.name}\t{clients}")
            return 0
        if args.users_command == "remove":
            store.remove(args.name)
            print(f"user {args.name!r} removed")
            return 0
        if args.users_command == "add":
            if store.get(args.name) is not None:
                raise UsersError(f"user {args.name!r} exists already")
            store.add(args.name, _password(), list(args.client), admin=args.admin)
            print(f"user {args.name!r} added ({store.path})")
            return 0
        store.set_password(args.name, _password())
        print(f"password of {args.name!r} changed")
        return 0
    except UsersError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, EOFError, KeyboardInterrupt) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def users_hint(db: Path) -> str | None:
    """What to print at start when the backend has no users yet (None when it has)."""
    try:
        if UserStore(users_path(db)).all():
            return None
    except UsersError as exc:
        return f"warning: {exc}"
    return (
        "no backend users yet: nobody can connect. Add one with\n"
        f"  trading-client backend users add NAME --client CLIENT_ID --db {db}\n"
        "(the embedded backend the app starts by itself needs none)"
    )
