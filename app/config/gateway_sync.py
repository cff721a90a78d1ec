"""``trading-client config sync`` and the pull at start: the settings store meets the
API gateway, with the login from the vault and TLS from the settings.

The two sides of a conflict are printed key by key, so the user sees exactly what differs
before choosing ``--take local`` or ``--take remote``; nothing is overwritten silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any, Literal

import httpx

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.config.sync import SettingsSync, SyncResult
from app.link.gateway import GatewayClient
from app.security.audit import AuditLog
from app.security.connections import tls_context_for, tls_settings
from app.security.logins import gateway_login, open_configured_vault, prompt_master_password
from app.security.secret import Secret

log = logging.getLogger(__name__)

#: Exit codes of ``config sync``.
EXIT_OK, EXIT_FAILED, EXIT_CONFLICT = 0, 1, 3


async def sync_with_gateway(
    store: ConfigStore,
    take: Literal["local", "remote"] | None = None,
    *,
    only_pull: bool = False,
    accept_endpoints: bool = False,
    master_password: Callable[[], Secret] = prompt_master_password,
) -> SyncResult:
    """One sync step against the configured gateway (``only_pull`` at start-up).

    ``master_password`` is asked only when the vault is a file: a terminal prompt for the
    command line, a dialog for the window. The gateway's changes of where data goes are
    taken only with ``accept_endpoints`` or ``take="remote"`` (the user's consent).
    """

    def read_login() -> tuple[ClientConfig, AuditLog, str, Secret]:
        # Files and the vault's key derivation (scrypt, ~0.5 s): not on the loop, which
        # in the window also draws the charts.
        config = store.load().config
        audit = AuditLog(config.security.audit_log)
        vault = open_configured_vault(config.security, master_password, audit)
        return (config, audit, *gateway_login(config, vault))

    config, audit, user, password = await asyncio.to_thread(read_login)
    url = config.backend.gateway_url
    tls = tls_context_for(
        url,
        tls_settings(config.security),
        audit.tls_pin_failure_hook(),
        plaintext_allowed=config.security.plaintext_allowed,
    )
    async with (
        httpx.AsyncClient(verify=tls if tls is not None else True) as http,
        GatewayClient(url, user, password.reveal(), http=http) as gateway,
    ):
        syncer = SettingsSync(
            store,
            gateway,
            config.backend.effective_client_id(),
            accept_endpoints=accept_endpoints,
        )
        result = await (syncer.pull() if only_pull else syncer.sync())
        if result.status != "offline":  # offline: no login was even attempted
            outcome = "success" if gateway.logged_in else "failure"
            audit.record("login", f"{user} at {url}", outcome)
        if (result.status == "conflict" and take is not None) or (
            result.status == "endpoints_kept" and take == "remote"
        ):
            result = await syncer.resolve(take)
    if result.status in ("pulled", "pushed", "endpoints_kept"):
        audit.record("config.change", str(store.path), "success", via=f"gateway {result.status}")
    return result


def flatten_settings(doc: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``("backend.bridge_url", value)`` pairs: how both sides of a conflict are compared
    and shown (the command line and the conflict dialog)."""
    if isinstance(doc, dict) and doc:
        for key, value in doc.items():
            yield from flatten_settings(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, doc


def describe(result: SyncResult) -> list[str]:
    """Lines for the terminal: the outcome, and on a conflict both sides of every change."""
    lines = [f"{result.status}: {result.message}"]
    if result.status == "conflict" and result.local is not None:
        local = dict(flatten_settings(result.local.model_dump(mode="json")))
        remote_doc = (
            result.remote.model_dump(mode="json")
            if result.remote is not None
            else result.remote_settings or {}
        )
        remote = dict(flatten_settings(remote_doc))
        width = max((len(k) for k in local.keys() | remote.keys()), default=10)
        lines.append(
            f"{'setting':<{width}}  {'this machine':<30}  gateway (v{result.remote_version})"
        )
        for key in sorted(local.keys() | remote.keys()):
            if local.get(key) != remote.get(key):
                lines.append(f"{key:<{width}}  {local.get(key)!s:<30}  {remote.get(key)!s}")
        lines.append("choose with: trading-client config sync --take local | --take remote")
    return lines


def exit_code(result: SyncResult) -> int:
    if result.status in ("conflict", "endpoints_kept"):  # the user has a choice to make
        return EXIT_CONFLICT
    return EXIT_OK if result.ok else EXIT_FAILED
