"""Health of each connection in the pool, as the supervisor sees it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class WorkerState(enum.StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    #: The terminal answers but lost its trade server (``terminal_info().connected`` is
    #: False): no new ticks until it is back; the worker keeps its cursors and waits.
    OFFLINE = "offline"
    STALLED = "stalled"
    BACKING_OFF = "backing_off"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """A snapshot of one worker; safe to hand to another thread or the UI."""

    worker_id: int
    terminal: str
    symbols: tuple[str, ...]
    state: WorkerState
    pid: int | None
    ticks: int
    batches: int
    reconnects: int
    #: Seconds since the current process started streaming (0 when not streaming).
    uptime: float
    last_error_code: int
    last_error_text: str
    last_tick_msc: int
    enabled: bool
    #: The trade server's time zone the worker reads ticks in (``"ny-close"``, or a
    #: detected fixed offset such as ``"+03:00"``); None while not known (detecting).
    server_time_zone: str | None = None
    #: Its offset from UTC in seconds, as of the worker's last report.
    server_offset_s: int | None = None

    @property
    def last_error(self) -> str:
        if not self.last_error_code and not self.last_error_text:
            return ""
        return f"{self.last_error_text} ({self.last_error_code})"
