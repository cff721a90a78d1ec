"""The settings that decide where data and credentials go, and who may change them.

Settings pulled from the API gateway are applied on their own, except these: a bridge,
gateway, hub or NATS URL, the sink, the client id, the gateway or NATS login, TLS (trust,
pins, minimum version, plaintext permissions), the vault, the audit log, the spool and
embedded database folders, the backfill state file, and a terminal's executable path.
Whoever controls the gateway's copy (or its login) could otherwise send every tick, and
the next login's password, to a backend of their choosing at the next start, without the
user seeing anything. So a remote change to one of them needs consent: a dialog in the window, an
explicit flag headless; without it the local value stays and the rest still applies.

Pure functions over :class:`~app.config.schema.ClientConfig`: the sync decides, the
command line and the window ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from app.config.schema import ClientConfig

#: (section, field) of the settings that redirect data or credentials.
_BACKEND: Final = (
    "bridge_url",
    "gateway_url",
    "hub_url",
    "client_id",
    "gateway_username",
    "embedded",
    "embedded_db",
    "spool_dir",
    "sink",
    "nats_url",
    "nats_username",
)
_SECURITY: Final = ("tls", "vault", "vault_file", "audit_log", "plaintext_allowed")
_BACKFILL: Final = ("state_file",)


@dataclass(frozen=True, slots=True)
class SettingChange:
    """One redirecting setting the gateway wants changed: dotted path, local, remote."""

    setting: str
    local: Any
    remote: Any

    def describe(self) -> str:
        return f"{self.setting} {_show(self.local)} -> {_show(self.remote)}"


def _show(value: Any) -> str:
    return "(not set)" if value is None else repr(value)


def _values(config: ClientConfig) -> dict[str, Any]:
    doc = config.model_dump(mode="json")
    out: dict[str, Any] = {}
    for section, names in (("backend", _BACKEND), ("security", _SECURITY)):
        for name in names:
            out[f"{section}.{name}"] = doc[section][name]
    for name in _BACKFILL:
        out[f"backfill.{name}"] = doc["backfill"][name]
    for terminal in doc["terminals"]:
        out[f"terminals[{terminal['name']}].path"] = terminal["path"]
    return out


def endpoint_changes(local: ClientConfig, remote: ClientConfig) -> tuple[SettingChange, ...]:
    """The redirecting settings ``remote`` would change, in a stable order."""
    mine, theirs = _values(local), _values(remote)
    return tuple(
        SettingChange(key, mine.get(key), theirs.get(key))
        for key in sorted(mine.keys() | theirs.keys())
        if key in theirs and mine.get(key) != theirs[key]
    )


def keep_local_endpoints(remote: ClientConfig, local: ClientConfig) -> ClientConfig:
    """``remote`` with every redirecting setting as ``local`` has it.

    A terminal only the gateway knows keeps no executable path (it attaches to the
    running terminal): a path is a program this machine would start.
    """
    doc = remote.model_dump(mode="json")
    mine = local.model_dump(mode="json")
    for section, names in (("backend", _BACKEND), ("security", _SECURITY)):
        for name in names:
            doc[section][name] = mine[section][name]
    for name in _BACKFILL:
        doc["backfill"][name] = mine["backfill"][name]
    local_paths: dict[str, Any] = {t["name"]: t["path"] for t in mine["terminals"]}
    for terminal in doc["terminals"]:
        terminal["path"] = local_paths.get(terminal["name"])
    return ClientConfig.model_validate(doc)
