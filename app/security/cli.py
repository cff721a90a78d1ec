"""``trading-client credentials``: store, delete and list saved logins.

``app/cli.py`` adds the subcommand with :func:`add_credentials_parser` and dispatches to
:func:`run_credentials`; ``python -m app.security.cli credentials …`` runs it standalone.

A secret is never taken from the command line: the arguments of a process are readable
by every local user (``ps``, Task Manager) and end up in shell history. It is typed at a
hidden prompt when stdin is a terminal, otherwise read as one line from stdin. The master
password of the file vault comes the same way (first line, before the secret), or from
the ``TRADING_CLIENT_MASTER_PASSWORD`` environment variable for automation. That variable
is a risk to weigh: the environment of a process is readable by the same user's other
processes (``/proc/<pid>/environ``), is inherited by child processes (this command removes
it from its own environment once read), and shows up in CI logs or shell history if set
on the command line. Prefer piping it from a secret store.

Exit status: 0 done; 1 the store failed or the credential does not exist; 2 wrong master
password, damaged vault file or bad input — always one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Final, NoReturn, TextIO, TypeVar

from app.security.audit import AuditLog
from app.security.redact import escape_controls, install_redaction, register_secret
from app.security.secret import Secret
from app.security.vault import (
    MIN_MASTER_PASSWORD_LENGTH,
    FileVault,
    Vault,
    VaultError,
    VaultLocked,
    default_vault_path,
    open_vault,
    validate_name,
)

#: Environment variable that may carry the file vault's master password (see above).
ENV_MASTER_PASSWORD: Final = "TRADING_CLIENT_MASTER_PASSWORD"
_P = TypeVar("_P", bound=argparse.ArgumentParser)
#: More than this on stdin is not a password: refuse instead of reading forever.
_MAX_STDIN: Final = 64 * 1024

EXAMPLES = f"""examples:
  trading-client credentials set mt5/FTMO-Demo          (asks for the password)
  trading-client credentials list
  trading-client credentials delete gateway/alice
  printf '%s\\n' "$PASSWORD" | trading-client credentials set gateway/alice
  trading-client credentials --vault-file ~/creds.vault set mt5/Live
      (file vault; without a terminal: master password on stdin line 1, the secret on
      line 2, or the master password in {ENV_MASTER_PASSWORD})
"""

_ACTION: Final = {
    "set": "credential.write",
    "delete": "credential.delete",
    "list": "credential.list",
}


class InputError(Exception):
    """The user's input cannot be used (exit status 2); the text never holds a secret."""


class _UsageError(InputError):
    """Bad command line: printed with the usage line, like argparse does."""


class SecretSafeArgumentParser(argparse.ArgumentParser):
    """An argument parser whose error messages do not repeat what was typed.

    argparse quotes unrecognised arguments and invalid choices back, and a mistyped
    command line is exactly where a user puts a password. ``app/cli.py`` should use this
    class for its top-level parser: unrecognised arguments are reported by the top-level
    parser, whichever subcommand they were meant for.
    """

    _ECHOES: Final = (
        (re.compile(r"unrecognized arguments: .*", re.S), "unrecognized arguments"),
        (re.compile(r"invalid choice: .*? \(choose from", re.S), "invalid choice (choose from"),
        (re.compile(r"ambiguous option: .*? could match", re.S), "ambiguous option: could match"),
        (re.compile(r"(invalid \S+ value): .*", re.S), r"\1"),
    )

    def error(self, message: str) -> NoReturn:
        for pattern, replacement in self._ECHOES:
            message = pattern.sub(replacement, message)
        super().error(f"{message} (arguments are not repeated: they might hold a secret)")


def _add_vault_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options on ``credentials`` and again on each action, so that both
    ``credentials --no-keyring list`` and ``credentials list --no-keyring`` work."""
    parser.add_argument(
        "--vault-file",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS if suppress else None,
        help="use this encrypted vault file instead of the system keyring",
    )
    parser.add_argument(
        "--no-keyring",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help=f"use the encrypted vault file (default {default_vault_path()})",
    )


def add_credentials_parser(subparsers: argparse._SubParsersAction[_P]) -> _P:
    """Add ``credentials`` to a command line (``app/cli.py``'s or :func:`main`'s)."""
    parser = subparsers.add_parser(
        "credentials",
        help="store, delete and list saved logins (MT5 accounts, gateway users)",
        description="Keep logins in the system keyring, or in an encrypted file when no "
        "keyring is usable. Secrets are asked for, never taken as arguments.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_vault_options(parser, suppress=False)
    actions = parser.add_subparsers(
        dest="credentials_command",
        metavar="ACTION",
        required=True,
        parser_class=SecretSafeArgumentParser,
    )
    set_ = actions.add_parser(
        "set",
        help="store a secret: typed at a hidden prompt, or one line from stdin",
        description="Store the secret for NAME. It is typed at a hidden prompt, or read "
        "as one line from stdin when that is not a terminal; never given as an argument.",
        epilog="examples:\n  trading-client credentials set mt5/Demo\n"
        "  trading-client credentials set gateway/alice --no-keyring\n"
        "  printf '%s\\n' \"$PASSWORD\" | trading-client credentials set mt5/Live\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_vault_options(set_, suppress=True)
    set_.add_argument(
        "name",
        metavar="NAME",
        help="mt5/<terminal name>, gateway/<username>, nats/<user> or nats/token",
    )
    # Swallows whatever follows NAME, so that ``set NAME SECRET`` is refused here
    # without the secret being echoed by an "unrecognized arguments" error.
    set_.add_argument("trailing", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    set_.set_defaults(credentials_usage=set_.format_usage())
    delete = actions.add_parser(
        "delete",
        help="remove a stored secret",
        epilog="examples:\n  trading-client credentials delete mt5/Demo\n"
        "  trading-client credentials delete gateway/alice --vault-file creds.vault\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_vault_options(delete, suppress=True)
    delete.add_argument("name", metavar="NAME")
    listing = actions.add_parser(
        "list",
        help="print the stored names (never the secrets)",
        epilog="examples:\n  trading-client credentials list\n"
        "  trading-client credentials list --no-keyring\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_vault_options(listing, suppress=True)
    return parser


# ---------------------------------------------------------------------------- input
#: The master password taken from this process's environment (at most one).
_TAKEN_FROM_ENV: list[Secret] = []


def take_env_master_password(env: MutableMapping[str, str] | None = None) -> Secret | None:
    """The master password from :data:`ENV_MASTER_PASSWORD`, removed from ``env``.

    ``main`` calls this before anything else, so that no child process (workers, the
    resource tracker, the backend) inherits the password in its environment; it is kept
    in memory (registered for redaction) for whoever asks later. ``env`` other than
    ``os.environ`` (tests) is read without that memory.
    """
    own = env is None or env is os.environ
    target = os.environ if env is None else env
    value = target.pop(ENV_MASTER_PASSWORD, "")
    if value:
        secret = Secret(value)
        register_secret(secret)
        if not own:
            return secret
        _TAKEN_FROM_ENV[:] = [secret]
    if own and _TAKEN_FROM_ENV:
        return _TAKEN_FROM_ENV[0]
    return None


class _Prompter:
    """Where secrets come from: hidden prompts on a terminal, else lines of stdin."""

    def __init__(self, stdin: TextIO, env: MutableMapping[str, str]) -> None:
        self._stdin = stdin
        self._env = env
        try:
            self._tty = stdin.isatty()
        except (ValueError, OSError):  # closed or detached stdin
            self._tty = False
        self._lines: list[str] | None = None

    def ask(self, what: str, *, confirm: bool = False) -> Secret:
        if self._tty:
            value = self._prompt(what)
            if confirm and self._prompt(f"{what} (again)") != value:
                raise InputError(f"the two entries of the {what} differ")
        else:
            value = self._next_line(what)
        if not value:
            raise InputError(f"the {what} is empty")
        return Secret(value)

    def master_password(self, path: Path) -> Secret:
        from_env = take_env_master_password(self._env)
        if from_env is not None:
            return from_env
        creating = not path.exists()
        what = f"master password for {'the new vault ' if creating else ''}{path}"
        password = self.ask(what, confirm=creating)
        if creating and len(password.reveal()) < MIN_MASTER_PASSWORD_LENGTH:
            raise InputError(
                f"a new vault's master password must be at least "
                f"{MIN_MASTER_PASSWORD_LENGTH} characters"
            )
        return password

    def finish(self) -> None:
        """Refuse leftover stdin lines: they mean the caller expected another order."""
        if self._lines and any(self._lines):
            raise InputError(
                "stdin has more lines than expected (the master password of a vault file "
                "comes first, then the secret; a keyring needs no master password)"
            )

    def _prompt(self, what: str) -> str:
        try:
            return getpass.getpass(f"{what[:1].upper()}{what[1:]}: ")
        except EOFError:
            raise InputError(f"no {what} was typed") from None

    def _next_line(self, what: str) -> str:
        if self._lines is None:
            try:
                text = self._stdin.read(_MAX_STDIN + 1)
            except UnicodeDecodeError:
                raise InputError("stdin is not valid UTF-8") from None
            if len(text) > _MAX_STDIN:
                raise InputError("stdin is too long to hold a password")
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            self._lines = [line.removesuffix("\r") for line in lines]
        if not self._lines:
            raise InputError(f"expected the {what} as a line on stdin")
        return self._lines.pop(0)


# ---------------------------------------------------------------------------- commands
def _parse_trailing(args: argparse.Namespace) -> None:
    """Accept vault options after NAME; anything else is refused without repeating it."""
    words = iter(getattr(args, "trailing", None) or [])
    for word in words:
        if word == "--no-keyring":
            args.no_keyring = True
        elif word == "--vault-file" and (value := next(words, None)) is not None:
            args.vault_file = Path(value)
        elif word.startswith("--vault-file="):
            args.vault_file = Path(word.partition("=")[2])
        else:
            count = len(args.trailing)
            raise _UsageError(
                f"'credentials set' takes only NAME; the secret is typed at a hidden "
                f"prompt or read from stdin, never given as an argument ({count} extra "
                f"argument{'s' if count != 1 else ''}, not repeated here)"
            )


def _open(args: argparse.Namespace, prompter: _Prompter, audit: AuditLog) -> Vault:
    force_file = args.vault_file is not None or bool(args.no_keyring)
    path: Path = args.vault_file if args.vault_file is not None else default_vault_path()
    vault = open_vault(
        prefer_keyring=not force_file,
        file_path=path,
        master_password_provider=lambda: prompter.master_password(path),
        audit=audit,
    )
    if isinstance(vault, FileVault):
        vault.unlock()  # a wrong master password is reported before the secret is asked
    return vault


def run_credentials(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    env: MutableMapping[str, str] | None = None,
    audit: AuditLog | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one ``credentials`` action; returns the exit status.

    Every run leaves one audit record: the vault records the operations it performs, and
    a run that fails before reaching the vault is recorded here.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    audit = audit if audit is not None else AuditLog()
    command: str = args.credentials_command
    action = _ACTION[command]
    subject = "*" if command == "list" else "(invalid name)"
    prompter = _Prompter(
        stdin if stdin is not None else sys.stdin, env if env is not None else os.environ
    )
    reached_vault = False
    try:
        if command in ("set", "delete"):
            subject = validate_name(args.name)
        if command == "set":
            _parse_trailing(args)
        vault = _open(args, prompter, audit)
        if command == "set":
            secret = prompter.ask(f"secret for {subject}", confirm=True)
            prompter.finish()
            reached_vault = True
            vault.set(subject, secret)
            print(f"stored {subject} in {vault.location}", file=out)
        elif command == "delete":
            prompter.finish()
            reached_vault = True
            if not vault.delete(subject):
                print(f"error: no credential named {subject} in {vault.location}", file=err)
                return 1
            print(f"deleted {subject} from {vault.location}", file=out)
        else:
            prompter.finish()
            reached_vault = True
            names = vault.names()
            for name in names:
                print(name, file=out)
            if not names:
                print(f"(no credentials in {vault.location})", file=err)
        return 0
    except KeyboardInterrupt:
        _record(audit, False, action, subject, "interrupted")  # the vault records no interrupt
        print(file=err)
        return 130
    except (InputError, ValueError, VaultError) as exc:
        status = 1 if isinstance(exc, VaultError) and not isinstance(exc, VaultLocked) else 2
        _record(audit, reached_vault, action, subject, str(exc))
        if isinstance(exc, _UsageError):
            print(getattr(args, "credentials_usage", "").rstrip(), file=err)
        print(f"error: {escape_controls(str(exc))}", file=err)
        return status


def _record(audit: AuditLog, reached_vault: bool, action: str, subject: str, why: str) -> None:
    if not reached_vault:  # else the vault recorded the failure itself
        audit.record(action, subject, "failure", reason=why)


def main(argv: Sequence[str] | None = None) -> int:
    parser = SecretSafeArgumentParser(prog="trading-client")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    add_credentials_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_redaction(excepthook=True)
    return run_credentials(args)


if __name__ == "__main__":
    sys.exit(main())
