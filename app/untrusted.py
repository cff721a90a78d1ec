"""Reading bytes nobody vouches for: the client's own files and JSON from anywhere.

A settings, vault or replay path may name a FIFO (``read`` waits forever for a writer),
a device or a symlink to one (``/dev/zero`` never ends: the adversarial pass saw a
MemoryError at 5.4 GB), or simply a file far larger than any honest one. JSON may
repeat a key (which value wins is up to the parser, so a reviewer and the program can
see different settings) or nest deeper than the interpreter's stack (RecursionError at
start). Everything here refuses such input *before* the work is done, with an error
whose text is one line a user can act on.

:func:`read_regular_file` opens with ``O_NONBLOCK`` (a FIFO opens at once instead of
blocking), checks the *opened* file with ``fstat`` (no race between a check and the
open), and reads at most the cap plus one byte. :func:`loads_json` parses with orjson
(its own depth limit stops a 100k-deep document without recursion), checks the depth,
then re-reads the pairs to refuse duplicate keys.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Final

import orjson

log = logging.getLogger(__name__)

#: Deepest JSON nesting accepted (a settings document is about 5 levels deep).
MAX_JSON_DEPTH: Final = 32

_KINDS: Final = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnsafeFileError(OSError):
    """A path that is not a regular file of a sane size; ``strerror`` says why."""


class JsonRefusedError(ValueError):
    """JSON that is invalid, too deep, or repeats a key; the text says which."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


def read_regular_file(path: Path | str, max_bytes: int, *, private: bool = False) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    Raises :class:`UnsafeFileError` (an ``OSError``, so callers' "cannot read" handling
    covers it) for a FIFO, device, socket or folder, and for a file over the cap;
    ``FileNotFoundError`` and friends pass through. With ``private`` (secrets), a file
    other users may read or write is made owner-only (0600) first, and refused when that
    is not possible.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(
                errno.EINVAL, f"{_kind(st.st_mode)}, not a regular file", str(path)
            )
        if st.st_size > max_bytes:
            raise UnsafeFileError(
                errno.EFBIG,
                f"{_size(st.st_size)}, larger than the {_size(max_bytes)} allowed",
                str(path),
            )
        if private and os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
            _make_private(fd, path, stat.S_IMODE(st.st_mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # it grew past the cap while being read
            raise UnsafeFileError(
                errno.EFBIG, f"larger than the {_size(max_bytes)} allowed", str(path)
            )
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_regular_file(path: Path | str) -> None:
    """Refuse (with :class:`UnsafeFileError`) a path that is not a regular file, without
    reading it: for files read in a streaming way, where the size is not the risk."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(errno.EINVAL, f"{_kind(mode)}, not a regular file", str(path))


def _make_private(fd: int, path: Path | str, mode: int) -> None:
    try:
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise UnsafeFileError(
            errno.EPERM,
            f"other users may read it (mode {mode:04o}) and it cannot be made private "
            f"({exc.strerror or exc}); chmod 600 it",
            str(path),
        ) from None
    log.warning("%s: other users could read it (mode %04o); made private (0600)", path, mode)


def loads_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``data``; :class:`JsonRefusedError` for invalid JSON, nesting deeper than
    ``max_depth`` or a key repeated within one object."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JsonRefusedError(f"not valid JSON: {exc}") from None
    if json_depth(doc, max_depth) > max_depth:
        raise JsonRefusedError(f"nested deeper than {max_depth} levels")
    if _has_objects(doc):
        # Depth is bounded now, so the recursive parser is safe; it alone sees pairs.
        json.loads(data, object_pairs_hook=_unique_pairs)
    return doc


def json_depth(doc: Any, stop_above: int | None = None) -> int:
    """Nesting depth of a parsed document (a scalar is 0), without recursion; gives up
    as soon as it exceeds ``stop_above`` (a peer's document may be huge)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if stop_above is not None and deepest > stop_above:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _has_objects(doc: Any) -> bool:
    return isinstance(doc, dict) or (isinstance(doc, list) and bool(doc))


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonRefusedError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out
