"""JSON in, JSON out, for the gateway and the hub.

Protocol.md promises ``{"error": code, "message": text}`` for every error, including the
ones aiohttp raises itself (unknown route, wrong method, body too large), so one
middleware turns all of them into that shape and a client never has to parse HTML.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from app.server.auth import Authenticator, AuthRefused
from app.server.users import Principal

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    ) -> None:
        super().__init__(message)
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
            return json_response(exc.body, status=exc.status, headers=exc.headers)
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _slug(exc.reason), exc.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the server failed; see its log")


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    raw = await request.read()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "bad_request", "the body must be JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
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
