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

File format, version 1 (all integers big-endian)::

    offset  size  field
    0       8     magic  b"TCVAULT\\0"
    8       2     format version (1)
    10      1     KDF id (1 = scrypt)
    11      1     log2(N)
    12      1     r
    13      1     p
    14      16    salt
    30      12    nonce (fresh for every write)
    42      ...   AES-256-GCM ciphertext, 16-byte tag at the end

Bytes 0..41 are the header and are authenticated as associated data, so changing any
byte of the file (a KDF parameter included) makes decryption fail. The plaintext is JSON
``{"secrets": {name: value}}`` padded with spaces to a multiple of 256 bytes, so the file
size tells little about how many secrets it holds or how long they are.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import os
import re
import stat
import struct
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import platformdirs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.security.redact import redact, register_secret
from app.security.secret import Secret

if TYPE_CHECKING:
    from app.security.audit import AuditLog

_log = logging.getLogger(__name__)
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


# ---------------------------------------------------------------------------- file
@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost: N = 2**log2_n, block size r, parallelism p.

    The default (N=2**17, r=8, p=1: 128 MiB, about 0.25 s) follows OWASP's current advice
    and is stronger than the required N=2**15. Lower costs (down to N=2**10) exist for
    tests only; upper limits stop a doctored file from making the client allocate
    gigabytes before the tag check can fail.
    """

    log2_n: int = 17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not 10 <= self.log2_n <= 20:
            raise ValueError(f"scrypt log2(N) must be in 10..20, not {self.log2_n}")
        if not 1 <= self.r <= 32:
            raise ValueError(f"scrypt r must be in 1..32, not {self.r}")
        if not 1 <= self.p <= 16:
            raise ValueError(f"scrypt p must be in 1..16, not {self.p}")
        if 128 * self.r * (1 << self.log2_n) > 1 << 30:
            raise ValueError("scrypt parameters need more than 1 GiB of memory")

    def derive(self, password: Secret, salt: bytes) -> bytes:
        """A 256-bit key. The password is NFC-normalised first, so the same password
        typed on systems that compose accents differently gives the same key."""
        data = unicodedata.normalize("NFC", password.reveal()).encode()
        kdf = Scrypt(salt=salt, length=32, n=1 << self.log2_n, r=self.r, p=self.p)
        return kdf.derive(data)


DEFAULT_KDF: Final = ScryptParams()


@dataclass(frozen=True, slots=True)
class _Header:
    params: ScryptParams
    salt: bytes
    nonce: bytes
    raw: bytes

    @classmethod
    def build(cls, params: ScryptParams, salt: bytes, nonce: bytes) -> _Header:
        raw = _V1_HEADER.pack(
            MAGIC, FORMAT_VERSION, _KDF_SCRYPT, params.log2_n, params.r, params.p, salt, nonce
        )
        return cls(params, salt, nonce, raw)

    @classmethod
    def parse(cls, blob: bytes, path: Path) -> tuple[_Header, bytes]:
        """The header and the ciphertext; :class:`VaultFormatError` for a foreign file."""
        if len(blob) < _PREFIX.size or blob[: len(MAGIC)] != MAGIC:
            raise VaultFormatError(f"{path} is not a trading-client vault file ({WRONG_PASSWORD})")
        _, version = _PREFIX.unpack_from(blob)
        if version != FORMAT_VERSION:
            raise VaultFormatError(
                f"{path} has vault format version {version}; this build reads version "
                f"{FORMAT_VERSION} only (written by a newer client, or damaged)"
            )
        if len(blob) < _V1_HEADER.size + _TAG_SIZE:
            raise VaultFormatError(f"{path} is truncated ({WRONG_PASSWORD})")
        _, _, kdf, log2_n, r, p, salt, nonce = _V1_HEADER.unpack_from(blob)
        if kdf != _KDF_SCRYPT:
            raise VaultFormatError(f"{path} names unknown key derivation {kdf} ({WRONG_PASSWORD})")
        try:
            params = ScryptParams(log2_n, r, p)
        except ValueError as exc:
            raise VaultFormatError(f"{path}: {exc} ({WRONG_PASSWORD})") from None
        raw = blob[: _V1_HEADER.size]
        return cls(params, salt, nonce, raw), blob[_V1_HEADER.size :]


class FileVault(Vault):
    """Secrets in one AES-256-GCM encrypted file (format in the module docstring).

    A missing file is an empty vault; it is created on the first :meth:`set`. Every
    write re-encrypts the whole file with a fresh nonce and replaces it atomically, so a
    crash leaves the old or the new vault, never half of one. A file written with other
    KDF parameters than ``kdf`` is re-keyed (new salt) on its next write.

    Within a process access is serialised; two processes writing at the same moment can
    lose one of the two changes (last writer wins), which is acceptable for a store
    written by hand a few times a year.
    """

    kind = "file"

    def __init__(
        self,
        path: Path,
        master_password: Secret,
        *,
        kdf: ScryptParams = DEFAULT_KDF,
        audit: AuditLog | None = None,
    ) -> None:
        super().__init__(audit=audit)
        if not isinstance(master_password, Secret):
            raise TypeError("the master password must be a Secret")
        self.path = Path(path)
        self._password = master_password
        self._kdf = kdf
        # (params, salt) -> key: scrypt is deliberately slow, so derive once per salt.
        self._key: tuple[ScryptParams, bytes, bytes] | None = None

    def __repr__(self) -> str:
        return f"FileVault(path={str(self.path)!r})"

    @property
    def location(self) -> str:
        return f"the encrypted file {self.path}"

    def unlock(self) -> None:
        """Check the master password now (a no-op for a missing file), so that a typo
        shows up when the vault is opened instead of at the first read."""
        with self._lock:
            self._load()

    # ------------------------------------------------------------------ primitives
    def _get(self, name: str) -> str | None:
        return self._load().get(name)

    def _set(self, name: str, value: str) -> None:
        entries = self._load()
        entries[name] = value
        self._save(entries)

    def _delete(self, name: str) -> bool:
        entries = self._load()
        if entries.pop(name, None) is None:
            return False
        self._save(entries)
        return True

    def _names(self) -> list[str]:
        return list(self._load())

    # ------------------------------------------------------------------ crypto
    def _key_for(self, params: ScryptParams, salt: bytes) -> bytes:
        if self._key is not None and self._key[0] == params and self._key[1] == salt:
            return self._key[2]
        key = params.derive(self._password, salt)
        self._key = (params, salt, key)
        return key

    def _read(self) -> bytes | None:
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultUnavailable(
                f"cannot read the vault file {self.path}: {exc.strerror or exc}"
            ) from None
        if os.name == "posix":
            with contextlib.suppress(OSError):
                if stat.S_IMODE(self.path.stat().st_mode) & 0o077:
                    _log.warning(
                        "vault file %s is readable by other users; it is made private "
                        "on the next write (chmod 600 to fix it now)",
                        self.path,
                    )
        return blob

    def _load(self) -> dict[str, str]:
        """Decrypt the whole file; an empty dict only when the file does not exist."""
        blob = self._read()
        if blob is None:
            return {}
        header, ciphertext = _Header.parse(blob, self.path)
        key = self._key_for(header.params, header.salt)
        try:
            plaintext = AESGCM(key).decrypt(header.nonce, ciphertext, header.raw)
        except InvalidTag:
            raise VaultLocked(f"{WRONG_PASSWORD} ({self.path})") from None
        try:
            document = json.loads(plaintext)
        except ValueError:
            document = None
        secrets = document.get("secrets") if isinstance(document, dict) else None
        if not isinstance(secrets, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()
        ):
            # Only reachable past the tag check: a newer inner format or a bug, not an attack.
            raise VaultFormatError(f"{self.path}: the vault's content is not understood")
        return secrets

    def _save(self, entries: dict[str, str]) -> None:
        if self._key is not None and self._key[0] == self._kdf:
            params, salt, key = self._key
        else:
            if not self.path.exists() and len(self._password.reveal()) < MIN_MASTER_PASSWORD_LENGTH:
                raise ValueError(
                    f"a master password must be at least {MIN_MASTER_PASSWORD_LENGTH} characters"
                )
            params, salt = self._kdf, os.urandom(16)
            key = self._key_for(params, salt)
        header = _Header.build(params, salt, os.urandom(12))
        plaintext = json.dumps({"secrets": entries}, ensure_ascii=False).encode()
        plaintext += b" " * (-len(plaintext) % _PAD_TO)
        blob = header.raw + AESGCM(key).encrypt(header.nonce, plaintext, header.raw)
        try:
            _atomic_write(self.path, blob)
        except OSError as exc:
            raise VaultUnavailable(
                f"cannot write the vault file {self.path}: {exc.strerror or exc}"
            ) from None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a private temp file beside ``path``, flush it to disk, then
    rename it over ``path`` (and flush the folder), so a crash never leaves half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            if os.name == "posix":
                os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if os.name == "posix":
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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
