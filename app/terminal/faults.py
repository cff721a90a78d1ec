"""Faults a simulated terminal can be told to have, in-process or through a control file.

A test (or a user) writes the control file from another process; every simulated
terminal watching it re-reads it when it changes, so faults reach worker processes
that the test cannot call into.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from app.untrusted import read_regular_file

__all__ = ["ControlFile", "FaultMode", "write_fault"]

log = logging.getLogger(__name__)

_CONTROL_POLL_S = 0.05


class FaultMode(StrEnum):
    """What the simulated terminal pretends is wrong with it."""

    OK = "ok"
    #: The link to the terminal broke: calls fail with ``RES_E_INTERNAL_FAIL_CONNECT``
    #: until the mode is "ok" again *and* the caller re-initialises.
    DISCONNECT = "disconnect"
    #: The terminal hangs: calls block until the mode changes.
    STALL = "stall"
    #: The trade server rejects credentials: ``initialize``/``login`` with a login fail.
    AUTH_FAIL = "auth_fail"
    #: The terminal lost its trade server but the IPC works: calls succeed,
    #: ``terminal_info().connected`` is False, and no new tick arrives.
    OFFLINE = "offline"
    #: ``order_send`` executes and commits the order, then blocks until the mode
    #: changes (or the process is killed): the broker has the order, the client never
    #: hears of it. Every other call works. The execution path's never-twice test hook.
    STALL_AFTER_SEND = "stall_after_send"


def write_fault(
    path: Path, mode: FaultMode | str, *, fail: Mapping[str, int] | None = None
) -> None:
    """Set the fault of every simulated terminal watching ``path`` (atomically).

    ``fail`` maps function names to ``last_error`` codes: those calls answer ``None``
    (``False``, ``0``) with that code, whatever the mode, until the file changes.
    """
    doc: dict[str, object] = {"mode": FaultMode(mode).value}
    if fail:
        doc["fail"] = {name: int(code) for name, code in fail.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


class ControlFile:
    """The JSON control file ``{"mode": ..., "fail": {function: code}}`` of a terminal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sig: tuple[int, int, int] | None = None
        self._checked = -math.inf

    def poll(self, *, force: bool = False) -> tuple[FaultMode, dict[str, int]] | None:
        """The new fault when the file changed; at most every 50 ms, so calls stay cheap."""
        now = time.monotonic()
        if not force and now - self._checked < _CONTROL_POLL_S:
            return None
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # no file: no override, keep the current mode
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self._sig:
            return None
        try:
            raw = read_regular_file(self.path, 64 * 2**10)  # a FIFO must not hang the worker
            doc = json.loads(raw.decode("utf-8"))
            mode = FaultMode(doc["mode"])
            fail = {str(k): int(v) for k, v in dict(doc.get("fail") or {}).items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable fault control file %s: %s", self.path, exc)
            return None  # retried on the next change (e.g. a writer that was half-way through)
        self._sig = sig
        return mode, fail
