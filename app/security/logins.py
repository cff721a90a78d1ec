"""From settings to the passwords the workers need, through the vault.

Settings name the terminals and their logins; the passwords live only in the vault, under
``mt5/<terminal name>``. Nothing is asked for when no terminal has a login, so the
embedded default never prompts.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

from app.config import ClientConfig
from app.config.schema import SecurityConfig
from app.security.audit import AuditLog
from app.security.cli import ENV_MASTER_PASSWORD, take_env_master_password
from app.security.secret import Secret
from app.security.vault import KeyringVault, Vault, VaultUnavailable, open_vault


class MissingCredentialError(LookupError):
    """A real terminal has a login but the vault holds no password for it."""


def prompt_master_password() -> Secret:
    """For the file vault: the environment (automation) or a hidden prompt, never argv."""
    from_env = take_env_master_password()
    if from_env is not None:
        return from_env
    if not sys.stdin.isatty():
        raise VaultUnavailable(
            f"the credential vault needs its master password: set {ENV_MASTER_PASSWORD} "
            "or run from a terminal"
        )
    return Secret(getpass.getpass("Master password of the credential vault: "))


def gateway_credential_name(username: str) -> str:
    return f"gateway/{username}"


def gateway_login(config: ClientConfig, vault: Vault) -> tuple[str, Secret]:
    """The API gateway username from the settings and its password from the vault."""
    user = config.backend.gateway_username
    if not user:
        raise MissingCredentialError(
            "no API gateway login configured: set backend.gateway_username in the settings"
        )
    secret = vault.get(gateway_credential_name(user))
    if secret is None:
        raise MissingCredentialError(
            f"no password stored for gateway user {user!r}: "
            f"run 'trading-client credentials set {gateway_credential_name(user)}'"
        )
    return user, secret


def backend_credential(config: ClientConfig, vault: Vault) -> Secret:
    """The credential the bridge and hub get (``user:password``): the backend login the
    settings name (``backend.gateway_username``) with its password from the vault. One
    login for the whole backend, because the backend has one users file for its three
    services."""
    user, password = gateway_login(config, vault)
    return Secret(f"{user}:{password.reveal()}")


def needs_backend_credential(config: ClientConfig) -> bool:
    """Whether the run needs a backend login from the vault: a backend is used and the
    settings name a login, and the backend may be one this app does not start (with
    ``embedded: always`` the embedded backend's per-run key always serves)."""
    backend = config.backend
    return backend.enabled and bool(backend.gateway_username) and backend.embedded != "always"


def nats_credential_name(username: str | None) -> str:
    """Where the NATS credential lives: ``nats/<user>`` (that user's password) or, with
    no user in the settings, ``nats/token``."""
    return f"nats/{username}" if username else "nats/token"


def needs_nats_credential(config: ClientConfig) -> bool:
    """Whether the run must open the vault for NATS: the sink publishes to NATS as a user.
    (A token is read only when the vault is opened anyway: a run without any login never
    asks for the vault's master password.)"""
    backend = config.backend
    return backend.enabled and backend.sink != "bridge" and bool(backend.nats_username)


def nats_credential(config: ClientConfig, vault: Vault) -> Secret | None:
    """The password of ``backend.nats_username`` (required), or the ``nats/token`` if one
    is stored; None when the sink does not use NATS."""
    backend = config.backend
    if not backend.enabled or backend.sink == "bridge":
        return None
    name = nats_credential_name(backend.nats_username)
    secret = vault.get(name)
    if secret is None and backend.nats_username:
        raise MissingCredentialError(
            f"no password stored for NATS user {backend.nats_username!r}: "
            f"run 'trading-client credentials set {name}'"
        )
    return secret


def terminal_credential_name(terminal_name: str) -> str:
    return f"mt5/{terminal_name}"


def needs_vault(config: ClientConfig) -> bool:
    return any(t.login is not None for t in config.terminals)


def open_configured_vault(
    security: SecurityConfig,
    master_password: Callable[[], Secret] | None,
    audit: AuditLog | None = None,
) -> Vault:
    """The vault the settings ask for (``auto`` prefers the OS keyring)."""
    if security.vault == "keyring":
        return KeyringVault(audit=audit)
    return open_vault(
        prefer_keyring=security.vault == "auto",
        file_path=security.vault_file,
        master_password_provider=master_password,
        audit=audit,
    )


def terminal_passwords(config: ClientConfig, vault: Vault) -> dict[str, str]:
    """Terminal name → password for every terminal with a login.

    A real (``mt5``) terminal without a stored password is an error naming the command
    that fixes it; a simulated one simply logs in without a password.
    """
    out: dict[str, str] = {}
    for term in config.terminals:
        if term.login is None:
            continue
        name = terminal_credential_name(term.name)
        secret = vault.get(name)
        if secret is not None:
            out[term.name] = secret.reveal()
        elif term.kind == "mt5":
            raise MissingCredentialError(
                f"no password stored for terminal {term.name!r} (login {term.login}): "
                f"run 'trading-client credentials set {name}'"
            )
    return out
