"""Where the client keeps broker logins and backend credentials.

Two backends behind one interface, :class:`Vault`:

* :class:`KeyringVault` — the operating system's credential store through ``keyring``
  (Windows Credential Manager, protected by DPAPI with the user's logon; macOS Keychain;
  Secret Service on Linux desktops). Preferred: the OS guards the key, nobody has to
  remember another password. Keyring cannot list entries, so the vault keeps an index of
  names under one fixed entry of the same service.
* :class:`FileVault` — one file encrypted with AES-256-GCM under a key derived from a
  master password with scrypt, for machines without a usable keyring (servers, CI,
  minimal Linux installs). The names are inside the encrypted part too.

:func:`open_vault` picks one. Names look like ``mt5/<terminal name>`` or
``gateway/<username>``: a lower-case kind, a slash, a label.

Every value leaves as a :class:`~app.security.secret.Secret` and is registered with the
log redactor first, so it cannot reach a log line even when somebody reveals it
carelessly. With an :class:`~app.security.audit.AuditLog`, every read, write, delete and
listing is recorded (names only).

Plaintext is held as briefly as Python allows: a read decrypts the file, takes out the
one value and drops the rest; nothing decrypted is cached (the derived *key* is, so that
scrypt runs once per vault object, not per read). What Python cannot do: strings and
bytes are immutable, so decrypted data cannot be wiped and lingers in freed memory until
it is reused; it may also be swapped to disk. Protection from someone who can read this
process's memory is out of scope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from app.security.secret import Secret

if TYPE_CHECKING:
    from app.security.audit import AuditLog

from app.security.vault.base import (
    FORMAT_VERSION,
    INDEX_ENTRY,
    MAGIC,
    MAX_SECRET_LENGTH,
    MIN_MASTER_PASSWORD_LENGTH,
    SERVICE,
    WRONG_PASSWORD,
    Vault,
    VaultError,
    VaultFormatError,
    VaultLocked,
    VaultUnavailable,
    validate_name,
)
from app.security.vault.encrypted_file import (
    DEFAULT_KDF,
    FileVault,
    ScryptParams,
)
from app.security.vault.os_keyring import (
    KeyringStatus,
    KeyringVault,
    keyring_status,
)

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- choice
def default_vault_path() -> Path:
    """The vault file used when the keyring is not: in the user's data folder."""
    return platformdirs.user_data_path("trading-client") / "credentials.vault"


def open_vault(
    prefer_keyring: bool = True,
    file_path: Path | None = None,
    master_password_provider: Callable[[], Secret] | None = None,
    *,
    audit: AuditLog | None = None,
    kdf: ScryptParams = DEFAULT_KDF,
) -> Vault:
    """The keyring vault if ``prefer_keyring`` and the keyring is usable, else the file
    vault at ``file_path`` (default :func:`default_vault_path`).

    ``master_password_provider`` is called only when the file vault is chosen, so a
    user with a working keyring is never asked for a password. The master password is
    not checked here (see :meth:`FileVault.unlock`).
    """
    if prefer_keyring:
        status = keyring_status()
        if status.usable:
            return KeyringVault(audit=audit, check=False)
        _log.info("not using the system keyring: %s", status.reason)
    path = file_path if file_path is not None else default_vault_path()
    if master_password_provider is None:
        raise VaultUnavailable(
            f"no usable system keyring, and no way to ask for the master password of {path}"
        )
    return FileVault(path, master_password_provider(), kdf=kdf, audit=audit)


__all__ = [
    "DEFAULT_KDF",
    "FORMAT_VERSION",
    "INDEX_ENTRY",
    "MAGIC",
    "MAX_SECRET_LENGTH",
    "MIN_MASTER_PASSWORD_LENGTH",
    "SERVICE",
    "WRONG_PASSWORD",
    "FileVault",
    "KeyringStatus",
    "KeyringVault",
    "ScryptParams",
    "Vault",
    "VaultError",
    "VaultFormatError",
    "VaultLocked",
    "VaultUnavailable",
    "default_vault_path",
    "keyring_status",
    "open_vault",
    "validate_name",
]
