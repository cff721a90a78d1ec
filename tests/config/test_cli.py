"""``config`` actions as a user runs them: a real process, real files, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ClientConfig, parse_config
from app.config.cli import add_config_parser, main, run_config
from app.config.store import ConfigStore

ROOT = Path(__file__).resolve().parents[2]


def config_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.config.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_a_bad_file_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pool": {"size": 0, "sise": 1}}))
    result = config_cli("validate", str(bad))
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == [
        f"{bad}: pool.size: 0 is below the minimum 1",
        f"{bad}: pool.sise: unknown setting",
    ]
    assert "Traceback" not in result.stderr


def test_validate_a_good_file_says_ok(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"pool": {"size": 3}}')
    result = config_cli("--config", str(good), "validate")  # the settings file itself
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_path_is_the_per_user_default(tmp_path: Path) -> None:
    result = config_cli("path")
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "trading-client" / "client-config.json"
    assert (result.returncode, result.stdout) == (0, f"{expected}\n"), result.stderr
    assert not expected.exists()  # asking where it is does not create it


def test_backups_and_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "client-config.json"
    store = ConfigStore(path)
    for n in (2, 3, 4):
        store.save(ClientConfig.model_validate({"pool": {"size": n}}))
    store.backup_dir.joinpath(store.backups()[0].path.name).write_text("{broken")

    assert main(["backups", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1"]
    assert "INVALID" in lines[0]
    assert " valid " in lines[1]

    assert main(["--config", str(path), "rollback", "5"]) == 2
    assert "there is no backup 5" in capsys.readouterr().err
    assert main(["--config", str(path), "rollback", "0"]) == 2  # the broken one
    assert "not valid JSON" in capsys.readouterr().err

    assert main(["--config", str(path), "rollback", "1"]) == 0
    assert capsys.readouterr().out.startswith("restored backup 1 (")
    assert parse_config(path.read_bytes()).pool.size == 2


def test_show_prints_the_effective_settings_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "client-config.json"
    path.write_text('{"pool": {"size": 0}}')
    assert main(["show", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert parse_config(out) == ClientConfig()
    assert f"warning: {path}: pool.size: 0 is below the minimum 1" in err.splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client-config.json"]


def test_the_lead_can_wire_it_as_a_subcommand(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="trading-client")
    add_config_parser(parser.add_subparsers(dest="command"))
    good = tmp_path / "c.json"
    good.write_text("{}")
    args = parser.parse_args(["config", "--config", str(good), "validate"])
    assert args.command == "config"
    assert run_config(args) == 0


@pytest.mark.parametrize(
    ("field", "url", "problem"),
    [
        ("bridge_url", "ws//localhost:3001/ws", "is not a ws:// or wss:// URL"),
        ("bridge_url", "http://localhost:3001/ws", "is not a ws:// or wss:// URL"),
        ("bridge_url", "ws://:3001/ws", "has no host"),
        ("hub_url", "http://localhost:99999", "has no valid port"),
        ("gateway_url", "ws://localhost:8000", "is not a http:// or https:// URL"),
    ],
)
def test_a_url_the_client_cannot_connect_to_is_refused(field: str, url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_config(json.dumps({"backend": {field: url}}).encode())


def test_validate_names_a_mistyped_bridge_url_in_one_line(tmp_path: Path) -> None:
    """``ws//…`` used to pass validate; ``run`` then exited 0 having delivered nothing."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"backend": {"bridge_url": "ws//localhost:3001/ws"}}))
    result = config_cli("validate", str(bad))
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == [
        f"{bad}: backend.bridge_url: 'ws//localhost:3001/ws' is not a ws:// or wss:// URL "
        "(e.g. ws://localhost:3001/ws)"
    ]
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"backend": {"hub_url": "http://me:hunter2@localhost:7000"}}))
    result = config_cli("validate", str(secret))
    assert result.returncode == 2
    assert "hunter2" not in result.stdout + result.stderr
    assert "must not carry a user or password" in result.stdout


def test_an_endpoint_url_with_a_password_is_refused_without_echoing_it() -> None:
    from app.config.schema import check_endpoint_url  # noqa: PLC0415

    # A password holding "#" or "?" turns the rest into a fragment or a query.
    for url, schemes, secret in (
        ("http://alice:pw#x@127.0.0.1:8000", ("http", "https"), "pw#x"),
        ("ws://a:b?c@host:3001/ws", ("ws", "wss"), "b?c"),
    ):
        with pytest.raises(ValueError, match="must not carry a user or password") as caught:
            check_endpoint_url(url, schemes)
        assert secret not in str(caught.value)
