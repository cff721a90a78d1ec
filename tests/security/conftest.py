"""Fixtures for the security tests: no real keyring, no real home, cheap scrypt.

The root conftest points XDG_DATA/CACHE/CONFIG_HOME at a temporary home; the audit log
lives under XDG_STATE_HOME (platformdirs' log folder on Linux), so that is moved too.
A developer's real keyring must never be touched: every test starts with keyring's
``fail`` backend (nothing usable), and subprocesses get the same through
``PYTHON_KEYRING_BACKEND``. Tests that want a keyring install an in-memory one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from app.security.vault import ScryptParams

#: scrypt at the lowest cost the vault accepts: the format and the logic are what these
#: tests check, not the strength (one test checks the default separately).
FAST_KDF = ScryptParams(log2_n=10, r=8, p=1)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps entries in a dict: what keyring's own tests
    use for a store without an OS behind it."""

    priority = 1.0  # type: ignore[assignment]  # "recommended", like an OS backend

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.entries[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("no such entry") from None


@pytest.fixture(autouse=True)
def _no_real_keyring_or_home(
    _private_user_dirs: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = Path(os.environ["XDG_DATA_HOME"]).parent
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("TRADING_CLIENT_MASTER_PASSWORD", raising=False)
    previous = keyring.core._keyring_backend
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        # Never None afterwards: detection could now pick a test backend defined here.
        keyring.set_keyring(previous or keyring.backends.fail.Keyring())


@pytest.fixture
def temp_home() -> Path:
    """The temporary home every XDG folder of this test points into."""
    return Path(os.environ["XDG_DATA_HOME"]).parent


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend
