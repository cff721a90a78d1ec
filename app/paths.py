"""Where the client keeps its files, in one place (the platform's standard folders).

Why one function: the welcome dialog, ``trading-client doctor`` and the docs must name
the same folders the code actually uses; each owner module keeps its own default
(``default_config_path``, ``default_vault_path``, ...) and this module only asks them,
so the list cannot drift from the truth. Settings may move some files (``--config``,
``security.vault_file``, ``backend.spool_dir``...); pass the settings in to see those.

Per platform (``platformdirs``), e.g. for the data folder: Linux
``~/.local/share/trading-client``, macOS ``~/Library/Application Support/trading-client``,
Windows ``%LOCALAPPDATA%\\trading-client\\trading-client``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from app.config.schema import ClientConfig
from app.config.store import ConfigStore, default_config_path
from app.security.vault import default_vault_path

APP_NAME = "trading-client"


def log_dir() -> Path:
    """The application log folder (rotating ``trading-client.log``, the audit log)."""
    return platformdirs.user_log_path(APP_NAME)


def data_dir() -> Path:
    """Captured-span records, the embedded backend's database, the vault file."""
    return platformdirs.user_data_path(APP_NAME)


def cache_dir() -> Path:
    """The link's spool of unacknowledged messages; safe to delete while not running."""
    return platformdirs.user_cache_path(APP_NAME)


@dataclass(frozen=True, slots=True)
class AppPaths:
    settings: Path
    backups: Path
    vault: Path
    logs: Path
    data: Path
    cache: Path

    def items(self) -> list[tuple[str, Path]]:
        """(label, path) in the order they are shown to the user."""
        return [
            ("settings", self.settings),
            ("backups", self.backups),
            ("vault", self.vault),
            ("logs", self.logs),
            ("data", self.data),
            ("cache", self.cache),
        ]


def app_paths(config_path: Path | None = None, config: ClientConfig | None = None) -> AppPaths:
    """The files and folders in use for the settings at ``config_path`` (default: the
    user's settings file); ``config`` applies its overrides (vault file, spool folder)."""
    settings = config_path if config_path is not None else default_config_path()
    vault = default_vault_path()
    cache = cache_dir()
    logs = log_dir()
    if config is not None:
        if config.security.vault_file is not None:
            vault = config.security.vault_file
        if config.backend.spool_dir is not None:
            cache = config.backend.spool_dir
    return AppPaths(
        settings=settings,
        backups=ConfigStore(settings).backup_dir,
        vault=vault,
        logs=logs,
        data=data_dir(),
        cache=cache,
    )


def resource_path(*parts: str) -> Path | None:
    """A file shipped with the app (icons, the default settings), or None when missing.

    Frozen (PyInstaller), resources sit in the bundle's folder (``sys._MEIPASS``); from
    a source checkout or an editable install, at the repository root.
    """
    base = getattr(sys, "_MEIPASS", None)
    root = Path(base) if base else Path(__file__).resolve().parent.parent
    path = root.joinpath("resources", *parts)
    return path if path.exists() else None
