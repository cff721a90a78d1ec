"""An append-only record of security-relevant events, one JSON object per line.

Why a separate file instead of the application log: the log is for debugging, gets
verbose or quiet at the user's choice and is shared in bug reports; the audit log answers
"who read, changed or deleted which credential, and when" and must be there whatever the
log level. JSON lines because they are trivially machine-read and survive a torn last line
(a crash mid-write loses one record, not the file).

Nothing secret may go in: every string is passed through the redactor, values under
secret-sounding keys (``password``, ``token``, …) are masked, and a :class:`Secret` is
refused outright: passing one is a programming error that should fail loudly in tests.

Each record is written with a single ``write`` on a file opened for appending, so lines
from several threads or processes do not interleave. Rotation renames ``audit.jsonl`` to
``audit.jsonl.1`` (and so on up to ``backups``) when the next record would pass
``max_bytes``; it is serialised within a process, but two processes rotating at the same
moment can lose a backup generation.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import platformdirs

from app.security.redact import redact
from app.security.secret import MASK, Secret

_log = logging.getLogger(__name__)

#: The actions the application records; anything else is a typo caught at once.
ACTIONS: Final = frozenset(
    {
        "credential.read",
        "credential.write",
        "credential.delete",
        "credential.list",
        "login",
        "config.change",
        "tls.pin_failure",
        # the risk engine (app/trading/risk_audit.py): every order decision, every
        # trading state change (kill switch, daily loss), real-account consent
        "trade.decision",
        "trade.state",
        "trade.consent",
    }
)
#: ``success``: done; ``failure``: refused or went wrong (``reason`` says why);
#: ``not_found``: asked for something that does not exist.
OUTCOMES: Final = frozenset({"success", "failure", "not_found"})

_SECRET_KEY: Final = re.compile(
    r"(?i)(password|passwd|passphrase|pwd|secret|token|api[_-]?key|private[_-]?key|"
    r"authorization)"
)
_RESERVED: Final = frozenset({"time", "action", "subject", "outcome", "pid"})


def default_audit_path() -> Path:
    """Where the audit log lives unless told otherwise (next to the application logs)."""
    return platformdirs.user_log_path("trading-client") / "audit.jsonl"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Appends audit records to ``path``, rotating by size. Safe to share between threads.

    ``max_bytes`` bounds one file; ``backups`` older files are kept (0: none, the full
    file is simply started afresh). The file and its folder are created private to the
    user (0600 / 0700), since names of brokers and accounts are nobody else's business.
    """

    def __init__(
        self,
        path: Path | None = None,
        max_bytes: int = 1_000_000,
        backups: int = 5,
        *,
        clock: Callable[[], datetime] = _utc_now,
        fsync: bool = True,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if backups < 0:
            raise ValueError("backups must be >= 0")
        self.path = path if path is not None else default_audit_path()
        self.max_bytes = max_bytes
        self.backups = backups
        self._clock = clock
        self._fsync = fsync
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog(path={str(self.path)!r})"

    def record(self, action: str, subject: str, outcome: str, **details: object) -> None:
        """Append one event: what was done (``action``), to what (``subject``: a
        credential name, a setting, a host), how it ended, and any extra ``details``.

        Raises :class:`TypeError` for a :class:`Secret` anywhere in the details and
        :class:`ValueError` for an unknown action or outcome. A failure to write is
        logged, not raised: losing an audit line must not stop a trader from trading.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        clashes = _RESERVED & details.keys()
        if clashes:
            raise ValueError(f"detail names clash with record fields: {sorted(clashes)}")
        entry: dict[str, object] = {
            "time": self._clock().astimezone(UTC).isoformat(timespec="milliseconds"),
            "action": action,
            "subject": _clean(subject, "subject"),
            "outcome": outcome,
            "pid": os.getpid(),
        }
        for key, value in details.items():
            entry[key] = _clean(value, key)
        line = (json.dumps(entry, ensure_ascii=False, sort_keys=False) + "\n").encode()
        with self._lock:
            try:
                self._rotate_if_needed(len(line))
                self._append(line)
            except OSError as exc:
                _log.error("cannot write the audit log %s: %s", self.path, exc.strerror or exc)

    def tls_pin_failure_hook(self) -> Callable[[str, str, str], None]:
        """A callback for ``app.security.tls`` (``on_pin_failure``): records a refused
        certificate pin as ``tls.pin_failure`` with the expected and the seen key hash."""

        def hook(peer: str, expected: str, actual: str) -> None:
            self.record("tls.pin_failure", peer, "failure", expected=expected, actual=actual)

        return hook

    # ------------------------------------------------------------------ file handling
    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            os.write(fd, line)
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self.max_bytes:
            return
        if self.backups == 0:
            self.path.unlink()
            return
        oldest = self._backup(self.backups)
        if oldest.exists():
            oldest.unlink()
        for index in range(self.backups - 1, 0, -1):
            source = self._backup(index)
            if source.exists():
                source.replace(self._backup(index + 1))
        self.path.replace(self._backup(1))

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")


def _clean(value: object, key: str) -> object:
    """``value`` made safe for the record: JSON types only, strings redacted."""
    if isinstance(value, Secret):
        raise TypeError(f"audit detail {key!r} is a Secret; secrets never go into the audit log")
    if _SECRET_KEY.search(key) and value is not None:
        _refuse_secrets(value, key)
        return MASK
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, key) for v in value]
    if isinstance(value, Path):
        return str(value)
    return redact(str(value))


def _refuse_secrets(value: object, key: str) -> None:
    """Raise even where the value would be masked: a Secret here is a bug to fix."""
    if isinstance(value, Secret):
        raise TypeError(f"audit detail {key!r} holds a Secret; secrets never go into the audit log")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _refuse_secrets(v, str(k))
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            _refuse_secrets(v, key)
