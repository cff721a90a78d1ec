"""The application's own log file: rotating, redacted, in the platform's log folder.

Why a file at all: a desktop user reporting a problem cannot scroll back a console that
was never open (the window is started from a menu), so ``run`` and ``gui`` also write
INFO and up to ``trading-client.log`` in :func:`app.paths.log_dir` (5 MB × 5 files).
The redaction filter must cover this handler like every other: install it *before*
:func:`app.security.redact.install_redaction` runs, which filters the handlers that
exist at that moment.
"""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from app import __version__
from app.paths import log_dir

LOG_FILE_NAME = "trading-client.log"
MAX_BYTES = 5 * 1024 * 1024
BACKUP_COUNT = 5
FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


class _TolerantRotatingFileHandler(RotatingFileHandler):
    """Keeps logging when a rollover cannot rename the file.

    Two clients (a ``gui`` and a ``run``) may share the folder; on Windows the one that
    tries to rotate cannot rename a file the other holds open. Rather than printing a
    "Logging error" traceback for every record after that, it keeps appending to the
    current file and tries again at the next rollover point.
    """

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        try:
            super().doRollover()
        except OSError:
            if self.stream is None or self.stream.closed:
                self.stream = self._open()


def log_file_path(folder: Path | None = None) -> Path:
    return (folder if folder is not None else log_dir()) / LOG_FILE_NAME


def install_file_log(
    command: str, level: int | str = logging.INFO, folder: Path | None = None
) -> Path | None:
    """Add the rotating file handler to the root logger; the file's path, or None when
    the folder cannot be written (then a warning on stderr, and the command still runs).

    The file records ``level`` and up (INFO by default; DEBUG when asked for). The root
    logger is lowered to that level if needed, so handlers already attached without a
    level of their own (the console's) are pinned to the root's previous level first:
    the console keeps showing what ``--log-level`` said.
    """
    path = log_file_path(folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _TolerantRotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )
    except OSError as exc:
        print(f"warning: no log file: cannot write {path}: {exc}", file=sys.stderr)
        return None
    file_level = logging.getLevelName(level) if isinstance(level, str) else level
    file_level = min(int(file_level), logging.INFO)
    handler.setLevel(file_level)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    if root.level > file_level:
        for existing in root.handlers:
            if existing.level == logging.NOTSET:
                existing.setLevel(root.level)
        root.setLevel(file_level)
    root.addHandler(handler)
    log.info("trading-client %s %s started (pid %d)", __version__, command, os.getpid())
    return path


#: Loggers that write a line per HTTP request at INFO: the reference backend's access
#: log and the httpx client's (the hub heartbeat alone is one of each every 5 s).
TRAFFIC_LOGGERS = ("aiohttp.access", "httpx")


class _DemoteToDebug(logging.Filter):
    """Turns a logger's INFO records into DEBUG ones, dropped unless DEBUG is on.

    Why not raise the logger's level: with ``--log-level DEBUG`` the traffic is wanted
    (it is how a failing exchange is followed), and then it must say DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def demote_traffic_logs() -> None:
    """Keep per-request lines out of the Journal and the log file at INFO (idempotent).

    Called where those loggers are put to work: the HTTP services and the HTTP clients.
    """
    for name in TRAFFIC_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteToDebug) for f in logger.filters):
            logger.addFilter(_DemoteToDebug())
