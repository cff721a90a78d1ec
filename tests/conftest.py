"""Shared helpers: wait for states, never for fixed sleeps."""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import prestart

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the project's modules once, up front. Hundreds of tests start
    ``python -m app`` (and its workers): with ``PYTHONDONTWRITEBYTECODE`` set, as on some
    machines, each of them compiled every module of the app again (a third of a CLI
    start); a bytecode cache that exists is read either way. Writes only ``__pycache__``
    folders (ignored by git)."""
    for package in ("app", "ui", "trading_client"):
        compileall.compile_dir(ROOT / package, quiet=1, workers=0)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the commands that selected tests marked ``prestart(name)`` will wait for
    (their module's ``PRESTART[name]`` gives the command): see tests/prestart.py."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        for mark in item.iter_markers("prestart"):
            commands = getattr(getattr(item, "module", None), "PRESTART", {})
            try:
                cmd = commands[mark.args[0]]()
            except BaseException:
                continue
            prestart.prestart(mark.args[0], cmd, cwd=ROOT)


def pytest_sessionfinish(session: pytest.Session) -> None:
    prestart.stop_all()


async def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 60.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` on the running loop until it holds, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def wait_until_sync(
    predicate: Callable[[], bool],
    timeout: float = 60.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` until it holds, or fail naming ``what`` (a longer ``interval``
    for a predicate that is itself expensive)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _private_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the user's data and cache folders out of reach: the embedded backend's
    database and the link's spool go to a temporary home (subprocesses inherit it)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))


@pytest.fixture(autouse=True)
def _fresh_redaction_registry() -> None:
    """Secrets registered for redaction by one test (gateway passwords, tokens) must not
    blank words out of another test's expected text."""
    from app.security.redact import REGISTRY  # noqa: PLC0415 - only for this fixture

    REGISTRY.clear()


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "1m") mounted on ``where``/mnt for a full-disk test;
    skipped with the reason where mounting is not permitted (not Linux, not root)."""
    if sys.platform != "linux":
        pytest.skip("mounting a tmpfs needs Linux")
    mnt = where / "mnt"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
