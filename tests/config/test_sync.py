"""Settings sync against the real reference gateway, with the real gateway client.

"Another desk" is a second GatewayClient writing the same client's settings, which is
exactly how a conflicting edit reaches the gateway in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.config import ClientConfig, parse_config
from app.config.store import ConfigStore, canonical_json
from app.config.sync import SettingsSync
from app.link.gateway import GatewayClient
from app.server import ReferenceBackend
from tests.server.conftest import add_user

CLIENT_ID = "desk-7"


def sized(n: int) -> ClientConfig:
    return ClientConfig.model_validate({"pool": {"size": n}})


def dump(config: ClientConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def on_disk(where: ConfigStore | Path) -> ClientConfig:
    path = where.path if isinstance(where, ConfigStore) else where
    return parse_config(path.read_bytes(), str(path))


def snapshot(folder: Path) -> list[tuple[Path, bytes, int]]:
    return sorted(
        (p, p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    )


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
async def other_desk(backend: ReferenceBackend) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(backend.gateway_url, "trader", "trader") as client:
        yield client


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    store = ConfigStore(tmp_path / "desk" / "client-config.json")
    store.load()
    return store


@pytest.fixture
def sync(store: ConfigStore, gateway: GatewayClient) -> SettingsSync:
    return SettingsSync(store, gateway, CLIENT_ID)


async def remote_write(desk: GatewayClient, config: ClientConfig | dict[str, Any]) -> int:
    """Write at the gateway as another desk would: read the version, then write on it."""
    current = await desk.get_settings(CLIENT_ID)
    doc = dump(config) if isinstance(config, ClientConfig) else config
    return (await desk.put_settings(CLIENT_ID, doc, current.version)).version


async def test_a_local_change_is_pushed_with_its_base_version(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    store.save(sized(7))
    result = await sync.push()
    assert result.status == "pushed", result.message
    remote = await other_desk.get_settings(CLIENT_ID)
    assert (remote.version, remote.settings) == (1, dump(sized(7)))
    assert sync.base_version == 1
    # Nothing new: no request, nothing written.
    assert (await sync.push()).status == "in_sync"
    assert (await sync.sync()).status == "in_sync"
    assert (await other_desk.get_settings(CLIENT_ID)).version == 1


async def test_a_remote_change_is_pulled_and_the_local_file_backed_up(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    store.save(sized(7))
    assert (await sync.sync()).status == "pushed"
    version = await remote_write(other_desk, sized(9))

    result = await sync.pull()

    assert result.status == "pulled", result.message
    assert result.config == sized(9)
    assert on_disk(store) == sized(9)
    assert on_disk(store.backups()[0].path) == sized(7)
    assert sync.base_version == version
    # The base survives a restart: a new sync object knows both sides agree.
    restarted = SettingsSync(store, sync.gateway, CLIENT_ID)
    assert (await restarted.sync()).status == "in_sync"


async def test_pull_never_sends_local_changes(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    store.save(sized(7))
    assert (await sync.pull()).status == "local_ahead"
    assert (await other_desk.get_settings(CLIENT_ID)).version == 0
    assert (await sync.sync()).status == "pushed"


async def test_a_fresh_install_takes_the_gateways_settings(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    await remote_write(other_desk, sized(12))
    assert on_disk(store) == ClientConfig()  # first run: the defaults
    result = await sync.sync()
    assert result.status == "pulled", result.message
    assert on_disk(store) == sized(12)


async def test_both_changed_is_a_conflict_and_nothing_is_overwritten(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    assert (await sync.sync()).status == "in_sync"
    store.save(sized(3))
    local_bytes = store.path.read_bytes()
    version = await remote_write(other_desk, sized(4))

    result = await sync.sync()

    assert result.status == "conflict", result.message
    assert result.local == sized(3)
    assert result.remote == sized(4)
    assert result.remote_version == version
    assert store.path.read_bytes() == local_bytes
    remote = await other_desk.get_settings(CLIENT_ID)
    assert (remote.version, remote.settings) == (version, dump(sized(4)))


async def test_a_412_during_push_is_a_conflict(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    store.save(sized(3))
    assert (await sync.push()).status == "pushed"  # base: version 1
    await remote_write(other_desk, sized(4))  # version 2, unseen by this desk
    store.save(sized(6))
    local_bytes = store.path.read_bytes()

    result = await sync.push()  # If-Match: "1" -> 412

    assert result.status == "conflict", result.message
    assert (result.local, result.remote, result.remote_version) == (sized(6), sized(4), 2)
    assert store.path.read_bytes() == local_bytes
    assert (await other_desk.get_settings(CLIENT_ID)).settings == dump(sized(4))


async def _conflict(store: ConfigStore, sync: SettingsSync, desk: GatewayClient) -> int:
    assert (await sync.sync()).status == "in_sync"
    store.save(sized(3))
    version = await remote_write(desk, sized(4))
    assert (await sync.sync()).status == "conflict"
    return version


async def test_resolving_for_local_pushes_it_over_the_remote_version(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    version = await _conflict(store, sync, other_desk)
    result = await sync.resolve("local")
    assert result.status == "pushed", result.message
    remote = await other_desk.get_settings(CLIENT_ID)
    assert (remote.version, remote.settings) == (version + 1, dump(sized(3)))
    assert on_disk(store) == sized(3)
    assert (await sync.sync()).status == "in_sync"
    with pytest.raises(RuntimeError, match="no conflict"):
        await sync.resolve("local")


async def test_resolving_for_remote_takes_it_locally(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    version = await _conflict(store, sync, other_desk)
    result = await sync.resolve("remote")
    assert result.status == "pulled", result.message
    assert on_disk(store) == sized(4)
    assert on_disk(store.backups()[0].path) == sized(3)  # the local side is not lost
    assert sync.base_version == version
    assert (await other_desk.get_settings(CLIENT_ID)).version == version  # nothing sent
    assert (await sync.sync()).status == "in_sync"


async def test_a_resolution_does_not_overwrite_a_newer_remote_change(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    await _conflict(store, sync, other_desk)
    newer = await remote_write(other_desk, sized(8))
    result = await sync.resolve("local")  # based on the version shown: 412
    assert result.status == "conflict"
    assert (result.remote, result.remote_version) == (sized(8), newer)
    assert (await other_desk.get_settings(CLIENT_ID)).settings == dump(sized(8))


async def test_a_resolution_after_a_local_edit_looks_again(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    await _conflict(store, sync, other_desk)
    store.save(sized(11))  # edited while the conflict was on screen
    result = await sync.resolve("remote")
    assert result.status == "conflict"
    assert result.local == sized(11)
    assert on_disk(store) == sized(11)


async def test_invalid_remote_settings_are_refused_and_the_local_file_kept(
    store: ConfigStore, sync: SettingsSync, other_desk: GatewayClient
) -> None:
    local_bytes = store.path.read_bytes()
    version = await remote_write(
        other_desk, {"pool": {"size": 0}, "cache": {"ticks_per_symbol": "many"}}
    )

    result = await sync.pull()

    assert result.status == "invalid_remote"
    assert "pool.size: 0 is below the minimum 1" in result.problems
    assert any(p.startswith("cache.ticks_per_symbol: 'many'") for p in result.problems)
    assert f"version {version}" in result.message
    assert "pool.size: 0 is below the minimum 1" in result.message
    assert store.path.read_bytes() == local_bytes
    assert sync.base_version is None
    # The user may overwrite the broken remote with the local settings.
    assert (await sync.resolve("local")).status == "pushed"
    assert (await other_desk.get_settings(CLIENT_ID)).settings == dump(ClientConfig())


async def test_gateway_down_is_offline_and_touches_nothing(tmp_path: Path) -> None:
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=tmp_path / "gone.sqlite"
    ) as gone:
        url = gone.gateway_url
    store = ConfigStore(tmp_path / "desk" / "client-config.json")
    store.load()
    store.save(sized(2))
    before = snapshot(store.path.parent)
    async with GatewayClient(url, "trader", "trader", timeout=2.0) as down:
        sync = SettingsSync(store, down, CLIENT_ID)
        for step in (sync.pull, sync.push, sync.sync):
            result = await step()
            assert result.status == "offline"
            assert "connection refused" in result.message
            assert result.config == sized(2)
    assert snapshot(store.path.parent) == before


async def test_a_wrong_password_is_an_error_not_offline(
    store: ConfigStore, backend: ReferenceBackend
) -> None:
    async with GatewayClient(backend.gateway_url, "trader", "wrong") as refused:
        result = await SettingsSync(store, refused, CLIENT_ID).sync()
    assert result.status == "error"
    assert "401" in result.message
    assert canonical_json(on_disk(store)) == canonical_json(ClientConfig())
