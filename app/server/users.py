"""The reference backend's users: who may connect, and which client ids each may touch.

One JSON file next to the backend's database (``<db>.users.json``, mode 0600, replaced
atomically), so that ``trading-client backend users add`` works while the backend runs:
the file is re-read when it changes. Passwords are stored as scrypt hashes with a random
salt and their cost parameters, so that a copied file does not hand out the passwords
and the cost can be raised later without breaking stored hashes.

Authorization is by client id: a user lists the client ids it may write and read. There
is no wildcard; ``admin`` is the one explicit way to reach every client id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.config.store import atomic_write

#: scrypt cost: ~16 MiB and tens of milliseconds a guess.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_MAX_FILE_BYTES = 4 * 2**20
#: A user name is also the part of a ``user:password`` credential before the colon.
MAX_NAME = 64


class UsersError(ValueError):
    """A users file or a user change that cannot be accepted; the text says why."""


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): everything needed to verify it later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, dklen=_DKLEN, maxmem=2**26
    )
    b64 = base64.b64encode
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against :func:`hash_password`'s output."""
    try:
        kind, n, r, p, salt, digest = encoded.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=2**26,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


#: Verified against when a user does not exist, so that timing does not tell.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for, once authenticated."""

    name: str
    clients: frozenset[str]
    admin: bool = False

    def may(self, client_id: str) -> bool:
        """Whether this principal may write and read ``client_id``'s sessions and settings."""
        return self.admin or client_id in self.clients


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: str
    clients: tuple[str, ...]
    admin: bool = False

    @property
    def principal(self) -> Principal:
        return Principal(self.name, frozenset(self.clients), self.admin)


def users_path(db_path: Path) -> Path:
    """The users file of the backend whose database is ``db_path``."""
    return db_path.with_name(db_path.name + ".users.json")


def check_name(name: str) -> str:
    """A user name: printable, no ``:`` (it ends the name in ``user:password``), and no
    leading ``@`` (reserved for in-memory keys such as the embedded backend's)."""
    if (
        not name
        or len(name) > MAX_NAME
        or ":" in name
        or name.startswith("@")
        or not name.isprintable()
        or name != name.strip()
    ):
        raise UsersError(
            f"a user name is 1..{MAX_NAME} printable characters, without ':', a leading '@' "
            "or outer spaces"
        )
    return name


def _user(name: str, doc: Any) -> User:
    if not isinstance(doc, dict):
        raise UsersError(f"user {name!r}: not an object")
    pw, clients, admin = doc.get("password"), doc.get("clients", []), doc.get("admin", False)
    if not isinstance(pw, str) or not pw.startswith("scrypt$"):
        raise UsersError(f"user {name!r}: 'password' is not an scrypt hash")
    if not isinstance(clients, list) or not all(isinstance(c, str) and c for c in clients):
        raise UsersError(f"user {name!r}: 'clients' must be a list of client ids")
    if not isinstance(admin, bool):
        raise UsersError(f"user {name!r}: 'admin' must be true or false")
    return User(check_name(name), pw, tuple(clients), admin)


class UserStore:
    """The users file; re-read whenever it changed on disk (a cheap ``stat`` per lookup)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    # ------------------------------------------------------------------ reading
    def _read(self) -> dict[str, User]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._users = None, {}
            return self._users
        if not stat.S_ISREG(st.st_mode):
            raise UsersError(f"{self.path} is not a regular file")
        if st.st_size > _MAX_FILE_BYTES:
            raise UsersError(f"{self.path} is larger than {_MAX_FILE_BYTES} bytes")
        key = (st.st_mtime_ns, st.st_size)
        if key != self._seen:
            try:
                doc = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise UsersError(f"{self.path} is not valid JSON: {exc}") from None
            users = doc.get("users") if isinstance(doc, dict) else None
            if not isinstance(users, dict):
                raise UsersError(f"{self.path}: no 'users' object")
            self._users = {name: _user(name, u) for name, u in users.items()}
            self._seen = key
        return self._users

    def get(self, name: str) -> User | None:
        return self._read().get(name)

    def all(self) -> list[User]:
        return sorted(self._read().values(), key=lambda u: u.name)

    # ------------------------------------------------------------------ changing
    def _write(self, users: dict[str, User]) -> None:
        doc = {
            "version": 1,
            "users": {
                u.name: {"password": u.password_hash, "clients": list(u.clients), "admin": u.admin}
                for u in sorted(users.values(), key=lambda u: u.name)
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.chmod(self.path, 0o600)
        self._seen = None

    def add(self, name: str, password: str, clients: list[str], *, admin: bool = False) -> User:
        users = dict(self._read())
        if name in users:
            raise UsersError(f"user {name!r} exists already")
        if not password:
            raise UsersError("the password must not be empty")
        if not clients and not admin:
            raise UsersError("a user needs at least one client id (or admin)")
        user = User(check_name(name), hash_password(password), tuple(clients), admin)
        users[name] = user
        self._write(users)
        return user

    def remove(self, name: str) -> None:
        users = dict(self._read())
        if users.pop(name, None) is None:
            raise UsersError(f"no user {name!r}")
        self._write(users)

    def set_password(self, name: str, password: str) -> None:
        users = dict(self._read())
        user = users.get(name)
        if user is None:
            raise UsersError(f"no user {name!r}")
        if not password:
            raise UsersError("the password must not be empty")
        users[name] = User(name, hash_password(password), user.clients, user.admin)
        self._write(users)
