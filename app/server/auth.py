"""One authenticator for the bridge, the gateway and the hub.

A credential is one string, in one of two forms:

* ``user:password`` — a user of the backend's users file (:mod:`app.server.users`),
  checked against its scrypt hash; throttled per user and per address;
* a token — a random secret with no ``:``: a gateway login token (in memory, expiring)
  or a key the backend was started with (the embedded backend's per-run key).

Over HTTP a token is sent as ``Authorization: Bearer <token>`` and ``user:password`` as
``Authorization: Basic``; in the bridge's hello it is ``hello.credential``.

A verified ``user:password`` is remembered (as a SHA-256 of it, in memory) against the
hash it matched, so that a client reconnecting or heartbeating costs one scrypt per
password change, not one per request; a new password or a removed user ends it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from app.clock import SYSTEM_CLOCK, Clock
from app.server.throttle import LoginThrottle
from app.server.users import DUMMY_HASH, Principal, UsersError, UserStore, verify_password

log = logging.getLogger(__name__)

#: Verified ``user:password`` digests remembered at most (bounded memory).
_MAX_VERIFIED = 4096


class AuthRefused(Exception):  # noqa: N818 - a verdict, like ApiError
    """``status`` 401 (no or wrong credential), 403 (not allowed) or 429 (locked out)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def forbidden(principal: Principal, client_id: str) -> AuthRefused:
    return AuthRefused(
        403, "forbidden", f"user {principal.name!r} may not use client id {client_id[:64]!r}"
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Token:
    principal: Principal
    expires: float  # monotonic


class Authenticator:
    def __init__(
        self,
        users: UserStore | None,
        *,
        keys: Mapping[str, Principal] | None = None,
        token_ttl: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
        throttle: LoginThrottle | None = None,
    ) -> None:
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        self.users = users
        self.token_ttl = token_ttl
        self._clock = clock
        self.throttle = throttle or LoginThrottle(clock)
        #: Keys and tokens by the SHA-256 of their text: the table holds no usable secret.
        self._keys = {_digest(k): p for k, p in (keys or {}).items()}
        self._tokens: dict[str, _Token] = {}
        self._verified: dict[str, str] = {}

    # ------------------------------------------------------------------ passwords
    async def login(self, username: str, password: str, address: str) -> Principal:
        """The user behind a correct password; throttled per user and per address."""
        wait = self.throttle.retry_after(username, address)
        if wait > 0:
            raise AuthRefused(
                429, "too_many_attempts", f"too many failed logins; retry in {wait:.0f} s", wait
            )
        users = self.users
        try:
            user = users.get(username) if users is not None else None
        except UsersError as exc:
            log.error("users file: %s", exc)
            user = None
        remembered = _digest(f"{username}\0{password}")
        if user is not None and self._verified.get(remembered) == user.password_hash:
            return user.principal
        ok = await asyncio.to_thread(
            verify_password, password, user.password_hash if user else DUMMY_HASH
        )
        if user is None or not ok:
            self.throttle.failed(username, address)
            log.warning("failed login for user %r from %s", username[:64], address)
            raise AuthRefused(401, "invalid_credentials", "wrong username or password")
        self.throttle.succeeded(username, address)
        if len(self._verified) >= _MAX_VERIFIED:
            self._verified.clear()
        self._verified[remembered] = user.password_hash
        return user.principal

    # ------------------------------------------------------------------ tokens
    def issue(self, principal: Principal) -> str:
        now = self._clock.monotonic()
        for key in [k for k, t in self._tokens.items() if t.expires <= now]:
            del self._tokens[key]
        token = secrets.token_urlsafe(32)
        self._tokens[_digest(token)] = _Token(principal, now + self.token_ttl)
        return token

    def by_token(self, token: str) -> Principal:
        digest = _digest(token)
        key = self._keys.get(digest)
        if key is not None:
            return key
        entry = self._tokens.get(digest)
        if entry is None:
            raise AuthRefused(401, "invalid_token", "unknown token")
        if entry.expires <= self._clock.monotonic():
            del self._tokens[digest]
            raise AuthRefused(401, "token_expired", "the token has expired")
        if self.users is not None and not entry.principal.name.startswith("@"):
            try:
                user = self.users.get(entry.principal.name)
            except UsersError:
                user = None
            if user is None:  # removed since the login
                del self._tokens[digest]
                raise AuthRefused(401, "invalid_token", "the token's user no longer exists")
            return user.principal
        return entry.principal

    # ------------------------------------------------------------------ credentials
    async def credential(self, credential: str | None, address: str) -> Principal:
        """The principal behind a credential string (``user:password`` or a token)."""
        if not credential:
            raise AuthRefused(401, "unauthorized", "a credential is required")
        user, sep, password = credential.partition(":")
        if sep:
            return await self.login(user, password, address)
        return self.by_token(credential)

    async def header(self, value: str | None, address: str) -> Principal:
        """The principal behind an ``Authorization`` header (Bearer or Basic)."""
        scheme, _, rest = (value or "").partition(" ")
        rest = rest.strip()
        if scheme.lower() == "bearer" and rest:
            return self.by_token(rest)
        if scheme.lower() == "basic" and rest:
            try:
                text = base64.b64decode(rest, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise AuthRefused(401, "unauthorized", "malformed Basic credentials") from None
            if ":" in text:
                return await self.credential(text, address)
        raise AuthRefused(401, "unauthorized", "a bearer token or Basic credentials are required")
