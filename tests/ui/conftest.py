"""GUI tests: the real window and panels on a qasync loop, offscreen.

``pytest_asyncio_loop_factories`` makes pytest-asyncio run every async test in this
folder on a :class:`qasync.QEventLoop`, so awaiting the core and Qt timers share one
loop exactly as in the application. Qt warnings fail a test (``qt_log_level_fail`` in
pyproject.toml); widgets left open and threads left running fail it too.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.ports import free_ports
from app.session import DesktopSession
from tests.conftest import wait_until_sync
from ui.loop import GuiEventLoop


def _qasync_loop() -> asyncio.AbstractEventLoop:
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    # As in the application (ui/main.py): closing a window must not stop the loop.
    app.setQuitOnLastWindowClosed(False)
    return GuiEventLoop(app)


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    return {"qasync": _qasync_loop}


def ui_config_document(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """Settings for a window under test: the embedded default (simulated terminal and
    reference backend in-process) on free loopback ports, files under ``tmp_path``, a
    file vault, and short back-off so restarts are quick."""
    bridge, gateway, hub = free_ports(3)
    doc: dict[str, Any] = {
        "terminals": [
            {
                "symbols": ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"],
                "seed": 7,
                "control_file": str(tmp_path / "terminal-control.json"),
                # Quotes for every symbol whatever the day (sessions: test_market_watch_sessions).
                "market_hours": "always",
            }
        ],
        "pool": {"size": 5, "backoff": {"initial_s": 0.5, "maximum_s": 2.0}},
        # ... and the window counts every market open (no row reads "closed").
        "sessions": {"enabled": False},
        "cache": {"ticks_per_symbol": 20000},
        "security": {"vault": "file", "vault_file": str(tmp_path / "credentials.vault")},
        "backend": {
            "bridge_url": f"ws://127.0.0.1:{bridge}/ws",
            "gateway_url": f"http://127.0.0.1:{gateway}",
            "hub_url": f"http://127.0.0.1:{hub}",
            "client_id": "ui-test",
            "embedded": "always",
            "embedded_db": str(tmp_path / "backend.sqlite"),
            "spool_dir": str(tmp_path / "spool"),
            "hub_heartbeat_s": 0.5,
            "backoff": {"initial_s": 0.1, "maximum_s": 0.5},
        },
    }
    for key, value in overrides.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return doc


@pytest.fixture
def ui_store(tmp_path: Path) -> ConfigStore:
    """A settings file holding :func:`ui_config_document` (written like a saved file)."""
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(ui_config_document(tmp_path)))
    return store


@pytest.fixture
async def session(ui_store: ConfigStore) -> AsyncIterator[DesktopSession]:
    """A running session: five simulated workers streaming into the embedded backend."""
    s = DesktopSession(ui_store)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture(autouse=True)
def _no_leaks(qapp: QApplication) -> Iterator[None]:
    """Every widget a test opened is closed and deleted, and its threads are gone."""
    threads_before = {t.ident for t in threading.enumerate()}
    yield
    for w in QApplication.topLevelWidgets():
        if w.isVisible():
            w.close()
        w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    QApplication.processEvents()
    gc.collect()
    left = [w for w in QApplication.topLevelWidgets() if w.objectName() != "qt_tooltip_label"]
    assert not left, f"widgets left open: {[type(w).__name__ for w in left]}"

    def extra_threads() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if t.ident not in threads_before and not t.daemon and t.is_alive()
        ]

    wait_until_sync(lambda: not extra_threads(), 30, "the test's threads to end")
