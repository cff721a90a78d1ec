"""The keyring vault against real keyring backends, and how open_vault chooses."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import pytest

from app.security.audit import AuditLog
from app.security.redact import redact
from app.security.secret import Secret
from app.security.vault import (
    INDEX_ENTRY,
    SERVICE,
    FileVault,
    KeyringVault,
    VaultUnavailable,
    keyring_status,
    open_vault,
)
from tests.security.conftest import FAST_KDF, MemoryKeyring


class LockedKeyring(MemoryKeyring):
    """A recommended backend whose store refuses to open (a locked Secret Service)."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the collection is locked")


class QuotingKeyring(MemoryKeyring):
    """A backend that puts the value it failed to store into its error message."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"cannot store {password!r} for {username}")


class Provider:
    """Hands out a master password and counts how often it was asked."""

    def __init__(self, password: str = "master-Passw0rd-x") -> None:
        self.password = password
        self.calls = 0

    def __call__(self) -> Secret:
        self.calls += 1
        return Secret(self.password)


def test_round_trip_and_index(memory_keyring: MemoryKeyring) -> None:
    vault = KeyringVault()
    vault.set("mt5/FTMO Demo", Secret("Mt5-Pw-1"))
    vault.set("gateway/alice", Secret("Gw-Pw-2"))
    vault.set("mt5/FTMO Demo", Secret("Mt5-Pw-3"))  # replaced, listed once
    assert vault.names() == ["gateway/alice", "mt5/FTMO Demo"]
    assert vault.get("mt5/FTMO Demo") == Secret("Mt5-Pw-3")
    assert vault.get("mt5/none") is None
    assert memory_keyring.entries[(SERVICE, "gateway/alice")] == "Gw-Pw-2"
    index = json.loads(memory_keyring.entries[(SERVICE, INDEX_ENTRY)])
    assert index == ["gateway/alice", "mt5/FTMO Demo"]
    assert vault.delete("gateway/alice") is True
    assert vault.delete("gateway/alice") is False
    assert (SERVICE, "gateway/alice") not in memory_keyring.entries
    assert KeyringVault().names() == ["mt5/FTMO Demo"]
    assert "the system keyring" in vault.location
    assert redact("Mt5-Pw-3") == "***"  # what the vault returned is redacted from now on


def test_damaged_index_is_rebuilt_and_secrets_stay_readable(
    memory_keyring: MemoryKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    vault = KeyringVault()
    vault.set("mt5/a", Secret("value-aaaa"))
    memory_keyring.entries[(SERVICE, INDEX_ENTRY)] = "{not json"
    assert vault.names() == []
    assert "index is damaged" in caplog.text
    assert vault.get("mt5/a") == Secret("value-aaaa")
    vault.set("mt5/b", Secret("value-bbbb"))
    assert vault.names() == ["mt5/b"]


def test_status_of_real_backends() -> None:
    assert keyring_status(MemoryKeyring()).usable
    fail = keyring_status(keyring.backends.fail.Keyring())
    assert not fail.usable
    assert "no keyring backend" in fail.reason
    null = keyring_status(keyring.backends.null.Keyring())
    assert not null.usable
    assert "not a recommended backend" in null.reason
    locked = keyring_status(LockedKeyring())
    assert not locked.usable
    assert "KeyringLocked" in locked.reason
    assert keyring_status(LockedKeyring(), probe=False).usable


def test_chainer_without_backends_is_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring.backend, "_limit", lambda kr: False)  # keyring's own filter
    status = keyring_status(keyring.backends.chainer.ChainerBackend())
    assert not status.usable
    assert "chainer has no backends" in status.reason


def test_unusable_keyring_is_reported_at_construction() -> None:
    with pytest.raises(VaultUnavailable, match="system keyring cannot be used: no keyring"):
        KeyringVault()  # the autouse fixture installed keyring's fail backend


def test_backend_errors_are_wrapped_and_redacted(tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    vault = KeyringVault(QuotingKeyring(), audit=AuditLog(audit_path))
    with pytest.raises(VaultUnavailable) as info:
        vault.set("mt5/x", Secret("Quoted-Secret-77"))
    assert "Quoted-Secret-77" not in str(info.value)
    assert "PasswordSetError" in str(info.value)
    assert "Quoted-Secret-77" not in audit_path.read_text()
    assert json.loads(audit_path.read_text())["outcome"] == "failure"


def test_open_vault_prefers_a_usable_keyring_and_never_asks(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    provider = Provider()
    vault = open_vault(file_path=tmp_path / "v.vault", master_password_provider=provider)
    assert isinstance(vault, KeyringVault)
    assert provider.calls == 0
    vault.set("mt5/x", Secret("value-1234"))
    assert not (tmp_path / "v.vault").exists()


def test_open_vault_falls_back_to_the_file_and_asks_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.security.vault")
    provider = Provider()
    vault = open_vault(
        file_path=tmp_path / "v.vault", master_password_provider=provider, kdf=FAST_KDF
    )
    assert isinstance(vault, FileVault)
    assert provider.calls == 1
    assert "not using the system keyring: no keyring backend" in caplog.text
    vault.set("mt5/x", Secret("value-1234"))
    vault.get("mt5/x")
    assert provider.calls == 1


def test_open_vault_uses_the_file_when_told_to(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    provider = Provider()
    vault = open_vault(
        prefer_keyring=False,
        file_path=tmp_path / "v.vault",
        master_password_provider=provider,
        kdf=FAST_KDF,
    )
    assert isinstance(vault, FileVault)
    assert provider.calls == 1


def test_open_vault_without_keyring_or_provider_says_so(tmp_path: Path) -> None:
    with pytest.raises(VaultUnavailable, match="no way to ask for the master password"):
        open_vault(file_path=tmp_path / "v.vault")


def test_keyring_operations_are_audited(memory_keyring: MemoryKeyring, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    vault = KeyringVault(audit=AuditLog(log, fsync=False))
    vault.set("gateway/bob", Secret("Bob-Pw-123"))
    vault.get("gateway/bob")
    vault.names()
    vault.delete("gateway/bob")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["action"], e["outcome"], e["backend"]) for e in entries] == [
        ("credential.write", "success", "keyring"),
        ("credential.read", "success", "keyring"),
        ("credential.list", "success", "keyring"),
        ("credential.delete", "success", "keyring"),
    ]
    assert "Bob-Pw-123" not in log.read_text()
