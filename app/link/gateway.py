"""Client of the API gateway (docs/protocol.md §2): login, settings, bridge statistics.

The gateway hands out short-lived bearer tokens, so the client renews them by itself
(ahead of expiry, and once more when a request is refused with 401) instead of making
every caller handle a login dance. Settings are versioned with ETags: a write states the
version it was based on, and a concurrent change elsewhere comes back as
:class:`SettingsConflict` carrying the document that won, so the caller can merge
instead of silently overwriting it.

The password and the tokens live only in memory, wrapped so that no ``repr``, log line
or exception text can show them; error texts that come from the server are scrubbed too,
since a broken gateway might echo a request back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx

from app.clock import SYSTEM_CLOCK, Clock
from app.config.schema import check_endpoint_url
from app.link.bodies import MAX_GATEWAY_BODY, BodyRefusedError, bounded_request, parse_json
from app.logfiles import demote_traffic_logs
from app.security.redact import register_secret
from app.security.secret import Secret

_log = logging.getLogger(__name__)


def _remember(secret: Secret) -> Secret:
    """Every password and token the client holds is also redacted from all log output."""
    register_secret(secret)
    return secret


#: Seconds allowed for each phase (connect, write, read, pool) of every request.
DEFAULT_TIMEOUT: Final = 5.0
_REDACTED: Final = "***"
#: Server-provided error texts are cut to this length: they go into one log line.
_MAX_SERVER_TEXT: Final = 200
#: Tokens remembered for scrubbing error texts (the current one and a few before it).
_KEEP_TOKENS: Final = 4


# ---------------------------------------------------------------------------- errors
class GatewayError(Exception):
    """The gateway could not be reached or gave an unusable answer.

    The message names the method, the URL and what went wrong; ``status`` (None when no
    HTTP answer came) and ``code`` (the ``error`` field of a JSON error body) let callers
    branch without parsing text.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status: int | None = None,
        code: str = "",
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status
        self.code = code


class AuthError(GatewayError):
    """The gateway refused the credentials (401): wrong password or an expired session."""


@dataclass(frozen=True, slots=True)
class VersionedSettings:
    """A settings document and the version it was read (or written) at."""

    version: int
    settings: dict[str, Any]


class SettingsConflict(GatewayError):  # noqa: N818 -- a conflict is an outcome, not a fault
    """A write was based on an old version (412); ``current`` is what the gateway holds."""

    def __init__(self, current: VersionedSettings, *, url: str = "") -> None:
        super().__init__(
            f"PUT {url}: HTTP 412, the settings were changed elsewhere "
            f"(now at version {current.version})",
            method="PUT",
            url=url,
            status=412,
        )
        self.current = current


# --------------------------------------------------------------------------- helpers
def describe_request_error(exc: httpx.RequestError, timeout: float) -> str:
    """A short human reason for a request that got no HTTP answer.

    httpx says "All connection attempts failed" for a refused connection; the OS error
    underneath is what an operator needs to see.
    """
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return f"cannot connect ({exc})"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def checked_base_url(url: str) -> str:
    """``url`` without a trailing slash: the settings' endpoint check (``http(s)``, a host,
    a valid port, no credentials — httpx would turn ``user:password@`` into Basic auth and
    print it in its request log), also for URLs that did not come through the settings."""
    return check_endpoint_url(url, ("http", "https")).rstrip("/")


# ---------------------------------------------------------------------------- client
class GatewayClient:
    """Talks to one API gateway as one user.

    Tokens are renewed when less than ``refresh_margin`` seconds (at most half the
    token's lifetime, so a short-lived token is not renewed on every call) remain, and
    once more after a 401: refresh first, log in again if the gateway refuses that.

    A passed-in ``http`` client stays the caller's: :meth:`aclose` closes only a client
    this object created. Requests are safe to issue concurrently; a renewal is done by
    one of them while the others wait for its token.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
        refresh_margin: float = 30.0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if refresh_margin < 0:
            raise ValueError("refresh_margin must be >= 0")
        self._base = checked_base_url(base_url)
        self._username = username
        self._password = _remember(Secret(password))
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._timeout = timeout
        self._owns_http = http is None
        demote_traffic_logs()
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._closed = False
        self._auth_lock = asyncio.Lock()
        self._token: Secret | None = None
        #: Bumped on every new token, so that requests refused with an older token
        #: know somebody already renewed it.
        self._generation = 0
        self._expires_at = 0.0
        self._renew_at = 0.0
        self._old_tokens: list[Secret] = []

    def __repr__(self) -> str:
        return (
            f"GatewayClient(base_url={self._base!r}, username={self._username!r}, "
            f"logged_in={self._token is not None})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Forget the token and close the HTTP client if it is ours; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._forget_token()
        if self._owns_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ public API
    @property
    def base_url(self) -> str:
        return self._base

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    async def login(self) -> None:
        """Log in now; requests log in by themselves, this only surfaces errors early."""
        async with self._auth_lock:
            await self._login()

    async def health(self) -> bool:
        """Whether the gateway answers ``/health`` with ``ok``; never raises for a bad
        answer, because "no" is the answer a probe wants then."""
        self._check_open()
        url = self._url("/health")
        try:
            resp = await bounded_request(
                self._http, "GET", url, limit=MAX_GATEWAY_BODY, timeout=self._timeout
            )
        except BodyRefusedError:
            return False
        except httpx.RequestError as exc:
            reason = describe_request_error(exc, self._timeout)
            _log.debug("GET %s: %s", self._url("/health"), reason)
            return False
        if resp.status_code != 200:
            return False
        try:
            body = parse_json(resp)
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("status") == "ok"

    async def get_settings(self, client_id: str) -> VersionedSettings:
        path = self._settings_path(client_id)
        resp = await self._request("GET", path)
        self._raise_for_status("GET", path, resp)
        return self._versioned("GET", path, self._json("GET", path, resp), None)

    async def put_settings(
        self, client_id: str, settings: Mapping[str, Any], expected_version: int
    ) -> VersionedSettings:
        """Store ``settings`` if the gateway still holds ``expected_version``.

        Raises :class:`SettingsConflict` (with the current document) when it does not.
        """
        if expected_version < 0:
            raise ValueError("expected_version must be >= 0")
        path = self._settings_path(client_id)
        document = dict(settings)
        resp = await self._request(
            "PUT",
            path,
            json={"settings": document},
            headers={"If-Match": f'"{expected_version}"'},
        )
        if resp.status_code == 412:
            current = self._versioned("PUT", path, self._json("PUT", path, resp), None)
            raise SettingsConflict(current, url=self._url(path))
        self._raise_for_status("PUT", path, resp)
        return self._versioned("PUT", path, self._json("PUT", path, resp), document)

    async def bridge_stats(self) -> dict[str, Any]:
        """The data bridge's delivery statistics, as the gateway reports them."""
        path = "/api/bridge/stats"
        resp = await self._request("GET", path)
        self._raise_for_status("GET", path, resp)
        body = self._json("GET", path, resp)
        if not isinstance(body, dict):
            raise self._error("GET", path, "answer has the wrong shape (not an object)")
        return body

    # ------------------------------------------------------------------ auth
    async def _valid_token(self) -> tuple[str, int]:
        if self._token is None or self._clock.monotonic() >= self._renew_at:
            async with self._auth_lock:
                # Another request may have renewed while this one waited for the lock.
                if self._token is None or self._clock.monotonic() >= self._renew_at:
                    await self._renew()
        assert self._token is not None
        return self._token.reveal(), self._generation

    async def _renew(self) -> None:
        """Refresh while the token may still be alive, else (or when refused) log in."""
        if self._token is not None and self._clock.monotonic() < self._expires_at:
            try:
                if await self._refresh():
                    return
            except GatewayError as exc:
                _log.debug("token refresh failed (%s); logging in again", exc)
        await self._login()

    async def _login(self) -> None:
        path = "/api/auth/login"
        payload = {"username": self._username, "password": self._password.reveal()}
        resp = await self._send("POST", path, json=payload, token=None)
        if resp.status_code == 401:
            self._forget_token()
            raise self._error(
                "POST",
                path,
                f"HTTP 401, login as {self._username!r} refused (wrong username or password)",
                status=401,
                code=self._error_code(resp),
                cls=AuthError,
            )
        self._raise_for_status("POST", path, resp)
        ttl = self._accept_token("POST", path, resp)
        _log.info(
            "logged in to gateway %s as %r (token valid %g s)", self._base, self._username, ttl
        )

    async def _refresh(self) -> bool:
        """Swap the token for a fresh one; False when the gateway refuses (401)."""
        assert self._token is not None
        path = "/api/auth/refresh"
        resp = await self._send("POST", path, token=self._token.reveal())
        if resp.status_code == 401:
            return False
        self._raise_for_status("POST", path, resp)
        ttl = self._accept_token("POST", path, resp)
        _log.debug("gateway token refreshed (valid %g s)", ttl)
        return True

    def _accept_token(self, method: str, path: str, resp: httpx.Response) -> float:
        body = self._json(method, path, resp)
        if not isinstance(body, dict):
            raise self._error(method, path, "answer has the wrong shape (not an object)")
        token = body.get("access_token")
        ttl = body.get("expires_in")
        kind = body.get("token_type", "bearer")
        if not isinstance(token, str) or not token:
            raise self._error(method, path, "answer has the wrong shape (no access_token)")
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= 0:
            raise self._error(method, path, "answer has the wrong shape (bad expires_in)")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise self._error(method, path, "answer has the wrong shape (token_type not bearer)")
        self._forget_token()
        ttl = float(ttl)
        now = self._clock.monotonic()
        self._token = _remember(Secret(token))
        self._generation += 1
        self._expires_at = now + ttl
        self._renew_at = self._expires_at - min(self._refresh_margin, ttl / 2)
        return ttl

    def _forget_token(self) -> None:
        if self._token is not None:
            # Still scrubbed from error texts: a confused gateway may quote it back.
            self._old_tokens = [*self._old_tokens[-(_KEEP_TOKENS - 1) :], self._token]
            self._token = None

    # ------------------------------------------------------------------ transport
    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """An authenticated request, renewing the token once if the gateway says 401."""
        token, generation = await self._valid_token()
        resp = await self._send(method, path, json=json, headers=headers, token=token)
        if resp.status_code != 401:
            return resp
        async with self._auth_lock:
            if self._generation == generation:
                await self._renew()
        token, _ = await self._valid_token()
        resp = await self._send(method, path, json=json, headers=headers, token=token)
        if resp.status_code == 401:
            raise self._error(
                method,
                path,
                "HTTP 401 even with a freshly issued token",
                status=401,
                code=self._error_code(resp),
                cls=AuthError,
            )
        return resp

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        token: str | None,
    ) -> httpx.Response:
        self._check_open()
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        try:
            return await bounded_request(
                self._http,
                method,
                self._url(path),
                limit=MAX_GATEWAY_BODY,
                json=json,
                headers=all_headers,
                timeout=self._timeout,
            )
        except BodyRefusedError as exc:
            raise self._error(method, path, str(exc)) from None
        except httpx.RequestError as exc:
            raise self._error(method, path, describe_request_error(exc, self._timeout)) from exc

    # ------------------------------------------------------------------ answers
    def _json(self, method: str, path: str, resp: httpx.Response) -> Any:
        try:
            return parse_json(resp)
        except ValueError as exc:
            raise self._error(
                method,
                path,
                f"HTTP {resp.status_code}, answer refused: {exc}",
                status=resp.status_code,
            ) from None

    def _versioned(
        self, method: str, path: str, body: Any, sent: dict[str, Any] | None
    ) -> VersionedSettings:
        """Parse a settings document; a PUT answer may leave out what was just sent."""
        if not isinstance(body, dict):
            raise self._error(method, path, "answer has the wrong shape (not an object)")
        version = body.get("version")
        settings = body.get("settings", sent)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise self._error(method, path, "answer has the wrong shape (bad version)")
        if not isinstance(settings, dict):
            raise self._error(method, path, "answer has the wrong shape (bad settings)")
        return VersionedSettings(version, settings)

    def _raise_for_status(self, method: str, path: str, resp: httpx.Response) -> None:
        if resp.is_success:
            return
        code, message = "", ""
        try:
            body = parse_json(resp)
        except ValueError:
            body = None
        if isinstance(body, dict):
            # Scrubbed before cutting: a cut could leave half a secret unrecognisable.
            code = self._scrub(str(body.get("error", "")))[:_MAX_SERVER_TEXT]
            message = self._scrub(str(body.get("message", "")))[:_MAX_SERVER_TEXT]
        detail = f"HTTP {resp.status_code}"
        if code or message:
            detail += f" ({': '.join(part for part in (code, message) if part)})"
        elif resp.reason_phrase:
            detail += f" {resp.reason_phrase}"
        cls = AuthError if resp.status_code == 401 else GatewayError
        raise self._error(method, path, detail, status=resp.status_code, code=code, cls=cls)

    def _error_code(self, resp: httpx.Response) -> str:
        try:
            body = parse_json(resp)
        except ValueError:
            return ""
        if not isinstance(body, dict):
            return ""
        return self._scrub(str(body.get("error", "")))[:_MAX_SERVER_TEXT]

    def _error(
        self,
        method: str,
        path: str,
        what: str,
        *,
        status: int | None = None,
        code: str = "",
        cls: type[GatewayError] = GatewayError,
    ) -> GatewayError:
        url = self._url(path)
        return cls(
            self._scrub(f"{method} {url}: {what}"),
            method=method,
            url=url,
            status=status,
            code=self._scrub(code),
        )

    def _scrub(self, text: str) -> str:
        """Blank out every secret this client knows: error texts may quote the server."""
        secrets = [self._password, *self._old_tokens]
        if self._token is not None:
            secrets.append(self._token)
        for secret in secrets:
            value = secret.reveal()
            if value:
                text = text.replace(value, _REDACTED)
        return text

    # ------------------------------------------------------------------ misc
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("GatewayClient is closed")

    def _url(self, path: str) -> str:
        return self._base + path

    @staticmethod
    def _settings_path(client_id: str) -> str:
        if not client_id:
            raise ValueError("client_id must not be empty")
        return f"/api/settings/{quote(client_id, safe='')}"
