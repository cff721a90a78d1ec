"""The OS credential store as a vault (Windows Credential Manager, Keychain, Secret Service)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail

from app.security.redact import redact

if TYPE_CHECKING:
    from app.security.audit import AuditLog


from app.security.vault.base import (
    _T,
    INDEX_ENTRY,
    SERVICE,
    Vault,
    VaultUnavailable,
)

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- keyring
@dataclass(frozen=True, slots=True)
class KeyringStatus:
    """Whether the system keyring can hold our secrets, and if not, why."""

    usable: bool
    backend: str
    reason: str = ""


def _backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def keyring_status(
    backend: keyring.backend.KeyringBackend | None = None, *, probe: bool = True
) -> KeyringStatus:
    """Check the keyring backend (default: the one ``keyring`` selected).

    Unusable: the ``fail`` backend (nothing installed or reachable), a chainer with
    nothing to chain, or a backend with priority below 1 — keyring's own line for "not
    recommended", which covers the null backend and ``keyrings.alt``'s plaintext file.
    With ``probe``, one harmless read is tried, which catches a Secret Service without a
    session bus or a locked store that refuses; on some desktops it may show an unlock
    prompt, which is what using the keyring would do anyway.
    """
    try:
        kr = backend if backend is not None else keyring.get_keyring()
    except Exception as exc:
        return KeyringStatus(False, "?", f"keyring could not be initialised: {exc}")
    name = _backend_name(kr)
    if isinstance(kr, keyring.backends.fail.Keyring):
        return KeyringStatus(False, name, "no keyring backend is installed or reachable")
    effective: object = kr
    if isinstance(kr, keyring.backends.chainer.ChainerBackend):
        chain = list(kr.backends)
        if not chain:
            return KeyringStatus(False, name, "the keyring chainer has no backends")
        effective = chain[0]
    try:
        priority = float(type(effective).priority)  # type: ignore[attr-defined]
    except Exception as exc:
        return KeyringStatus(False, name, f"{_backend_name(effective)} is not available: {exc}")
    if priority < 1:
        return KeyringStatus(
            False,
            name,
            f"{_backend_name(effective)} is not a recommended backend (priority "
            f"{priority:g}); it may store secrets unprotected",
        )
    if probe:
        try:
            kr.get_password(SERVICE, INDEX_ENTRY)
        except Exception as exc:
            return KeyringStatus(False, name, f"the keyring failed: {type(exc).__name__}: {exc}")
    return KeyringStatus(True, name)


class KeyringVault(Vault):
    """Secrets in the OS credential store, one entry per name under :data:`SERVICE`.

    Raises :class:`VaultUnavailable` at construction when the keyring is unusable (see
    :func:`keyring_status`). The name index is a convenience for listing: a damaged index
    is logged and rebuilt on the next write; the secrets themselves stay readable.
    """

    kind = "keyring"

    def __init__(
        self,
        backend: keyring.backend.KeyringBackend | None = None,
        *,
        service: str = SERVICE,
        audit: AuditLog | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(audit=audit)
        self._kr = backend if backend is not None else keyring.get_keyring()
        self._service = service
        if check:
            status = keyring_status(self._kr)
            if not status.usable:
                raise VaultUnavailable(f"the system keyring cannot be used: {status.reason}")

    def __repr__(self) -> str:
        return f"KeyringVault(backend={_backend_name(self._kr)!r}, service={self._service!r})"

    @property
    def location(self) -> str:
        return f"the system keyring ({_backend_name(self._kr)})"

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except Exception as exc:
            # Redacted: the value being stored is registered, a backend might quote it.
            raise VaultUnavailable(
                redact(f"the system keyring failed to {what}: {type(exc).__name__}: {exc}")
            ) from None

    def _get(self, name: str) -> str | None:
        return self._call("read", lambda: self._kr.get_password(self._service, name))

    def _set(self, name: str, value: str) -> None:
        self._call("store", lambda: self._kr.set_password(self._service, name, value))
        index = self._index()
        if name not in index:
            self._write_index([*index, name])

    def _delete(self, name: str) -> bool:
        present = self._get(name) is not None
        if present:
            self._call("delete", lambda: self._kr.delete_password(self._service, name))
        index = self._index()
        if name in index:
            self._write_index([n for n in index if n != name])
        return present

    def _names(self) -> list[str]:
        return self._index()

    def _index(self) -> list[str]:
        raw = self._call("read", lambda: self._kr.get_password(self._service, INDEX_ENTRY))
        if raw is None:
            return []
        try:
            names = json.loads(raw)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            _log.warning("the keyring's name index is damaged; it is rebuilt on the next write")
            return []
        return names

    def _write_index(self, names: list[str]) -> None:
        text = json.dumps(sorted(set(names)))
        self._call("store", lambda: self._kr.set_password(self._service, INDEX_ENTRY, text))
