"""Answers from the gateway and the hub, read within a size cap and parsed within a depth.

httpx reads a whole body before handing the response over: a 200 MB gateway answer cost
the client 909 MB, a 300 MB hub answer 1.8 GB, and a 100k-deep JSON document a
RecursionError at start. Here the body is streamed and reading stops at the cap (the
connection is dropped, the rest never arrives), compression is neither asked for nor
accepted (a small compressed body could inflate past any cap before it is counted), and
JSON goes through :func:`app.untrusted.loads_json` (depth, duplicate keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx

from app.untrusted import loads_json

#: Largest answer accepted from the gateway (a settings document is a few KB).
MAX_GATEWAY_BODY: Final = 1 * 2**20
#: Largest answer accepted from the hub (a registration answer is well under 1 KB).
MAX_HUB_BODY: Final = 256 * 2**10


class BodyRefusedError(Exception):
    """An answer over the cap, or compressed although no compression was asked for."""


async def bounded_request(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    limit: int,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """``http.request`` whose body is read only up to ``limit`` bytes.

    The returned response holds the body (``content``, ``json()`` work as usual); over
    the cap, :class:`BodyRefusedError` is raised after reading at most ``limit`` bytes
    plus one network chunk. ``httpx.RequestError`` passes through.
    """
    all_headers = {**(headers or {}), "Accept-Encoding": "identity"}
    request = http.build_request(method, url, json=json, headers=all_headers, timeout=timeout)
    response = await http.send(request, stream=True)
    try:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise BodyRefusedError(f"answer is compressed ({encoding}) although not asked to be")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyRefusedError(f"answer of {int(declared):,} bytes is over the {_cap(limit)}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise BodyRefusedError(f"answer is over the {_cap(limit)}; reading stopped")
            chunks.append(chunk)
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=b"".join(chunks),
        request=request,
        extensions=response.extensions,
    )


def parse_json(response: httpx.Response) -> Any:
    """The JSON of an answer read by :func:`bounded_request`; ``ValueError`` (with the
    reason: invalid, too deep, a repeated key) when it is not usable."""
    return loads_json(response.content)


def _cap(limit: int) -> str:
    return f"{limit // 2**20} MiB limit" if limit >= 2**20 else f"{limit // 2**10} KiB limit"
