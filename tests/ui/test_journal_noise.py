"""The Journal of a running app holds events, not traffic: no HTTP access line and no
hub heartbeat at Info (issue 15: one of each every 5 s drowned everything else)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.config.store import ConfigStore
from app.journal import Journal, install_journal
from app.logfiles import TRAFFIC_LOGGERS, demote_traffic_logs
from app.session import DesktopSession
from tests.conftest import wait_until


@pytest.fixture
def journal() -> Iterator[Journal]:
    """The journal on the root logger at INFO before capture starts, as the window does."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    journal = Journal()
    install_journal(journal)
    try:
        yield journal
    finally:
        root.removeHandler(journal)
        root.setLevel(level)


def _traffic(source: str, message: str) -> bool:
    """A per-request line: an access log or HTTP client line, or a heartbeat's."""
    return source in ("aiohttp.access", "httpx") or "/heartbeat" in message


async def test_a_minute_of_running_leaves_no_traffic_line_at_info(
    ui_store: ConfigStore, journal: Journal
) -> None:
    # Heartbeats every 0.5 s (the test settings): 12 of them are a minute of the
    # default 5 s interval, in 6 s.
    session = DesktopSession(ui_store, journal=journal)
    await session.start()
    try:
        runtime = session.runtime
        assert runtime is not None
        assert runtime.hub is not None
        hub = runtime.hub
        await wait_until(lambda: hub.state.registered, 30, "the hub registration")
        start = hub.state.attempts
        await wait_until(lambda: hub.state.attempts >= start + 12, 60, "12 heartbeats")
    finally:
        await session.stop()
    entries = journal.after(0)
    assert any("registered" in e.message for e in entries), "the journal saw the run"
    noise = [
        f"{e.level_name} {e.source}: {e.message}"
        for e in entries
        if e.level >= logging.INFO and _traffic(e.source, e.message)
    ]
    assert not noise, "\n".join(noise[:10])


def test_with_debug_on_the_traffic_lines_are_there_at_debug(journal: Journal) -> None:
    demote_traffic_logs()
    logging.getLogger().setLevel(logging.DEBUG)
    for name in TRAFFIC_LOGGERS:
        logging.getLogger(name).info("POST /api/services/x/heartbeat 200")
        logging.getLogger(name).warning("a refused request stays a warning")
    levels = {(e.source, e.level_name) for e in journal.after(0)}
    for name in TRAFFIC_LOGGERS:
        assert (name, "DEBUG") in levels
        assert (name, "WARNING") in levels
        assert (name, "INFO") not in levels
