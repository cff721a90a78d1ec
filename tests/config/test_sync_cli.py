"""``trading-client config sync`` end to end: vault login, the reference gateway, a
conflict shown side by side, and a resolution — all through the real command line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.link.gateway import GatewayClient
from app.server.server import ReferenceBackend
from tests.server.conftest import add_user

pytestmark = pytest.mark.slow


async def cli(*args: str, stdin: str = "", env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_config_sync_pushes_then_shows_a_conflict_and_takes_the_remote(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": "master-pass-123"}
    add_user(tmp_path / "b.sqlite", admin=True)
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "b.sqlite"
    ) as backend:
        path = tmp_path / "client-config.json"
        store = ConfigStore(path)
        base = ClientConfig.model_validate(
            {
                "pool": {"size": 3},
                "security": {"vault": "file", "vault_file": str(tmp_path / "vault.bin")},
                "backend": {
                    "gateway_url": backend.gateway_url,
                    "gateway_username": "trader",
                    "client_id": "desk-a",
                },
            }
        )
        store.save(base)
        code, _, err = await cli(
            "credentials",
            "--vault-file",
            str(tmp_path / "vault.bin"),
            "--no-keyring",
            "set",
            "gateway/trader",
            stdin="trader\n",
            env=env,
        )
        assert code == 0, err
        code, out, err = await cli("config", "sync", "--config", str(path), env=env)
        assert code == 0, out + err
        assert out.startswith("pushed"), out

        # Another desk changes the gateway's copy; this machine changes its own.
        async with GatewayClient(backend.gateway_url, "trader", "trader") as other:
            current = await other.get_settings("desk-a")
            remote = dict(current.settings)
            remote["pool"] = {**remote["pool"], "size": 4}
            await other.put_settings("desk-a", remote, current.version)
        local = base.model_copy(update={"pool": base.pool.model_copy(update={"size": 2})})
        store.save(local)

        code, out, _ = await cli("config", "sync", "--config", str(path), env=env)
        assert code == 3, out
        assert out.startswith("conflict")
        row = next(line for line in out.splitlines() if line.startswith("pool.size"))
        assert row.split() == ["pool.size", "2", "4"]
        assert ConfigStore(path).load().config.pool.size == 2  # nothing overwritten

        code, out, _ = await cli(
            "config", "sync", "--config", str(path), "--take", "remote", env=env
        )
        assert code == 0, out
        assert ConfigStore(path).load().config.pool.size == 4
    state = Path(os.environ["XDG_STATE_HOME"])
    audit = [
        json.loads(line) for f in state.rglob("audit.jsonl") for line in f.read_text().splitlines()
    ]
    actions = {(a["action"], a["outcome"]) for a in audit}
    assert {
        ("login", "success"),
        ("config.change", "success"),
        ("credential.write", "success"),
    } <= actions
    assert "master-pass-123" not in json.dumps(audit)
    assert all("trader\n" not in json.dumps(a) for a in audit)
    for file in [*tmp_path.rglob("*"), *state.rglob("*")]:
        if file.is_file() and file.suffix != ".sqlite":
            assert b"master-pass-123" not in file.read_bytes(), file
