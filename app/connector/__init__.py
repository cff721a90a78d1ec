"""The connector pool: one worker process per terminal connection, supervised."""

from app.connector.capture import CaptureCursor, PollSizer
from app.connector.health import WorkerHealth, WorkerState
from app.connector.pool import ConnectorPool, spread_symbols
from app.connector.worker import WorkerSpec

__all__ = [
    "CaptureCursor",
    "ConnectorPool",
    "PollSizer",
    "WorkerHealth",
    "WorkerSpec",
    "WorkerState",
    "spread_symbols",
]
