"""A vault in one AES-256-GCM file under a key derived from a master password.

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

import contextlib
import json
import logging
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.security.secret import Secret
from app.untrusted import read_regular_file

if TYPE_CHECKING:
    from app.security.audit import AuditLog


from app.security.vault.base import (
    _KDF_SCRYPT,
    _PAD_TO,
    _PREFIX,
    _TAG_SIZE,
    _V1_HEADER,
    FORMAT_VERSION,
    MAGIC,
    MIN_MASTER_PASSWORD_LENGTH,
    WRONG_PASSWORD,
    Vault,
    VaultFormatError,
    VaultLocked,
    VaultUnavailable,
)

_log = logging.getLogger(__name__)


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
#: Largest vault file read (a few hundred secrets take a few KB).
MAX_VAULT_BYTES: Final = 16 * 2**20


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
            # A regular file of a sane size, owner-only (made so, or refused): a FIFO or
            # /dev/zero must not hang or exhaust the client, and a secret file other
            # users can read is not used as if nothing were wrong.
            return read_regular_file(self.path, MAX_VAULT_BYTES, private=True)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultUnavailable(
                f"cannot read the vault file {self.path}: {exc.strerror or exc}"
            ) from None

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
