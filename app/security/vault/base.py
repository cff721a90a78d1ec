"""The vault interface, its errors, and what a credential name may be."""

from __future__ import annotations

import abc
import contextlib
import re
import struct
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, TypeVar

from app.security.redact import redact, register_secret
from app.security.secret import Secret

if TYPE_CHECKING:
    from app.security.audit import AuditLog


_T = TypeVar("_T")

#: Keyring service name under which every entry (and the index) is stored.
SERVICE: Final = "trading-client"
#: The keyring entry that holds the JSON list of names (keyring cannot enumerate).
INDEX_ENTRY: Final = "__index__"
#: A master password for a *new* vault file must be at least this long.
MIN_MASTER_PASSWORD_LENGTH: Final = 8
#: Longest secret accepted (the Windows Credential Manager stores about 1280 characters).
MAX_SECRET_LENGTH: Final = 1024

_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}/[^\x00-\x1f\x7f]{1,200}")

MAGIC: Final = b"TCVAULT\x00"
FORMAT_VERSION: Final = 1
_KDF_SCRYPT: Final = 1
_PREFIX: Final = struct.Struct(">8sH")  # magic, version
_V1_HEADER: Final = struct.Struct(">8sHBBBB16s12s")  # + kdf, log2 n, r, p, salt, nonce
_TAG_SIZE: Final = 16
_PAD_TO: Final = 256
WRONG_PASSWORD: Final = "wrong master password, or the vault file was changed"


# ---------------------------------------------------------------------------- errors
class VaultError(Exception):
    """Something about the credential store went wrong; the text is safe to show."""


class VaultUnavailable(VaultError):  # noqa: N818 -- a state, named as the brief asks
    """The store cannot be used: no usable keyring, or the storage failed (I/O)."""


class VaultLocked(VaultError):  # noqa: N818 -- a state, named as the brief asks
    """The vault file cannot be opened: wrong master password, or the file was changed
    or damaged. Deliberately one class: telling "wrong password" apart from "tampered"
    is impossible with an authenticated cipher, and a guess would mislead."""


class VaultFormatError(VaultLocked):
    """The file is not a vault this build can read (not a vault, damaged header, or a
    format version from a newer build). A subclass of :class:`VaultLocked` so that
    callers handling "cannot open the vault" catch it too."""


# ---------------------------------------------------------------------------- names
def validate_name(name: str) -> str:
    """``name`` if it is a well-formed credential name, else :class:`ValueError`.

    The message never repeats the name: a user who mixed up the arguments may have typed
    the secret where the name belongs.
    """
    label = name.partition("/")[2] if isinstance(name, str) else ""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or label != label.strip():
        raise ValueError(
            "a credential name is KIND/LABEL, e.g. mt5/<terminal name> or "
            "gateway/<username> (KIND: lower-case letters, digits, - or _; LABEL: 1-200 "
            "printable characters, no leading or trailing space)"
        )
    return name


def _check_value(secret: Secret) -> str:
    if not isinstance(secret, Secret):
        raise TypeError("store a Secret, not a plain value")
    value = secret.reveal()
    if not value:
        raise ValueError("an empty secret cannot be stored")
    if len(value) > MAX_SECRET_LENGTH:
        raise ValueError(f"a secret is at most {MAX_SECRET_LENGTH} characters")
    return value


# ---------------------------------------------------------------------------- interface
class Vault(abc.ABC):
    """Named secrets in some store. Thread-safe.

    The public methods validate names, audit and register returned secrets with the log
    redactor; backends implement the ``_``-prefixed primitives.
    """

    #: Short backend name for audit records: ``keyring`` or ``file``.
    kind: str = ""

    def __init__(self, *, audit: AuditLog | None = None) -> None:
        self.audit = audit
        self._lock = threading.RLock()

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the secrets are, for messages to the user."""

    def get(self, name: str) -> Secret | None:
        """The secret stored under ``name``, or None."""
        validate_name(name)
        with self._audited("credential.read", name) as result:
            value = self._get(name)
            if value is None:
                result.append("not_found")
                return None
            register_secret(value)
            return Secret(value)

    def set(self, name: str, secret: Secret) -> None:
        """Store ``secret`` under ``name``, replacing what was there."""
        validate_name(name)
        value = _check_value(secret)
        register_secret(value)  # before the backend can put it into an error text
        with self._audited("credential.write", name):
            self._set(name, value)

    def delete(self, name: str) -> bool:
        """Remove ``name``; False when there was nothing to remove."""
        validate_name(name)
        with self._audited("credential.delete", name) as result:
            removed = self._delete(name)
            if not removed:
                result.append("not_found")
            return removed

    def names(self) -> list[str]:
        """Stored names, sorted. Never a value (the file vault still decrypts the whole
        file to find the names, and drops the values at once)."""
        with self._audited("credential.list", "*"):
            return sorted(self._names())

    @contextlib.contextmanager
    def _audited(self, action: str, subject: str) -> Iterator[list[str]]:
        """Record the operation's outcome; the body appends ``not_found`` if it applies."""
        result: list[str] = []
        try:
            with self._lock:
                yield result
        except Exception as exc:
            if self.audit is not None:
                # Our own errors say what happened without secrets; others may not.
                known = isinstance(exc, VaultError | ValueError)
                reason = redact(str(exc)) if known else type(exc).__name__
                self.audit.record(action, subject, "failure", backend=self.kind, reason=reason)
            raise
        if self.audit is not None:
            outcome = result[-1] if result else "success"
            self.audit.record(action, subject, outcome, backend=self.kind)

    @abc.abstractmethod
    def _get(self, name: str) -> str | None: ...

    @abc.abstractmethod
    def _set(self, name: str, value: str) -> None: ...

    @abc.abstractmethod
    def _delete(self, name: str) -> bool: ...

    @abc.abstractmethod
    def _names(self) -> list[str]: ...
