"""Every file the client reads on its own behalf refuses a FIFO or a device at once.

Each of these used to be read with ``read_bytes``/``read_text``: a FIFO there blocks
forever waiting for a writer (the adversarial pass: a hang), ``/dev/zero`` never ends.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from app.config.store import ConfigStore
from app.config.sync import SettingsSync
from app.connector.coverage import SpanBook
from app.link.gateway import GatewayClient
from app.terminal.simulated import SimulatedTerminal
from app.untrusted import JsonRefusedError, UnsafeFileError, loads_json, read_regular_file

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero"),
    pytest.mark.timeout(30),  # a regression hangs: fail fast instead
]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.json"
    os.mkfifo(path)
    return path


def test_read_regular_file_refuses_fifos_devices_and_oversize(tmp_path: Path, fifo: Path) -> None:
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    small = tmp_path / "small.json"
    small.write_bytes(b"x" * 100)
    with pytest.raises(UnsafeFileError, match="a FIFO, not a regular file"):
        read_regular_file(fifo, 1000)
    with pytest.raises(UnsafeFileError, match="a character device, not a regular file"):
        read_regular_file(zero, 1000)
    with pytest.raises(UnsafeFileError, match="100 bytes, larger than the 99 bytes allowed"):
        read_regular_file(small, 99)
    with pytest.raises(UnsafeFileError, match="a folder"):
        read_regular_file(tmp_path, 1000)
    assert read_regular_file(small, 100) == b"x" * 100


def test_loads_json_refuses_depth_and_repeated_keys_anywhere() -> None:
    assert loads_json(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    with pytest.raises(JsonRefusedError, match="nested deeper than 32 levels"):
        loads_json(b"[" * 33 + b"]" * 33)
    loads_json(b"[" * 32 + b"]" * 32)
    with pytest.raises(JsonRefusedError, match="the key 'b' appears twice"):
        loads_json(b'{"a": [{"b": 1, "b": 1}]}')
    with pytest.raises(JsonRefusedError, match="not valid JSON"):
        loads_json(b"[" * 100_000 + b"]" * 100_000)


def test_the_fault_control_file_the_span_book_and_the_sync_state_ignore_a_fifo(
    tmp_path: Path, fifo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    term = SimulatedTerminal(control_file=fifo)
    assert term.initialize()  # reads the control file: must not wait for a writer
    assert "ignoring unreadable fault control file" in caplog.text
    assert SpanBook(fifo)._saved == {}
    assert "ignoring unreadable capture spans" in caplog.text
    store = ConfigStore(tmp_path / "client-config.json")
    sync = SettingsSync(
        store, GatewayClient("http://127.0.0.1:9", "u", "p-123456"), "desk", state_path=fifo
    )
    assert sync.base_version is None
    assert "a FIFO, not a regular file" in caplog.text
