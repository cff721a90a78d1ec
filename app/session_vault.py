"""The session's credential side: the vault, its master password, and login tests.

Split from :mod:`app.session` so that module keeps one job (the capture's lifecycle and
the window's intents). :class:`VaultIntents` is a mixin of
:class:`~app.session.DesktopSession`: the window calls these methods on the session as
before. Anything that derives a key (scrypt) or logs in runs in a worker thread, so the
loop the window shares never stalls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from app.config import ClientConfig
from app.link.gateway import GatewayClient, GatewayError
from app.security.audit import AuditLog
from app.security.connections import tls_context_for, tls_settings
from app.security.logins import (
    backend_credential,
    nats_credential,
    needs_backend_credential,
    needs_nats_credential,
    needs_vault,
    open_configured_vault,
    terminal_passwords,
)
from app.security.secret import Secret
from app.security.vault import Vault, VaultLocked, default_vault_path, keyring_status
from app.terminal.api import MT5Api
from app.terminal.loader import TerminalUnavailable, open_terminal
from app.terminal.spec import TerminalSpec

_T = TypeVar("_T")
#: The session's logger: these lines belong to the session's story in the Journal.
log = logging.getLogger("app.session")


class MasterPasswordRequired(Exception):  # noqa: N818 -- a state the window reacts to
    """The vault is a file and the session has no master password for it yet."""


@dataclass(frozen=True, slots=True)
class ConnectionTest:
    ok: bool
    message: str


def login_once(api: MT5Api, spec: TerminalSpec) -> str:
    """Log in once for a short-lived call (connection test, symbol list): "" when it
    worked, else MT5's error."""
    ok = api.initialize(
        spec.path,
        login=spec.login,
        password=spec.password,
        server=spec.server,
        timeout=min(spec.timeout_ms, 15_000),
        portable=spec.portable,
    )
    if ok:
        return ""
    code, text = api.last_error()
    return f"MT5 error {code}: {text}"


class VaultIntents:
    """Vault and login intents of :class:`~app.session.DesktopSession` (a mixin)."""

    config: ClientConfig
    _master: Secret | None
    _keyring_usable: bool | None

    # ------------------------------------------------------------------ vault
    def vault_is_file(self) -> bool:
        mode = self.config.security.vault
        if mode == "file":
            return True
        if mode == "keyring":
            return False
        if self._keyring_usable is None:
            self._keyring_usable = keyring_status().usable
        return not self._keyring_usable

    def vault_file_exists(self) -> bool:
        """Whether the vault file is there yet: a new one has its master password chosen
        (typed twice, minimum length), an existing one only has it entered."""
        return (self.config.security.vault_file or default_vault_path()).exists()

    def needs_master_password(self) -> bool:
        return self.vault_is_file() and self._master is None

    def needs_vault_to_start(self) -> bool:
        """Whether starting capture needs the vault (terminal passwords live in it)."""
        return needs_vault(self.config)

    def set_master_password(self, secret: Secret | None) -> None:
        self._master = secret

    def _master_secret(self) -> Secret:
        if self._master is None:
            raise MasterPasswordRequired("the credential vault needs its master password")
        return self._master

    def _vault(self) -> Vault:
        audit = AuditLog(self.config.security.audit_log)
        return open_configured_vault(self.config.security, self._master_secret, audit)

    async def _in_vault(self, action: Callable[[Vault], _T]) -> _T:
        """Run ``action`` on the vault in a thread (scrypt takes a noticeable moment);
        a wrong master password is forgotten so the next attempt asks again."""
        if self.needs_master_password():
            raise MasterPasswordRequired("the credential vault needs its master password")
        try:
            return await asyncio.to_thread(lambda: action(self._vault()))
        except VaultLocked:
            self._master = None
            raise

    async def _passwords(self, config: ClientConfig) -> dict[str, str]:
        if not needs_vault(config):
            return {}
        return await self._in_vault(lambda vault: terminal_passwords(config, vault))

    async def _backend_credential(self, config: ClientConfig) -> Secret | None:
        if not needs_backend_credential(config):
            return None
        return await self._in_vault(lambda vault: backend_credential(config, vault))

    async def _nats_credential(self, config: ClientConfig) -> Secret | None:
        """The NATS user's password (or, when the vault is opened anyway, a token)."""
        if not needs_nats_credential(config) and not (
            needs_vault(config) or needs_backend_credential(config)
        ):
            return None
        return await self._in_vault(lambda vault: nats_credential(config, vault))

    async def credential_names(self) -> list[str]:
        return await self._in_vault(lambda vault: sorted(vault.names()))

    async def store_credential(self, name: str, secret: Secret) -> None:
        await self._in_vault(lambda vault: vault.set(name, secret))
        log.info("credential %s stored in the vault", name)

    async def delete_credential(self, name: str) -> None:
        await self._in_vault(lambda vault: vault.delete(name))
        log.info("credential %s deleted from the vault", name)

    # ------------------------------------------------------------------ connection tests
    async def test_terminal(self, terminal_name: str, password: Secret | None) -> ConnectionTest:
        """Log in to the named terminal once, off the loop, and report the MT5 result."""
        term = next((t for t in self.config.terminals if t.name == terminal_name), None)
        if term is None:
            return ConnectionTest(False, f"no terminal named {terminal_name!r} in the settings")
        spec = term.to_spec(password.reveal() if password is not None else None)

        def attempt() -> ConnectionTest:
            try:
                api = open_terminal(spec)
            except TerminalUnavailable as exc:
                return ConnectionTest(False, str(exc))
            try:
                failed = login_once(api, spec)
                if failed:
                    return ConnectionTest(False, failed)
                info = api.account_info()
                if info is None:  # None is an error with a reason, never "no account"
                    code, text = api.last_error()
                    return ConnectionTest(False, f"account_info: MT5 error {code}: {text}")
                return ConnectionTest(
                    True, f"{terminal_name}: account {info.login} on {info.server}"
                )
            finally:
                api.shutdown()

        return await asyncio.to_thread(attempt)

    async def test_gateway(self, username: str, password: Secret) -> ConnectionTest:
        url = self.config.backend.gateway_url
        tls = tls_context_for(
            url,
            tls_settings(self.config.security),
            plaintext_allowed=self.config.security.plaintext_allowed,
        )
        try:
            async with (
                httpx.AsyncClient(verify=tls if tls is not None else True, timeout=10) as http,
                GatewayClient(url, username, password.reveal(), http=http) as gateway,
            ):
                await gateway.login()
        except GatewayError as exc:
            return ConnectionTest(False, str(exc))
        except httpx.HTTPError as exc:
            return ConnectionTest(False, f"{url}: {type(exc).__name__}: {exc}")
        return ConnectionTest(True, f"logged in to {url} as {username}")


__all__ = ["ConnectionTest", "MasterPasswordRequired", "VaultIntents", "login_once"]
