"""Reading a worker's pipe on the loop: the byte stream ``Connection.send_bytes`` writes is
split into exactly the messages sent, however the reads cut it; a refusing consumer stops
the reading (the sender then blocks: back-pressure) until resumed; the end is said once."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.connector.loop_reader import LoopReader, PipeFrames, usable


def framed(message: bytes) -> bytes:
    return struct.pack("!i", len(message)) + message


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(0, 7_000), max_size=30),
)
def test_messages_come_out_whole_however_the_stream_is_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(framed(m) for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    frames = PipeFrames()
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out.extend(frames.feed(stream[a:b]))
    assert out == messages
    assert frames.buffered == 0


def test_the_long_length_form_and_a_bad_length() -> None:
    frames = PipeFrames()
    long_form = struct.pack("!i", -1) + struct.pack("!Q", 3) + b"abc"
    assert frames.feed(long_form[:5]) == []
    assert frames.feed(long_form[5:] + framed(b"d")) == [b"abc", b"d"]
    with pytest.raises(ValueError, match="bad message length"):
        PipeFrames().feed(struct.pack("!i", -7))


async def test_a_refusing_consumer_holds_the_sender_until_resumed_and_the_end_comes_once() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = multiprocessing.Pipe(duplex=True)  # a socket pair, as the pool's
    assert usable(loop, ours)
    got: list[bytes] = []
    ends: list[int] = []
    accept = asyncio.Event()
    accept.set()

    def on_message(data: bytes) -> bool:
        if not accept.is_set():
            return False
        got.append(data)
        return True

    reader = LoopReader(loop, ours, on_message, lambda: ends.append(1))
    big = bytes(range(256)) * 4_000  # 1 MB: larger than the socket's buffer
    sent = [b"a", big, b"b" * 10, big[::-1]]
    accept.clear()  # refuse: reading stops, the sender must block on a full buffer

    done = threading.Event()

    def send() -> None:
        for message in sent:
            theirs.send_bytes(message)
        theirs.close()
        done.set()

    thread = threading.Thread(target=send)
    thread.start()
    async with asyncio.timeout(10):
        while not reader.paused:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert not done.is_set()  # held back: the 1 MB messages cannot all be in flight
    assert got == []
    accept.set()
    reader.resume()
    async with asyncio.timeout(10):
        while not ends:
            await asyncio.sleep(0.01)
    await asyncio.to_thread(thread.join, 5)
    assert got == sent
    await asyncio.sleep(0.05)
    assert ends == [1]
    reader.close()
    ours.close()


def test_a_long_message_gathered_over_many_reads_is_copied_once_into_its_buffer() -> None:
    # At full speed a batch (~600 kB) arrives in many reads: it must not be re-copied
    # with every read (that was quadratic), and it comes out whole.
    message = bytes(range(256)) * 2_500
    stream = framed(b"x") + framed(message) + framed(b"yz")
    frames = PipeFrames()
    out: list[bytes | bytearray] = []
    for at in range(0, len(stream), 4_096):
        out.extend(frames.feed(stream[at : at + 4_096]))
        assert frames.buffered <= len(message)
    assert out == [b"x", message, b"yz"]


def test_only_asyncios_own_readers_on_a_socket_pair_are_used() -> None:
    # A loop whose readers are something else (qasync: Qt socket notifiers) and a plain
    # pipe keep the pool's reader threads.
    class OtherReaders(asyncio.SelectorEventLoop):
        def _add_reader(self, fd, callback, *args):  # type: ignore[no-untyped-def]
            return super()._add_reader(fd, callback, *args)

    ours, theirs = multiprocessing.Pipe(duplex=True)
    read_end, write_end = multiprocessing.Pipe(duplex=False)
    plain, other = asyncio.SelectorEventLoop(), OtherReaders()
    try:
        assert usable(plain, ours)
        assert not usable(other, ours)
        assert not usable(plain, read_end)
    finally:
        plain.close()
        other.close()
        for conn in (ours, theirs, read_end, write_end):
            conn.close()
