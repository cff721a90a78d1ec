"""``backend`` as a user runs it: a real subprocess, real signals, real ports."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.protocol.codec import DEFAULT_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES
from app.server.cli import add_backend_parser
from tests.server.conftest import (
    hello,
    messages,
    new_session,
    open_ws,
    send_ticks,
    wait_ack,
)

CLI = [sys.executable, "-m", "app.server.cli", "backend"]
EPHEMERAL = ["--bridge-port", "0", "--gateway-port", "0", "--hub-port", "0"]
URLS = re.compile(r"bridge (ws://\S+/ws)\s+gateway (http://\S+)\s+hub (http://\S+)")

pytestmark = pytest.mark.timeout(60)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="trading-client")
    add_backend_parser(top.add_subparsers(dest="command"))
    return top


def test_the_parser_takes_db_before_or_after_stats() -> None:
    args = parser().parse_args(["backend", "--db", "a.sqlite", "stats"])
    assert (args.command, args.backend_command, args.db) == ("backend", "stats", Path("a.sqlite"))
    args = parser().parse_args(["backend", "stats", "--db", "b.sqlite"])
    assert (args.backend_command, args.db) == ("stats", Path("b.sqlite"))
    args = parser().parse_args(["backend", "--bridge-port", "0"])
    assert (args.backend_command, args.bridge_port, args.gateway_port, args.hub_port) == (
        None,
        0,
        8000,
        7000,
    )
    assert args.host == "127.0.0.1"


async def test_backend_prints_its_urls_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite"
    added = subprocess.run(
        [*CLI, "users", "--db", str(db), "add", "desk", "--client", "desk-cli"],
        input="pw-of-desk\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    assert "pw-of-desk" not in (tmp_path / "cli.sqlite.users.json").read_text()
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *EPHEMERAL,
        "--db",
        str(db),
        "--max-frame-bytes",
        "1048576",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()  # type: ignore[union-attr]
        match = URLS.search(line)
        assert match, line
        bridge, gateway, hub = match.groups()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{gateway}/health")).json()["service"] == "gateway"
            assert (await http.get(f"{hub}/health")).json()["service"] == "hub"
        async with open_ws(bridge) as ws:
            welcome = await hello(ws, "desk-cli", new_session(), credential="desk:pw-of-desk")
            assert welcome.max_frame_bytes == 1048576
            await send_ticks(ws, 1, messages(1)[0])
            await wait_ack(ws, 1)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
    assert "Traceback" not in stderr, stderr

    stats = subprocess.run(
        [*CLI, "stats", "--db", str(db)], capture_output=True, text=True, timeout=30, check=False
    )
    assert stats.returncode == 0, stats.stderr
    doc = json.loads(stats.stdout)
    assert doc["batches_stored"] == 1
    assert doc["sessions"][0]["client_id"] == "desk-cli"


def test_a_port_in_use_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [*CLI, *EPHEMERAL, "--gateway-port", port, "--db", str(tmp_path / "x.sqlite")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the reference backend could not start")
    assert port in lines[0]
    assert result.stdout == ""


def test_stats_of_a_missing_database_is_exit_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "stats", "--db", str(tmp_path / "none.sqlite")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: no backend database at {tmp_path / 'none.sqlite'}"


def test_the_parser_takes_a_frame_limit() -> None:
    args = parser().parse_args(["backend", "--max-frame-bytes", "65536"])
    assert args.max_frame_bytes == 65536
    assert parser().parse_args(["backend"]).max_frame_bytes == DEFAULT_MAX_FRAME_BYTES


def test_a_frame_limit_below_the_minimum_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    result = subprocess.run(
        [*CLI, *EPHEMERAL, "--max-frame-bytes", str(MIN_MAX_FRAME_BYTES - 1), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --max-frame-bytes {MIN_MAX_FRAME_BYTES - 1} is below the protocol's "
        f"minimum of {MIN_MAX_FRAME_BYTES} bytes"
    )
    assert result.stdout == ""
    assert not db.exists()
