"""Reading a worker's pipe on the event loop itself, without a reader thread.

At 10k ticks/s the pool hands over ~2,500 batches of ~4 ticks a second. With one reader
thread per worker every batch cost two wake-ups: the reader thread's (its recv returning,
then the GIL) and the loop's (the thread writing to the loop's self-pipe). Measured per
batch in the app (``bench pipeline`` fixed rate, per-thread CPU from /proc): ~70 µs in the
reader threads, against ~7 µs for the same work in isolation — on a busy 2-core machine a
thread woken for a few microseconds of Python runs cold. Here the loop's own selector
watches the pipes: a batch costs one wake-up of the thread that consumes it anyway.

Two parts: :class:`PipeFrames`, a sans-I/O splitter of the byte stream that
``multiprocessing.connection.Connection.send_bytes`` writes (a 4-byte big-endian signed
length, or -1 and an 8-byte length for more than 2 GiB, then the payload; the format is
the worker's and unchanged), and :class:`LoopReader`, which reads whatever is there with
``MSG_DONTWAIT`` (never blocking the loop, whatever the message size) and pauses reading
while its consumer refuses a message — the pipe then fills and the worker blocks in its
send, which is the pool's back-pressure.

Used where the loop is asyncio's own selector loop on a POSIX socket pair (headless runs
and the benchmarks); elsewhere (Windows pipes, the window's Qt loop) the pool keeps its
reader threads.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from selectors import BaseSelector

#: Bytes asked for per read: a few small batches, or a good part of a large one.
_READ_BYTES = 256 * 1024
_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")


class PipeFrames:
    """Split a ``Connection`` byte stream into its messages (no I/O).

    A message that arrives whole within one chunk is copied out once; a longer one (at
    full speed a batch is ~600 kB, more than the socket's buffer) is gathered into a
    buffer of its final size, so every byte is copied once however many reads it takes.
    """

    def __init__(self) -> None:
        self._head = b""  # an incomplete length prefix
        self._body: bytearray | None = None  # the message being gathered
        self._filled = 0

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message held back."""
        return len(self._head) + self._filled

    def feed(self, data: bytes) -> list[bytes | bytearray]:
        """The messages completed by ``data``, oldest first."""
        out: list[bytes | bytearray] = []
        view = memoryview(data)
        at, end = 0, len(view)
        while at < end:
            body = self._body
            if body is not None:
                take = min(len(body) - self._filled, end - at)
                body[self._filled : self._filled + take] = view[at : at + take]
                self._filled += take
                at += take
                if self._filled == len(body):
                    out.append(body)
                    self._body, self._filled = None, 0
                continue
            head = self._head + bytes(view[at : at + _LONGEST_PREFIX])
            parsed = _prefix(head)
            if parsed is None:  # fewer bytes than the prefix: all of them are in ``head``
                self._head = head
                break
            prefix, size = parsed
            at += prefix - len(self._head)
            self._head = b""
            if end - at >= size:
                out.append(bytes(view[at : at + size]))
                at += size
            else:
                self._body = bytearray(size)
                self._body[: end - at] = view[at:end]
                self._filled = end - at
                at = end
        return out


#: The longest length prefix: -1, then an 8-byte length (a message over 2 GiB).
_LONGEST_PREFIX = _LENGTH.size + _LONG_LENGTH.size


def _prefix(head: bytes) -> tuple[int, int] | None:
    """(prefix bytes, message size) at the start of ``head``; None while incomplete."""
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack_from(head)
    if size == -1:
        if len(head) < _LONGEST_PREFIX:
            return None
        return _LONGEST_PREFIX, _LONG_LENGTH.unpack_from(head, _LENGTH.size)[0]
    if size < 0:
        raise ValueError(f"bad message length {size} on a worker pipe")
    return _LENGTH.size, size


def usable(loop: asyncio.AbstractEventLoop, conn: Connection) -> bool:
    """Whether ``conn`` can be read on ``loop`` directly: asyncio's own selector loop
    (not a subclass that replaces ``add_reader``, like qasync's) on a POSIX socket."""
    if sys.platform == "win32":
        return False
    plain = asyncio.selector_events.BaseSelectorEventLoop
    for name in ("add_reader", "_add_reader", "remove_reader", "_remove_reader"):
        if getattr(type(loop), name, None) is not getattr(plain, name):
            return False  # e.g. qasync, whose readers are Qt socket notifiers
    if not isinstance(getattr(loop, "_selector", None), BaseSelector):
        return False
    fd = os.dup(conn.fileno())
    try:
        probe = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return False  # a plain pipe, not a socket pair
    probe.close()
    return True


class LoopReader:
    """Reads one worker's messages on the loop and hands each to ``on_message``.

    ``on_message(payload)`` returns False to refuse it for now (its consumer is full):
    reading stops and the payload and those after it are kept, until :meth:`resume`.
    ``on_end()`` is called once, when the worker closed its end (or the read failed).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: Connection,
        on_message: Callable[[bytes | bytearray], bool],
        on_end: Callable[[], None],
    ) -> None:
        self._loop = loop
        # A socket object of our own over a duplicate of the descriptor: reads with
        # MSG_DONTWAIT leave the connection's own (blocking) use for sending untouched.
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._fd = self._sock.fileno()
        self._on_message = on_message
        self._on_end = on_end
        self._frames = PipeFrames()
        self._held: deque[bytes | bytearray] = deque()
        self._reading = False
        self._ended = False
        self._start_reading()

    @property
    def paused(self) -> bool:
        return bool(self._held)

    def resume(self) -> None:
        """The consumer has room again: hand over what was held, then read on."""
        if self._ended or not self._held:
            return
        if self._deliver(()):
            self._start_reading()

    def close(self) -> None:
        """Stop reading (idempotent); ``on_end`` is not called for this."""
        self._stop_reading()
        if self._sock.fileno() >= 0:
            self._sock.close()
        self._ended = True
        self._held.clear()

    # ------------------------------------------------------------------ internals
    def _start_reading(self) -> None:
        if not self._reading and not self._ended:
            self._loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_READ_BYTES, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._end()
            return
        try:
            messages = self._frames.feed(data)
        except ValueError:
            self._end()
            return
        if messages and not self._deliver(messages):
            self._stop_reading()

    def _deliver(self, messages: list[bytes | bytearray] | tuple[()]) -> bool:
        """Hand over the held messages and then ``messages``; False when refused (the
        rest is held)."""
        held = self._held
        held.extend(messages)
        on_message = self._on_message
        while held:
            if self._ended:
                return False
            if not on_message(held[0]):
                return False
            held.popleft()
        return True

    def _end(self) -> None:
        if self._ended:
            return
        self.close()
        self._on_end()
