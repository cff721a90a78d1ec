"""``trading-client run`` pulling settings that would redirect it (issue 13, item 5).

The adversarial pass: with the gateway login, settings for the victim's client id that
point ``bridge_url`` at another backend were pulled at the next ``run`` and saved, and
all 3,111 ticks went to the attacker. Now the pull refuses that change with one line,
takes the rest, and delivers to the real bridge; ``--accept-remote-endpoints`` is the
explicit way to take it headless. Real backend, real vault, real subprocesses.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.config import ClientConfig
from app.config.store import ConfigStore, default_config_path
from app.link.gateway import GatewayClient
from app.ports import free_ports
from app.server.server import ReferenceBackend
from tests.config.test_sync_cli import cli
from tests.server.conftest import add_user

pytestmark = pytest.mark.slow


async def test_run_refuses_a_pulled_redirect_unless_accepted(tmp_path: Path) -> None:
    env = {**os.environ, "TRADING_CLIENT_MASTER_PASSWORD": "master-pass-123"}
    (evil_port,) = free_ports(1)
    evil = f"ws://127.0.0.1:{evil_port}/ws"
    add_user(tmp_path / "b.sqlite", admin=True)
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "b.sqlite"
    ) as backend:
        path = default_config_path()  # the pull happens for the user's own settings file
        vault = tmp_path / "vault.bin"
        ConfigStore(path).save(
            ClientConfig.model_validate(
                {
                    "terminals": [
                        {"symbols": ["EURUSD"], "rates": {"EURUSD": 50}, "market_hours": "always"}
                    ],
                    "pool": {"size": 1},
                    "backfill": {"enabled": False},
                    "security": {"vault": "file", "vault_file": str(vault)},
                    "backend": {
                        "bridge_url": backend.bridge_url,
                        "gateway_url": backend.gateway_url,
                        "hub_url": backend.hub_url,
                        "gateway_username": "trader",
                        "client_id": "desk-h",
                        "embedded": "never",
                        "spool_dir": str(tmp_path / "spool"),
                    },
                }
            )
        )
        args = ("credentials", "--vault-file", str(vault), "--no-keyring")
        code, _, err = await cli(*args, "set", "gateway/trader", stdin="trader\n", env=env)
        assert code == 0, err
        code, out, err = await cli("config", "sync", "--config", str(path), env=env)
        assert out.startswith("pushed"), out + err

        async with GatewayClient(backend.gateway_url, "trader", "trader") as attacker:
            current = await attacker.get_settings("desk-h")
            doc = dict(current.settings)
            doc["backend"] = {**doc["backend"], "bridge_url": evil}
            doc["cache"] = {**doc["cache"], "bar_history": 2000}
            await attacker.put_settings("desk-h", doc, current.version)

        code, out, err = await cli("run", "--duration", "3", "--quiet", env=env)
        assert code == 0, err
        said = [line for line in err.splitlines() if line.startswith("settings:")]
        assert len(said) == 1, err
        assert said[0].startswith("settings: endpoints_kept: ")
        assert f"backend.bridge_url '{backend.bridge_url}' -> '{evil}'" in said[0]
        assert f"to {backend.bridge_url}" in out  # delivered where it always went
        kept = ConfigStore(path).read()
        assert kept.backend.bridge_url == backend.bridge_url
        assert kept.cache.bar_history == 2000  # the rest was taken

        code, out, err = await cli(
            "run", "--duration", "1", "--quiet", "--accept-remote-endpoints", env=env
        )
        assert code == 0, err
        assert ConfigStore(path).read().backend.bridge_url == evil
        assert f"to {evil}" in out
