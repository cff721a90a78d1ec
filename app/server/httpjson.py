"""JSON in, JSON out, for the gateway and the hub.

Protocol.md promises ``{"error": code, "message": text}`` for every error, including the
ones aiohttp raises itself (unknown route, wrong method, body too large), so one
middleware turns all of them into that shape and a client never has to parse HTML.

The limits of :class:`HttpLimits` hold for every request of both services, and each is
enforced before the work it bounds: the body size by aiohttp as it reads (413), the body's
arrival within ``body_timeout`` (408, connection closed), JSON nesting by orjson's own
depth limit and then ours (400, no recursion anywhere), and connections that send no
request, or half of one, are closed after ``idle_timeout`` (aiohttp's keep-alive timer,
which also runs from the moment a connection opens). Issue #13 found half-open
connections kept forever, enough of them to exhaust the open-file limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web

from app.server.auth import Authenticator, AuthRefused
from app.server.users import Principal
from app.untrusted import json_depth

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds of every HTTP request to the gateway and the hub."""

    #: Largest request body (a settings document, a registration).
    max_body_bytes: int = 256 * 2**10
    #: Deepest nesting of a JSON body (objects and arrays).
    max_json_depth: int = 32
    #: A connection without a complete request head for this long is closed.
    idle_timeout: float = 15.0
    #: A request body not fully received within this is answered 408 and closed.
    body_timeout: float = 15.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_json_depth < 1:
            raise ValueError("max_body_bytes and max_json_depth must be at least 1")
        if not self.idle_timeout > 0 or not self.body_timeout > 0:
            raise ValueError("idle_timeout and body_timeout must be positive")


DEFAULT_HTTP_LIMITS: Final = HttpLimits()
LIMITS: Final = web.AppKey("http_limits", HttpLimits)


def json_app(limits: HttpLimits = DEFAULT_HTTP_LIMITS) -> web.Application:
    """An application answering errors as JSON, with ``limits`` on every request."""
    app = web.Application(middlewares=[json_errors], client_max_size=limits.max_body_bytes)
    app[LIMITS] = limits
    return app


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        #: Close the connection after the answer (a body that never finished arriving).
        self.close = close
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        self.headers = headers


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response({"error": code, "message": message}, status=status, headers=headers)


def _slug(reason: str) -> str:
    return "_".join(reason.lower().replace("-", " ").split()) or "error"


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.body is not None:
            answer = json_response(exc.body, status=exc.status, headers=exc.headers)
        else:
            answer = error_response(exc.status, exc.code, exc.message, exc.headers)
        if exc.close:
            answer.force_close()
        return answer
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _slug(exc.reason), exc.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the server failed; see its log")


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object within the app's :class:`HttpLimits`, or a
    4xx: 400 (not JSON, not an object, nested too deep), 408 (too slow), 413 (too big)."""
    limits = request.app.get(LIMITS, DEFAULT_HTTP_LIMITS)
    try:
        async with asyncio.timeout(limits.body_timeout):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the body did not arrive within {limits.body_timeout:g} s",
            close=True,
        ) from None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        why = "nested too deeply" if "depth" in str(exc) else "not JSON"
        raise ApiError(400, "bad_request", f"the body must be JSON ({why})") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    if json_depth(doc, limits.max_json_depth) > limits.max_json_depth:
        raise ApiError(
            400, "bad_request", f"the body is nested deeper than {limits.max_json_depth} levels"
        )
    return doc


def health(service: str) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return json_response({"status": "ok", "service": service})

    return handler


def peer_address(request: web.Request) -> str:
    """The client's address, the key of login throttling per address."""
    return request.remote or "unknown"


def refusal(exc: AuthRefused) -> ApiError:
    """An authentication refusal as the JSON error protocol.md gives it."""
    headers = {"WWW-Authenticate": 'Bearer, Basic realm="trading-client"'}
    if exc.status == 429:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    elif exc.status == 403:
        headers = {}
    return ApiError(exc.status, exc.code, exc.message, headers=headers)


async def authenticated(request: web.Request, auth: Authenticator) -> Principal:
    """The principal behind the request's ``Authorization`` header, or a 401/429."""
    try:
        return await auth.header(request.headers.get("Authorization"), peer_address(request))
    except AuthRefused as exc:
        raise refusal(exc) from None
