"""Session folders of the spool: claiming one, finding what earlier runs left, removing
emptied ones.

One folder per session (``ROOT/<session>/``: segments, ``spool.json``, ``spool.lock``,
maybe a ``marks`` file), locked by the process that has it open. A run looks here for
folders of its client that no live process holds: those it resumes or drains; an empty
one (or one a crash left half-created) is deleted on the way, never left behind.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from pathlib import Path

from app.link.spool_errors import SpoolError
from app.link.spool_files import (
    LOCK_NAME,
    MARKS_NAME,
    META_NAME,
    SessionLock,
    SpoolLocked,
    is_temp_file,
    read_marks,
    read_meta,
    segment_number,
    segment_paths,
    write_meta,
)

__all__ = ["claim_session", "find_leftovers", "remove_session"]


def claim_session(
    directory: Path, client_id: str, session: str | None
) -> tuple[SessionLock, str, str]:
    """Create or resume the session folder ``directory`` and lock it.

    Returns the lock, the client id and the session id. A new folder gets its
    ``spool.json`` (session: the given one, else the folder's name); a resumed one keeps
    the ids it was created with, and one of another client is refused with
    :class:`SpoolError` (its messages are not ours to send). Raises
    :class:`SpoolLocked` when another open spool holds it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lock = SessionLock(directory)
    try:
        meta = read_meta(directory)
        if meta is None:
            session = session or directory.name
            write_meta(directory, client_id, session)
            return lock, client_id, session
        owner = meta.get("client_id")
        if client_id and owner and owner != client_id:
            raise SpoolError(
                f"spool folder {directory} belongs to client {owner!r}, not {client_id!r}"
            )
        return lock, str(owner or client_id), str(meta.get("session") or session or directory.name)
    except BaseException:
        lock.release()
        raise


def find_leftovers(root: Path, client_id: str) -> list[Path]:
    """Session directories under ``root`` of ``client_id`` that no live process holds.

    Oldest first (by ``spool.json``'s created). A leftover without any record is deleted
    on the way rather than returned (and so is a directory a crash left before its meta
    was written). Each returned directory is unlocked again: open it with
    ``Spool(..., directory=path, client_id=client_id)`` to resume it.
    """
    if not root.is_dir():
        return []
    found: list[tuple[float, str, Path]] = []
    for directory in root.iterdir():
        if not directory.is_dir():
            continue
        meta = read_meta(directory)
        if meta is None:
            with contextlib.suppress(OSError):
                names = {p.name for p in directory.iterdir()} - {LOCK_NAME}
                if all(is_temp_file(n) for n in names):  # a crash while creating
                    _remove_if_unlocked(directory)
            continue
        if meta.get("client_id") != client_id:
            continue
        try:
            lock = SessionLock(directory)
        except (SpoolLocked, OSError):
            continue
        try:
            if not read_marks(directory) and not any(
                p.stat().st_size > 0 for p in segment_paths(directory)
            ):
                remove_session(directory, lock)
                continue
        finally:
            lock.release()
        created = meta.get("created")
        found.append(
            (
                float(created) if isinstance(created, (int, float)) else 0.0,
                directory.name,
                directory,
            )
        )
    return [d for _, _, d in sorted(found)]


def _remove_if_unlocked(directory: Path) -> None:
    try:
        lock = SessionLock(directory)
    except (SpoolLocked, OSError):
        return
    try:
        remove_session(directory, lock)
    finally:
        lock.release()


def remove_session(directory: Path, lock: SessionLock) -> OSError | None:
    """Delete a session directory's own files, then the directory if nothing else is in it.

    Every file is attempted; the first OSError is returned. The lock file goes last; on
    Windows an open, locked file cannot be deleted, so the lock is released first there.
    """
    error: OSError | None = None
    try:
        names = [p for p in directory.iterdir() if segment_number(p) is not None]
    except OSError as exc:
        return exc
    temps = [p for p in directory.iterdir() if is_temp_file(p.name)]
    for path in [*names, *temps, directory / MARKS_NAME, directory / META_NAME]:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            error = error or exc
    if sys.platform == "win32":
        lock.release()
    with contextlib.suppress(OSError):
        (directory / LOCK_NAME).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            error = error or exc
    return error
