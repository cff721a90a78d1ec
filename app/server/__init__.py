"""The reference backend: data bridge, API gateway and central hub on loopback.

It exists so that the client runs end-to-end on any machine and so that tests talk to
real servers over real sockets. It speaks exactly docs/protocol.md; a production backend
replaces it without the client noticing.
"""

from app.server.server import ReferenceBackend, serve_forever
from app.server.store import TickStore

__all__ = ["ReferenceBackend", "TickStore", "serve_forever"]
