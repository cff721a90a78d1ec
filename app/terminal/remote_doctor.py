"""What ``trading-client doctor`` says about each remote terminal (kind "remote").

Kept apart from :mod:`app.doctor_terminals` (which wraps these lines in ``Check``) so that
the remote terminal's knowledge stays next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from app.doctor_check import Level
from app.ports import is_loopback
from app.terminal.remote import REMOTE_CODE_WARNING, RemoteTerminal

#: (level, what, detail, fix), the fields of ``app.doctor_check.Check``.
Line = tuple[Level, str, str, str]

START_SERVER = (
    "start the server next to the terminal: under Wine, 'wine python -m mt5linux' "
    "(mt5linux >= 1.0, rpyc 6) or mt5linux's mt5server.exe; to try the client without "
    "one, 'trading-client terminal serve'"
)


class RemoteSettings(Protocol):
    """The fields of a terminal's settings the checks read (``TerminalConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def allow_remote_code(self) -> bool: ...


def remote_terminal_lines(terminals: Iterable[RemoteSettings], timeout_s: float) -> list[Line]:
    """Per remote terminal: the code-execution warning, and whether its server answers."""
    lines: list[Line] = []
    for t in terminals:
        if t.kind != "remote":
            continue
        what = f"terminal {t.name}"
        where = f"{t.host}:{t.port}"
        if is_loopback(t.host):
            lines.append(
                (
                    "warn",
                    what,
                    f"remote terminal at {where} ({REMOTE_CODE_WARNING}: every local user "
                    "and program that reaches the port)",
                    "nothing to do on a single-user machine; keep the server on 127.0.0.1 "
                    "and reach other machines through an SSH tunnel",
                )
            )
        else:
            lines.append(
                (
                    "warn",
                    what,
                    f"{where} is another machine and allow_remote_code is on: anyone who "
                    "reaches that port runs code as the server's user, and the traffic is "
                    "not encrypted",
                    f"tunnel over SSH (ssh -L {t.port}:127.0.0.1:{t.port} {t.host}) and "
                    "set host to 127.0.0.1, allow_remote_code to false",
                )
            )
        terminal = RemoteTerminal(t.host, t.port, allow_remote_code=t.allow_remote_code)
        reachable, version = terminal.probe(timeout_s)
        if not reachable:
            lines.append(
                (
                    "fail",
                    what,
                    f"no MetaTrader5 server at {where}: {terminal.last_error()[1]}",
                    START_SERVER,
                )
            )
        elif version is None:
            lines.append(
                (
                    "ok",
                    what,
                    f"server at {where} answers; its terminal is not initialised yet "
                    f"({terminal.last_error()[1]})",
                    "",
                )
            )
        else:
            lines.append(
                ("ok", what, f"server at {where} answers: MetaTrader5 terminal {version}", "")
            )
    return lines
