"""``credentials`` as a user runs it: real subprocesses, real files, a real terminal."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.security.audit import default_audit_path
from app.security.cli import ENV_MASTER_PASSWORD, add_credentials_parser, run_credentials
from app.security.secret import Secret
from app.security.vault import FileVault, default_vault_path
from tests.security.conftest import MemoryKeyring

ROOT = Path(__file__).resolve().parents[2]
MASTER = "Master-Pa55word-CLI"
MT5_PW = "Mt5-Secret-Value-1"
GW_PW = "Gw-Secret-Value-2"
LIVE_PW = "Live-Secret-Value-3"
ARGV_PW = "Argv-Secret-Value-4"


def cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.security.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def _audit() -> list[dict[str, object]]:
    return [json.loads(line) for line in default_audit_path().read_text().splitlines()]


def _encodings(secret: str) -> list[bytes]:
    """The forms a careless write could leave a secret in."""
    raw = secret.encode()
    return [raw, secret.encode("utf-16-le"), base64.b64encode(raw), raw.hex().encode()]


@pytest.mark.slow
def test_secrets_stored_through_the_cli_appear_nowhere(temp_home: Path, tmp_path: Path) -> None:
    other_vault = tmp_path / "elsewhere" / "creds.vault"
    debug = ("--log-level", "DEBUG")
    runs = [
        cli(*debug, "credentials", "set", "mt5/FTMO Demo", stdin=f"{MASTER}\n{MT5_PW}\n"),
        cli("credentials", "set", "gateway/alice", stdin=f"{MASTER}\r\n{GW_PW}\r\n"),
        cli(*debug, "credentials", "list", stdin=f"{MASTER}\n"),
        cli("credentials", "list", stdin="Wrong-Master-Pw\n"),
        cli(
            "credentials", "set", "mt5/Live", "--vault-file", str(other_vault),
            stdin=f"{LIVE_PW}\n", env={ENV_MASTER_PASSWORD: MASTER},
        ),
        cli("credentials", "delete", "gateway/alice", stdin=f"{MASTER}\n"),
        cli("credentials", "set", "mt5/argv", ARGV_PW, stdin=f"{MASTER}\n"),
    ]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 0, 0, 2, 0, 0, 2], [r.stderr for r in runs]
    assert runs[2].stdout.splitlines() == ["gateway/alice", "mt5/FTMO Demo"]

    secrets = [MASTER, MT5_PW, GW_PW, LIVE_PW, ARGV_PW]
    for run in runs:
        for secret in secrets[:4]:  # the argv one is in the command line itself
            assert secret not in run.stdout + run.stderr
        assert ARGV_PW not in run.stdout + run.stderr
        assert "Traceback" not in run.stderr

    files = [p for top in (temp_home, tmp_path) for p in top.rglob("*") if p.is_file()]
    assert default_vault_path() in files
    assert other_vault in files
    assert default_audit_path() in files
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            for form in _encodings(secret):
                assert form not in data, f"{secret!r} found in {path}"

    # every command left a record, each from its own process
    entries = _audit()
    assert len({e["pid"] for e in entries}) == len(runs)
    assert FileVault(default_vault_path(), Secret(MASTER)).get("mt5/FTMO Demo") == Secret(MT5_PW)
    assert FileVault(other_vault, Secret(MASTER)).names() == ["mt5/Live"]


def test_secret_on_the_command_line_is_refused_and_not_echoed() -> None:
    trailing = cli("credentials", "set", "mt5/Demo", ARGV_PW)
    as_option = cli("credentials", "set", f"--password={ARGV_PW}", "mt5/Demo")
    for result in (trailing, as_option):
        assert result.returncode == 2
        assert "usage:" in result.stderr
        assert ARGV_PW not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert "never given as an argument" in trailing.stderr
    assert not default_vault_path().exists()  # nothing stored, no prompt was needed
    (entry,) = _audit()  # argparse itself refused the second: no command ran
    assert (entry["action"], entry["subject"], entry["outcome"]) == (
        "credential.write",
        "mt5/Demo",
        "failure",
    )


def test_refused_even_under_a_plain_top_level_parser(tmp_path: Path) -> None:
    """``app/cli.py`` may wire the command into an ordinary ArgumentParser: the most
    common slip, a secret after NAME, must still not be echoed."""
    parser = argparse.ArgumentParser(prog="trading-client")
    add_credentials_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["credentials", "set", "mt5/Demo", "--no-keyring", ARGV_PW])
    err = io.StringIO()
    status = run_credentials(args, stdin=io.StringIO(""), env={}, err=err, out=io.StringIO())
    assert status == 2
    assert "usage: trading-client credentials set" in err.getvalue()
    assert ARGV_PW not in err.getvalue()


def test_wrong_master_password_and_damaged_file_are_one_clear_line() -> None:
    assert cli("credentials", "set", "mt5/a", stdin=f"{MASTER}\nvalue-aaaa\n").returncode == 0
    wrong = cli("credentials", "set", "mt5/b", stdin="Not-The-Master\nvalue-bbbb\n")
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines() == [
        f"error: wrong master password, or the vault file was changed ({default_vault_path()})"
    ]
    raw = bytearray(default_vault_path().read_bytes())
    raw[50] ^= 0x40
    default_vault_path().write_bytes(bytes(raw))
    damaged = cli("credentials", "list", stdin=f"{MASTER}\n")
    assert damaged.returncode == 2
    assert len(damaged.stderr.splitlines()) == 1
    assert "wrong master password, or the vault file was changed" in damaged.stderr


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trading-client")
    add_credentials_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["credentials", *argv])


def _run(*argv: str, stdin: str = "", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_credentials(
        _args(*argv), stdin=io.StringIO(stdin), env=env if env is not None else {}, out=out, err=err
    )
    return status, out.getvalue(), err.getvalue()


def test_env_master_password_is_used_then_dropped(tmp_path: Path) -> None:
    env = {ENV_MASTER_PASSWORD: MASTER, "OTHER": "kept"}
    vault = tmp_path / "v.vault"
    status, out, _ = _run("set", "mt5/x", "--vault-file", str(vault), stdin="value-xxxx\n", env=env)
    assert status == 0
    assert out == f"stored mt5/x in the encrypted file {vault}\n"
    assert env == {"OTHER": "kept"}  # not inherited by anything this process starts
    assert FileVault(vault, Secret(MASTER)).get("mt5/x") == Secret("value-xxxx")


def test_missing_entries_and_empty_lists(tmp_path: Path) -> None:
    status, out, err = _run("--no-keyring", "list", stdin=f"{MASTER}\n")
    assert (status, out) == (0, "")
    assert "(no credentials in the encrypted file" in err
    status, _, err = _run("delete", "mt5/nothing", "--no-keyring", stdin=f"{MASTER}\n")
    assert status == 1
    assert err.startswith("error: no credential named mt5/nothing in")
    assert [e["outcome"] for e in _audit()] == ["success", "not_found"]


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "expected the master password for the new vault"),
        (f"{MASTER}\n", "expected the secret for mt5/x as a line on stdin"),
        (f"{MASTER}\n\n", "the secret for mt5/x is empty"),
        (f"{MASTER}\nvalue-1\nvalue-2\n", "stdin has more lines than expected"),
        ("short\nvalue-1234\n", "at least 8 characters"),
    ],
)
def test_bad_stdin_is_refused_and_nothing_is_stored(stdin: str, message: str) -> None:
    status, out, err = _run("set", "mt5/x", stdin=stdin)
    assert status == 2
    assert message in err
    assert out == ""
    assert not default_vault_path().exists()
    (entry,) = _audit()
    assert entry["outcome"] == "failure"
    assert "value-" not in json.dumps(entry)


def test_keyring_needs_no_master_password(memory_keyring: MemoryKeyring) -> None:
    status, out, _ = _run("set", "gateway/bob", stdin="Bob-Pw-1234\n")
    assert status == 0
    assert out.startswith("stored gateway/bob in the system keyring")
    assert memory_keyring.entries[("trading-client", "gateway/bob")] == "Bob-Pw-1234"
    # a script written for the file vault (two lines) must not store the master password
    status, _, err = _run("set", "gateway/bob", stdin=f"{MASTER}\nBob-Pw-5678\n")
    assert status == 2
    assert "more lines than expected" in err
    assert memory_keyring.entries[("trading-client", "gateway/bob")] == "Bob-Pw-1234"
    assert _run("list") == (0, "gateway/bob\n", "")
    assert not default_vault_path().exists()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
@pytest.mark.slow
def test_terminal_prompts_are_hidden(tmp_path: Path) -> None:
    import pty  # noqa: PLC0415 -- POSIX only

    vault = tmp_path / "tty.vault"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.security.cli", "credentials", "set", "mt5/Pty",
         "--vault-file", str(vault)],
        stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
        start_new_session=True,  # no controlling terminal: getpass must use this pty
    )  # fmt: skip
    os.close(slave)
    transcript = b""  # everything the terminal showed

    def expect(prompt: str) -> None:
        nonlocal transcript
        start = len(transcript)
        deadline = time.monotonic() + 30
        while prompt.encode() not in transcript[start:]:
            assert time.monotonic() < deadline, f"no prompt {prompt!r}; got {transcript!r}"
            if select.select([master], [], [], 0.1)[0]:
                transcript += os.read(master, 4096)

    for prompt, answer in [
        (f"Master password for the new vault {vault}: ", MASTER),
        (f"Master password for the new vault {vault} (again): ", MASTER),
        ("Secret for mt5/Pty: ", MT5_PW),
        ("Secret for mt5/Pty (again): ", MT5_PW),
    ]:
        expect(prompt)
        os.write(master, answer.encode() + b"\n")
    assert proc.wait(timeout=30) == 0
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        transcript += chunk
    os.close(master)
    text = transcript.decode(errors="replace")
    assert text.count("Master password for the new vault") == 2
    assert "stored mt5/Pty in the encrypted file" in text
    assert MASTER not in text  # typed, but never echoed
    assert MT5_PW not in text
    assert FileVault(vault, Secret(MASTER)).get("mt5/Pty") == Secret(MT5_PW)
