"""The encrypted file vault: round trip, format, tampering, permissions, atomicity."""

from __future__ import annotations

import json
import os
import stat
import struct
import sys
import threading
from pathlib import Path

import pytest

from app.security.audit import AuditLog
from app.security.redact import redact
from app.security.secret import Secret
from app.security.vault import (
    FORMAT_VERSION,
    MAGIC,
    WRONG_PASSWORD,
    FileVault,
    ScryptParams,
    VaultFormatError,
    VaultLocked,
    VaultUnavailable,
)
from tests.security.conftest import FAST_KDF

MASTER = Secret("master-Passw0rd-for-tests")
MT5_PW = "Mt5-Acc0unt-Pw!"
GW_PW = "Gatew@y-Pw-77"
HEADER = 42  # magic 8 + version 2 + kdf 1 + n 1 + r 1 + p 1 + salt 16 + nonce 12


def _vault(path: Path, password: Secret = MASTER, **kw: object) -> FileVault:
    return FileVault(path, password, kdf=kw.pop("kdf", FAST_KDF), **kw)  # type: ignore[arg-type]


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "vault" / "credentials.vault"
    vault = _vault(path)
    vault.set("mt5/FTMO Demo", Secret(MT5_PW))
    vault.set("gateway/alice", Secret(GW_PW))
    return path


def test_round_trip_through_a_fresh_instance(filled: Path) -> None:
    vault = _vault(filled)
    assert vault.names() == ["gateway/alice", "mt5/FTMO Demo"]
    mt5 = vault.get("mt5/FTMO Demo")
    assert isinstance(mt5, Secret)
    assert mt5.reveal() == MT5_PW
    assert vault.get("mt5/other") is None
    assert vault.delete("gateway/alice") is True
    assert vault.delete("gateway/alice") is False
    assert _vault(filled).names() == ["mt5/FTMO Demo"]
    vault.set("mt5/FTMO Demo", Secret("replaced-value"))
    assert _vault(filled).get("mt5/FTMO Demo") == Secret("replaced-value")


def test_returned_secrets_are_registered_for_redaction(filled: Path) -> None:
    secret = _vault(filled).get("gateway/alice")
    assert secret is not None
    assert redact(f"login with {secret.reveal()}") == "login with ***"


def test_file_holds_neither_names_nor_values(filled: Path) -> None:
    raw = filled.read_bytes()
    for text in (MT5_PW, GW_PW, "FTMO", "alice", "mt5/", "gateway"):
        assert text.encode() not in raw
    assert len(raw) % 256 == (HEADER + 16) % 256  # padded: the size hides the lengths


def test_missing_file_is_an_empty_vault_created_on_first_set(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "v.vault"
    vault = _vault(path)
    vault.unlock()
    assert vault.names() == []
    assert vault.get("mt5/x") is None
    assert vault.delete("mt5/x") is False
    assert not path.exists()  # reading never creates the file
    vault.set("mt5/x", Secret("value-1234"))
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["v.vault"]  # no temp file left


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_file_is_0600_even_after_a_loose_chmod(
    filled: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600
    assert stat.S_IMODE(filled.parent.stat().st_mode) == 0o700
    filled.chmod(0o644)
    vault = _vault(filled)
    assert vault.get("gateway/alice") is not None
    # Fixed before a byte of it is used, not merely warned about.
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600
    assert "other users could read it (mode 0644); made private (0600)" in caplog.text
    vault.set("mt5/new", Secret("value-5678"))
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero")
def test_a_vault_path_that_is_a_fifo_a_device_or_huge_is_refused_at_once(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo.vault"
    os.mkfifo(fifo)  # reading it used to wait forever for a writer
    zero = tmp_path / "zero.vault"
    zero.symlink_to("/dev/zero")  # reading it used to exhaust memory
    huge = tmp_path / "huge.vault"
    with huge.open("wb") as f:
        f.truncate(64 * 2**20)  # sparse: costs no disk
    reasons = {fifo: "a FIFO", zero: "a character device", huge: "larger than the 16 MiB"}
    for path, reason in reasons.items():
        with pytest.raises(VaultUnavailable, match=reason) as info:
            _vault(path).get("gateway/alice")
        assert "\n" not in str(info.value)


def test_default_kdf_is_strong_and_recorded_in_the_header(tmp_path: Path) -> None:
    path = tmp_path / "strong.vault"
    FileVault(path, MASTER).set("mt5/x", Secret("value-1234"))
    magic, version, kdf, log2_n, r, p = struct.unpack_from(">8sHBBBB", path.read_bytes())
    assert (magic, version, kdf) == (MAGIC, FORMAT_VERSION, 1)
    assert log2_n >= 15
    assert r >= 8
    assert p >= 1
    assert FileVault(path, MASTER).get("mt5/x") == Secret("value-1234")


def test_salt_is_random_and_every_write_has_a_fresh_nonce(tmp_path: Path) -> None:
    a, b = tmp_path / "a.vault", tmp_path / "b.vault"
    _vault(a).set("mt5/x", Secret("same-value"))
    _vault(b).set("mt5/x", Secret("same-value"))
    salt = slice(14, 30)
    nonce = slice(30, 42)
    assert a.read_bytes()[salt] != b.read_bytes()[salt]
    before = a.read_bytes()
    vault = _vault(a)
    vault.set("mt5/x", Secret("same-value"))
    after = a.read_bytes()
    assert after[salt] == before[salt]  # same key: no second scrypt per write
    assert after[nonce] != before[nonce]
    assert after[HEADER:] != before[HEADER:]


def test_weaker_file_is_rekeyed_on_write(tmp_path: Path) -> None:
    path = tmp_path / "v.vault"
    _vault(path).set("mt5/x", Secret("value-1234"))
    old_salt = path.read_bytes()[14:30]
    stronger = ScryptParams(log2_n=11)
    vault = _vault(path, kdf=stronger)
    assert vault.get("mt5/x") == Secret("value-1234")  # old parameters still open it
    vault.set("mt5/y", Secret("value-5678"))
    raw = path.read_bytes()
    assert raw[11] == 11
    assert raw[14:30] != old_salt
    assert _vault(path).names() == ["mt5/x", "mt5/y"]


def test_wrong_master_password_is_a_clear_error_and_changes_nothing(filled: Path) -> None:
    before = filled.read_bytes()
    vault = _vault(filled, Secret("not-the-master-password"))
    for attempt in (
        vault.unlock,
        vault.names,
        lambda: vault.get("gateway/alice"),
        lambda: vault.set("gateway/alice", Secret("overwrite!")),
        lambda: vault.delete("gateway/alice"),
    ):
        with pytest.raises(VaultLocked) as info:
            attempt()
        assert str(info.value) == f"{WRONG_PASSWORD} ({filled})"
    assert filled.read_bytes() == before


# offset -> what lives there
TAMPER_OFFSETS = {
    0: "magic",
    8: "version (high byte)",
    9: "version (low byte)",
    10: "kdf id",
    11: "log2 N",
    12: "r",
    13: "p",
    14: "salt (first)",
    29: "salt (last)",
    30: "nonce (first)",
    41: "nonce (last)",
    42: "ciphertext (first)",
    100: "ciphertext (middle)",
    -16: "tag (first)",
    -1: "tag (last)",
}


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
@pytest.mark.parametrize("offset", list(TAMPER_OFFSETS), ids=list(TAMPER_OFFSETS.values()))
def test_any_flipped_byte_is_detected(filled: Path, offset: int, mask: int) -> None:
    raw = bytearray(filled.read_bytes())
    raw[offset] ^= mask
    filled.write_bytes(bytes(raw))
    vault = _vault(filled)
    with pytest.raises(VaultLocked) as info:
        vault.get("gateway/alice")
    message = str(info.value)
    assert str(filled) in message
    if offset >= 14 or offset < 0 or (offset in (11, 12) and mask == 0x01):
        # past the header checks: only the tag can tell, and it did
        assert type(info.value) is VaultLocked
        assert WRONG_PASSWORD in message
    with pytest.raises(VaultLocked):
        vault.set("gateway/alice", Secret("not stored over a damaged file"))
    assert filled.read_bytes() == bytes(raw)  # a damaged vault is never overwritten


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:-1], id="last byte cut"),
        pytest.param(lambda b: b[:HEADER], id="header only"),
        pytest.param(lambda b: b[:5], id="five bytes"),
        pytest.param(lambda b: b"", id="empty file"),
        pytest.param(lambda b: b + b"\x00", id="byte appended"),
        pytest.param(lambda b: b"{}", id="not a vault"),
    ],
)
def test_truncated_or_foreign_file_is_never_an_empty_vault(filled: Path, damage: object) -> None:
    filled.write_bytes(damage(filled.read_bytes()))  # type: ignore[operator]
    with pytest.raises(VaultLocked):
        _vault(filled).names()


def test_unknown_version_is_named(filled: Path) -> None:
    raw = bytearray(filled.read_bytes())
    struct.pack_into(">H", raw, 8, 7)
    filled.write_bytes(bytes(raw))
    with pytest.raises(VaultFormatError, match=r"format version 7; this build reads version 1"):
        _vault(filled).names()


def test_absurd_kdf_parameters_are_refused_before_deriving(filled: Path) -> None:
    raw = bytearray(filled.read_bytes())
    raw[11] = 40  # N = 2**40 would ask for terabytes
    filled.write_bytes(bytes(raw))
    with pytest.raises(VaultFormatError, match=r"log2\(N\) must be in 10..20"):
        _vault(filled).names()


def test_new_vault_needs_a_real_master_password(tmp_path: Path) -> None:
    path = tmp_path / "v.vault"
    with pytest.raises(ValueError, match="at least 8"):
        _vault(path, Secret("short")).set("mt5/x", Secret("value-1234"))
    assert not path.exists()


@pytest.mark.parametrize(
    "name",
    ["", "mt5", "mt5/", "/x", "MT5/x", "mt5/ x", "mt5/x ", "mt5/a\nb", "hunter2-typed-here"],
)
def test_bad_names_are_refused_without_repeating_them(tmp_path: Path, name: str) -> None:
    vault = _vault(tmp_path / "v.vault")
    with pytest.raises(ValueError, match="KIND/LABEL") as info:
        vault.set(name, Secret("value-1234"))
    assert "hunter2" not in str(info.value)
    assert not (tmp_path / "v.vault").exists()


def test_empty_or_plain_values_are_refused(tmp_path: Path) -> None:
    vault = _vault(tmp_path / "v.vault")
    with pytest.raises(ValueError, match="empty"):
        vault.set("mt5/x", Secret(""))
    with pytest.raises(TypeError, match="Secret"):
        vault.set("mt5/x", "plain-string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Secret"):
        FileVault(tmp_path / "v.vault", "plain-master")  # type: ignore[arg-type]


def test_repr_shows_no_password(tmp_path: Path) -> None:
    vault = _vault(tmp_path / "v.vault")
    assert MASTER.reveal() not in repr(vault)
    assert MASTER.reveal() not in repr(vars(vault) if hasattr(vault, "__dict__") else vault)


def test_threads_writing_one_vault_lose_nothing(tmp_path: Path) -> None:
    vault = _vault(tmp_path / "v.vault")
    vault.set("mt5/seed", Secret("value-0000"))
    names = [f"mt5/T{i}" for i in range(16)]
    threads = [threading.Thread(target=vault.set, args=(n, Secret(f"value-{n}"))) for n in names]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert _vault(tmp_path / "v.vault").names() == sorted([*names, "mt5/seed"])


def test_operations_are_audited_without_secrets(filled: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log, fsync=False)
    vault = _vault(filled, audit=audit)
    vault.get("gateway/alice")
    vault.get("mt5/none")
    vault.set("mt5/new", Secret("New-Value-999"))
    vault.delete("mt5/new")
    vault.delete("mt5/new")
    vault.names()
    with pytest.raises(VaultLocked):
        _vault(filled, Secret("wrong-password"), audit=audit).get("gateway/alice")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["action"], e["subject"], e["outcome"]) for e in entries] == [
        ("credential.read", "gateway/alice", "success"),
        ("credential.read", "mt5/none", "not_found"),
        ("credential.write", "mt5/new", "success"),
        ("credential.delete", "mt5/new", "success"),
        ("credential.delete", "mt5/new", "not_found"),
        ("credential.list", "*", "success"),
        ("credential.read", "gateway/alice", "failure"),
    ]
    assert entries[-1]["reason"].startswith(WRONG_PASSWORD)
    assert all(e["backend"] == "file" for e in entries)
    raw = log.read_text()
    for leaked in (GW_PW, "New-Value-999", MASTER.reveal(), "wrong-password"):
        assert leaked not in raw


def test_every_write_replaces_the_file_instead_of_rewriting_it(filled: Path) -> None:
    """A new inode per write is what makes a crash leave the old or the new file whole;
    a leftover temp file of a crashed write does not disturb reading."""
    before = filled.stat().st_ino
    (filled.parent / f".{filled.name}.crashed.tmp").write_bytes(b"half a vault")
    vault = _vault(filled)
    vault.set("mt5/x", Secret("value-1234"))
    assert filled.stat().st_ino != before
    assert _vault(filled).get("mt5/x") == Secret("value-1234")


def test_atomic_write_leaves_the_old_vault_when_replacing_fails(filled: Path) -> None:
    """A write that cannot complete (here: the folder is read-only, as on a full or
    failing disk) leaves the previous vault intact and no temp file behind."""
    if sys.platform == "win32" or os.geteuid() == 0:
        pytest.skip("needs POSIX permissions that bind the current user (not root)")
    before = filled.read_bytes()
    filled.parent.chmod(0o500)
    try:
        with pytest.raises(Exception, match="cannot write the vault file"):
            _vault(filled).set("mt5/x", Secret("value-1234"))
    finally:
        filled.parent.chmod(0o700)
    assert filled.read_bytes() == before
    assert [p.name for p in filled.parent.iterdir()] == [filled.name]
