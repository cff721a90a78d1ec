"""Settings from the gateway never redirect the client silently (issue 13, item 5).

The adversarial pass wrote settings for the victim's client id that pointed
``bridge_url``/``hub_url`` at another backend; the next ``run`` pulled and saved them and
every tick went there. Against the real reference gateway: such a change is refused (the
rest of the settings still applies), refused again at the next sync (never pushed back
by itself), and taken only with consent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.config import ClientConfig, parse_config
from app.config.endpoints import endpoint_changes, keep_local_endpoints
from app.config.store import ConfigStore
from app.config.sync import SettingsSync
from app.link.gateway import GatewayClient
from app.server import ReferenceBackend
from tests.server.conftest import add_user

CLIENT_ID = "desk-victim"
EVIL_BRIDGE = "ws://127.0.0.1:1/ws"
BACKEND_FIELDS = {
    "bridge_url",
    "gateway_url",
    "hub_url",
    "client_id",
    "gateway_username",
    "embedded",
    "embedded_db",
    "spool_dir",
}


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[ReferenceBackend]:
    add_user(tmp_path / "backend.sqlite", admin=True)
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "backend.sqlite"
    ) as running:
        yield running


@pytest.fixture
async def gateway(backend: ReferenceBackend) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(backend.gateway_url, "trader", "trader") as client:
        yield client


@pytest.fixture
async def synced(tmp_path: Path, gateway: GatewayClient) -> ConfigStore:
    """A desk whose settings are in step with the gateway (version 1)."""
    store = ConfigStore(tmp_path / "desk" / "client-config.json")
    store.save(ClientConfig.model_validate({"pool": {"size": 3}}))
    result = await SettingsSync(store, gateway, CLIENT_ID).push()
    assert result.status == "pushed", result.message
    return store


async def attacker_writes(gateway: GatewayClient, **changes: dict[str, Any]) -> int:
    """What a holder of the gateway login does: rewrite the victim's settings."""
    current = await gateway.get_settings(CLIENT_ID)
    doc = dict(current.settings)
    for section, values in changes.items():
        doc[section] = {**doc[section], **values}
    return (await gateway.put_settings(CLIENT_ID, doc, current.version)).version


def on_disk(store: ConfigStore) -> ClientConfig:
    return parse_config(store.path.read_bytes(), str(store.path))


async def test_a_remote_redirect_is_refused_and_the_rest_still_applies(
    synced: ConfigStore, gateway: GatewayClient
) -> None:
    before = on_disk(synced)
    version = await attacker_writes(
        gateway,
        backend={"bridge_url": EVIL_BRIDGE, "hub_url": "http://127.0.0.1:1"},
        security={"audit_log": "/tmp/elsewhere.jsonl"},
        pool={"size": 2},
    )
    sync = SettingsSync(synced, gateway, CLIENT_ID)
    result = await sync.pull()
    assert result.status == "endpoints_kept", result.message
    assert [c.setting for c in result.refused] == [
        "backend.bridge_url",
        "backend.hub_url",
        "security.audit_log",
    ]
    assert result.refused[0].local == before.backend.bridge_url
    assert result.refused[0].remote == EVIL_BRIDGE
    assert "\n" not in result.message
    assert f"backend.bridge_url '{before.backend.bridge_url}' -> '{EVIL_BRIDGE}'" in result.message
    saved = on_disk(synced)
    assert saved.pool.size == 2  # the harmless change was taken
    assert saved.backend == before.backend  # where data goes did not move
    assert saved.security == before.security
    assert result.config == saved
    # The next sync refuses again and never pushes this machine's values by itself.
    again = await SettingsSync(synced, gateway, CLIENT_ID).sync()
    assert again.status == "endpoints_kept", again.message
    remote = await gateway.get_settings(CLIENT_ID)
    assert (remote.version, remote.settings["backend"]["bridge_url"]) == (version, EVIL_BRIDGE)
    # Consent after seeing it: the whole remote document is taken.
    taken = await again_and_resolve(synced, gateway)
    assert taken.status == "pulled", taken.message
    assert on_disk(synced).backend.bridge_url == EVIL_BRIDGE


async def again_and_resolve(store: ConfigStore, gateway: GatewayClient) -> Any:
    sync = SettingsSync(store, gateway, CLIENT_ID)
    assert (await sync.pull()).status == "endpoints_kept"
    return await sync.resolve("remote")


async def test_the_headless_flag_takes_a_remote_redirect(
    synced: ConfigStore, gateway: GatewayClient
) -> None:
    await attacker_writes(gateway, backend={"client_id": "someone-else"})
    result = await SettingsSync(synced, gateway, CLIENT_ID, accept_endpoints=True).pull()
    assert result.status == "pulled", result.message
    assert on_disk(synced).backend.client_id == "someone-else"


async def test_only_a_redirect_changed_keeps_the_file_as_it_was(
    synced: ConfigStore, gateway: GatewayClient
) -> None:
    raw = synced.path.read_bytes()
    await attacker_writes(gateway, security={"tls": {"pins": {"evil": ["00" * 32]}}})
    result = await SettingsSync(synced, gateway, CLIENT_ID).pull()
    assert result.status == "endpoints_kept", result.message
    assert [c.setting for c in result.refused] == ["security.tls"]
    assert synced.path.read_bytes() == raw


def test_every_redirecting_setting_is_caught_and_kept() -> None:
    local = ClientConfig.model_validate(
        {"terminals": [{"name": "mt5", "kind": "mt5", "path": "C:/MT5/terminal64.exe"}]}
    )
    remote = ClientConfig.model_validate(
        {
            "terminals": [
                {"name": "mt5", "kind": "mt5", "path": "C:/evil.exe"},
                {"name": "new", "kind": "mt5", "path": "C:/evil2.exe", "symbols": ["X"]},
            ],
            "backend": {
                "bridge_url": "wss://a/ws",
                "gateway_url": "https://a",
                "hub_url": "https://a",
                "client_id": "x",
                "gateway_username": "mallory",
                "embedded": "never",
                "embedded_db": "/tmp/x.sqlite",
                "spool_dir": "/tmp/spool",
            },
            "security": {
                "tls": {"min_version": "1.3"},
                "vault": "file",
                "vault_file": "/tmp/v",
                "audit_log": "/tmp/a",
                "plaintext_allowed": ["a:80"],
            },
            "backfill": {"state_file": "/tmp/s"},
            "pool": {"size": 7},
        }
    )
    changed = {c.setting for c in endpoint_changes(local, remote)}
    assert changed == {
        *(f"backend.{name}" for name in remote.backend.model_dump(include=BACKEND_FIELDS)),
        "security.tls",
        "security.vault",
        "security.vault_file",
        "security.audit_log",
        "security.plaintext_allowed",
        "backfill.state_file",
        "terminals[mt5].path",
        "terminals[new].path",
    }
    assert "pool.size" not in changed
    kept = keep_local_endpoints(remote, local)
    assert endpoint_changes(local, kept) == ()
    assert kept.pool.size == 7
    assert [t.path for t in kept.terminals] == ["C:/MT5/terminal64.exe", None]
