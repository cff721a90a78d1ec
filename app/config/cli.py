"""``trading-client config …``: look at, check and restore the settings file.

``add_config_parser`` and ``run_config`` are what ``app/cli.py`` wires in;
``python -m app.config.cli ACTION`` runs the same actions on their own.

Exit codes: 0 done, 2 the settings (or a backup asked for) cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from app.config.load import ConfigError, read_settings_file
from app.config.store import (
    ConfigStore,
    InvalidConfig,
    check_config,
    config_json,
    default_config_path,
    json_schema_bytes,
    write_json_schema,
)
from app.security.redact import escape_controls

EXAMPLES = """examples:
  trading-client config show
  trading-client config validate my-config.json
  trading-client config backups
  trading-client config rollback 0
"""


_RAW = argparse.RawDescriptionHelpFormatter


def _examples(*lines: str) -> str:
    """An examples epilog: each action's ``--help`` shows how it is typed, not only the
    ``config --help`` overview."""
    return "examples:\n" + "".join(f"  trading-client config {line}\n" for line in lines)


def _config_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: accepted before and after the action without one overwriting the other
    # with its default (an argparse quirk with options repeated on sub-parsers).
    parser.add_argument(
        "--config",
        dest="config_file",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"settings file (default: {default_config_path()})",
    )


def _add_actions(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    common = argparse.ArgumentParser(add_help=False)
    _config_option(common)
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    actions.add_parser(
        "show",
        parents=[common],
        help="print the settings the client would run with (JSON)",
        epilog=_examples("show", "show --config my-config.json > copy.json"),
        formatter_class=_RAW,
    )
    validate = actions.add_parser(
        "validate",
        parents=[common],
        help="check a settings file: 'ok' or one line per problem",
        epilog=_examples("validate", "validate my-config.json"),
        formatter_class=_RAW,
    )
    validate.add_argument(
        "file", nargs="?", type=Path, help="file to check (default: the settings file)"
    )
    actions.add_parser(
        "path",
        parents=[common],
        help="print where the settings file is",
        epilog=_examples("path", 'path  # then: "$EDITOR" "$(trading-client config path)"'),
        formatter_class=_RAW,
    )
    actions.add_parser(
        "backups",
        parents=[common],
        help="list kept earlier versions",
        epilog=_examples("backups", "backups --config my-config.json"),
        formatter_class=_RAW,
    )
    rollback = actions.add_parser(
        "rollback",
        parents=[common],
        help="restore backup N (0 = newest, see 'backups')",
        epilog=_examples("backups", "rollback 0"),
        formatter_class=_RAW,
    )
    rollback.add_argument("n", type=int, metavar="N", help="index from 'backups'")
    sync = actions.add_parser(
        "sync",
        parents=[common],
        help="pull or push the settings with the API gateway; a conflict shows both sides",
        epilog=_examples("sync", "sync --take remote"),
        formatter_class=_RAW,
    )
    sync.add_argument(
        "--take",
        choices=["local", "remote"],
        help="settle a conflict with this side ('remote' also takes the gateway's changes of "
        "where data goes, refused otherwise)",
    )
    schema = actions.add_parser(
        "schema",
        parents=[common],
        help="write the JSON Schema of the settings",
        epilog=_examples("schema", "schema client-config.schema.json"),
        formatter_class=_RAW,
    )
    schema.add_argument("file", nargs="?", type=Path, help="output file (default: stdout)")


def add_config_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``config ACTION`` to a ``trading-client`` command line."""
    parser = subparsers.add_parser(
        "config",
        help="show, check, back up and restore the settings file",
        description="Show, check, back up and restore the settings file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_actions(parser)
    return parser


def run_config(args: argparse.Namespace) -> int:
    """Run the parsed ``config`` action; messages on stdout, errors on stderr."""
    path: Path = getattr(args, "config_file", None) or default_config_path()
    store = ConfigStore(path)
    try:
        match args.config_command:
            case "show":
                return _show(store)
            case "validate":
                return _validate(args.file or path)
            case "path":
                print(path)
                return 0
            case "backups":
                return _backups(store)
            case "rollback":
                return _rollback(store, args.n)
            case "schema":
                return _schema(args.file)
            case "sync":
                return _sync(store, args.take)
            case other:
                raise ValueError(f"unknown config action {other!r}")
    except ConfigError as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return 2


def _sync(store: ConfigStore, take: Literal["local", "remote"] | None) -> int:
    # Imported here: the other actions must not pay for httpx and the vault.
    from app.config.gateway_sync import describe, exit_code, sync_with_gateway  # noqa: PLC0415
    from app.security.logins import MissingCredentialError  # noqa: PLC0415
    from app.security.vault import VaultError  # noqa: PLC0415

    try:
        result = asyncio.run(sync_with_gateway(store, take))
    except (MissingCredentialError, VaultError) as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr)
        return 2
    for line in describe(result):
        print(line)
    return exit_code(result)


def _show(store: ConfigStore) -> int:
    # repair=False: showing must not rename or write files.
    result = store.load(repair=False)
    for warning in result.warnings:
        print(f"warning: {escape_controls(warning)}", file=sys.stderr)
    sys.stdout.write(config_json(result.config).decode())
    return 0


def _validate(file: Path) -> int:
    try:
        data = read_settings_file(file)
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror or exc}")
        return 2
    try:
        check_config(data, str(file))
    except InvalidConfig as exc:
        for problem in exc.problems:
            print(f"{file}: {problem}")
        return 2
    print("ok")
    return 0


def _backups(store: ConfigStore) -> int:
    kept = store.backups()
    if not kept:
        print(f"no backups in {store.backup_dir}", file=sys.stderr)
        return 0
    for i, backup in enumerate(kept):
        when = backup.saved_at
        state = "valid" if backup.valid else "INVALID"
        print(
            f"{i:>3}  {when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d} UTC  "
            f"{state:<7}  {backup.path}"
        )
    return 0


def _rollback(store: ConfigStore, n: int) -> int:
    done = store.rollback(n)
    when = f"{done.backup.saved_at:%Y-%m-%d %H:%M:%S} UTC"
    if done.written:
        print(
            f"restored backup {n} ({when}) to {store.path}; "
            "the settings it replaced are now backup 0"
        )
    else:
        print(f"backup {n} ({when}) equals the current settings; nothing changed")
    return 0


def _schema(file: Path | None) -> int:
    if file is None:
        sys.stdout.write(json_schema_bytes().decode())
    else:
        write_json_schema(file)
        print(f"wrote {file}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.config.cli ACTION``: the ``config`` actions without the main CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m app.config.cli",
        description="Show, check, back up and restore the settings file.",
    )
    _add_actions(parser)
    return run_config(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
