"""The reference backend: data bridge, API gateway and central hub on loopback.

It exists so that the client runs end-to-end on any machine and so that tests talk to
real servers over real sockets. It speaks exactly docs/protocol.md; a production backend
replaces it without the client noticing.

The package's names are imported when first asked for: the window imports
``app.server.process`` (the embedded backend's launcher, which imports the server only
in its child), and an eager import here brought aiohttp and the whole server into the
window's cold start (~0.1 s of CPU, far more under load).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.server.server import ReferenceBackend, serve_forever
    from app.server.store import TickStore

__all__ = ["ReferenceBackend", "TickStore", "serve_forever"]


def __getattr__(name: str) -> Any:
    if name in ("ReferenceBackend", "serve_forever"):
        from app.server import server  # noqa: PLC0415 - imported when asked for, see above

        return getattr(server, name)
    if name == "TickStore":
        from app.server import store  # noqa: PLC0415 - imported when asked for, see above

        return store.TickStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
