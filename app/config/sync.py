"""Keeping the local settings file and the API gateway's copy in step (protocol.md §2).

Both sides can change: the user edits settings on this desk, and another desk (or an
administrator) changes the same client's settings at the gateway. A last-writer-wins copy
would silently throw one of those edits away, so this is a three-way merge against the
*base*, the settings as they were at the last successful sync (kept next to the settings
file, so it survives restarts):

* only the gateway changed → take its settings (validated first; invalid ones are refused
  with every problem named, and the local file is left alone) - except the settings that
  decide where data and credentials go (:mod:`app.config.endpoints`): those are taken
  only with consent (``accept_endpoints``, or :meth:`SettingsSync.resolve` ``"remote"``
  after the user saw them), else this machine's values stay and the result names each
  refused change;
* only the local file changed → send it, stating the version it was based on (If-Match),
  so that a change made at the gateway in the meantime comes back as a conflict;
* both changed (differently) → nothing is overwritten: the result carries both sides for
  the user to compare, and :meth:`SettingsSync.resolve` applies their choice.

Before the first sync the base is the default settings: a fresh install (still on the
defaults) takes the gateway's settings, and a desk whose settings were customised offline
pushes them to an empty gateway. Whenever the gateway cannot be reached the local file is
not touched at all.

The settings editor should flush its :class:`~app.config.store.Autosaver` before a sync,
so that the file holds every edit the user made.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from app.config.endpoints import SettingChange, endpoint_changes, keep_local_endpoints
from app.config.load import ConfigError, read_settings_file
from app.config.schema import ClientConfig
from app.config.store import (
    ConfigChangedError,
    ConfigStore,
    InvalidConfig,
    atomic_write,
    canonical_json,
    validate_document,
)
from app.link.gateway import GatewayClient, GatewayError, SettingsConflict, VersionedSettings

log = logging.getLogger(__name__)

SyncStatus = Literal[
    "in_sync",  # both sides hold the same settings
    "pulled",  # the gateway's settings were taken and saved locally
    "endpoints_kept",  # as pulled, but its changes of where data goes were refused: refused
    "pushed",  # the local settings were stored at the gateway
    "local_ahead",  # pull(): local changes the gateway does not have yet (push them)
    "conflict",  # both sides changed: see ``local`` and ``remote``, then resolve()
    "invalid_remote",  # the gateway holds settings that do not validate: ``problems``
    "offline",  # the gateway could not be reached
    "error",  # the gateway refused (login, HTTP error) or the local file is unusable
]

#: Rounds of "412, but the gateway only re-stored the base" before giving up.
_MAX_PUT_ATTEMPTS: Final = 3
_STATE_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a sync step did. ``config`` is the local settings after it (None when the
    local file could not be read). For ``conflict`` and ``invalid_remote``, ``local`` and
    ``remote`` (None when invalid) / ``remote_settings`` (the raw document) are the two
    sides to show, and ``remote_version`` the version a resolution is based on."""

    status: SyncStatus
    message: str
    config: ClientConfig | None = None
    local: ClientConfig | None = None
    remote: ClientConfig | None = None
    remote_settings: dict[str, Any] | None = None
    remote_version: int | None = None
    problems: tuple[str, ...] = ()
    #: ``endpoints_kept``: the redirecting changes refused (resolve "remote" takes them).
    refused: tuple[SettingChange, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing needs the user's attention (a refused redirect is a safe outcome)."""
        return self.status in ("in_sync", "pulled", "endpoints_kept", "pushed", "local_ahead")


@dataclass(frozen=True, slots=True)
class _Base:
    version: int
    canonical: bytes


@dataclass(frozen=True, slots=True)
class _Open:
    """A conflict (or invalid remote) waiting for :meth:`SettingsSync.resolve`."""

    local_canonical: bytes
    remote: ClientConfig | None
    remote_version: int


class SettingsSync:
    """Syncs ``store``'s file with the settings the gateway holds for ``client_id``.

    The base is persisted in ``<stem>.sync.json`` next to the settings file; it belongs to
    one gateway and client id, and is ignored (treated as "never synced") for others.
    Steps are serialised: a pull, push, sync or resolve runs only after the previous one.
    """

    def __init__(
        self,
        store: ConfigStore,
        gateway: GatewayClient,
        client_id: str,
        *,
        state_path: Path | None = None,
        accept_endpoints: bool = False,
    ) -> None:
        if not client_id:
            raise ValueError("client_id must not be empty")
        self.store = store
        self.gateway = gateway
        self.client_id = client_id
        self.state_path = state_path or store.path.with_name(f"{store.path.stem}.sync.json")
        self._lock = asyncio.Lock()
        self._open: _Open | None = None
        #: Take the gateway's changes of where data goes without asking (headless flag).
        self.accept_endpoints = accept_endpoints

    # ------------------------------------------------------------------ public API
    @property
    def base_version(self) -> int | None:
        """The gateway version of the last successful sync (None: never synced)."""
        base = self._read_base()
        return None if base is None else base.version

    async def pull(self) -> SyncResult:
        """Take the gateway's settings if only they changed; never sends anything."""
        async with self._lock:
            return await self._step("pull")

    async def push(self) -> SyncResult:
        """Send the local settings if they changed since the last sync (after a save)."""
        async with self._lock:
            return await self._step("push")

    async def sync(self) -> SyncResult:
        """Pull or push, whichever side changed (at start and on demand)."""
        async with self._lock:
            return await self._step("sync")

    async def resolve(self, choice: Literal["local", "remote"]) -> SyncResult:
        """Settle the last conflict: ``"local"`` stores the local settings at the gateway
        (based on the remote version shown), ``"remote"`` saves the gateway's locally.

        When the local file changed since the conflict was reported, or (for ``"local"``)
        the gateway's settings changed again, nothing is overwritten and the result
        describes the new situation instead. A remote that moved on after ``"remote"`` was
        chosen is simply pulled by the next sync.
        """
        if choice not in ("local", "remote"):
            raise ValueError(f"choice must be 'local' or 'remote', not {choice!r}")
        async with self._lock:
            pending = self._open
            if pending is None:
                raise RuntimeError("there is no conflict to resolve")
            local = self._read_local()
            if isinstance(local, SyncResult):
                return local
            if canonical_json(local) != pending.local_canonical:
                return await self._step("sync")  # the local side changed: look again
            self._open = None
            if choice == "local":
                return await self._put(local, pending.remote_version)
            if pending.remote is None:
                self._open = pending
                return SyncResult(
                    "error",
                    "the gateway's settings are not valid and cannot be taken",
                    config=local,
                )
            return await self._take(local, pending.remote, pending.remote_version)

    # ------------------------------------------------------------------ the merge
    async def _step(self, mode: Literal["pull", "push", "sync"]) -> SyncResult:
        self._open = None
        local = self._read_local()
        if isinstance(local, SyncResult):
            return local
        base = self._base_or_defaults()
        if mode == "push":
            if canonical_json(local) == base.canonical:
                return SyncResult("in_sync", "no local changes to push", config=local)
            return await self._put(local, base.version)
        try:
            remote = await self.gateway.get_settings(self.client_id)
        except GatewayError as exc:
            return self._unreachable(exc, local)
        return await self._merge(local, remote, base, mode)

    async def _merge(
        self,
        local: ClientConfig,
        remote: VersionedSettings,
        base: _Base,
        mode: Literal["pull", "push", "sync"],
        attempt: int = 1,
    ) -> SyncResult:
        local_canon = canonical_json(local)
        remote_config: ClientConfig | None
        problems: tuple[str, ...] = ()
        try:
            remote_config = validate_document(remote.settings, "gateway")
        except InvalidConfig as exc:
            remote_config, problems = None, exc.problems
        remote_canon = None if remote_config is None else canonical_json(remote_config)
        if remote_canon == local_canon:
            self._write_base(remote.version, local_canon)
            return SyncResult(
                "in_sync", f"in step with the gateway (version {remote.version})", config=local
            )
        local_changed = local_canon != base.canonical
        remote_changed = remote_canon != base.canonical
        if remote_config is None:
            self._open = _Open(local_canon, None, remote.version)
            return SyncResult(
                "invalid_remote",
                f"the gateway's settings (version {remote.version}) are not valid; the "
                "local settings were kept: " + "; ".join(problems),
                config=local,
                local=local,
                remote_settings=remote.settings,
                remote_version=remote.version,
                problems=problems,
            )
        if remote_changed and not local_changed:
            return await self._take_with_consent(local, remote_config, remote.version)
        if local_changed and not remote_changed:
            if mode == "pull":
                return SyncResult(
                    "local_ahead", "the local settings have changes to push", config=local
                )
            if attempt >= _MAX_PUT_ATTEMPTS:
                return self._conflict(local, remote_config, remote.version, local_canon)
            return await self._put(local, remote.version, attempt + 1)
        return self._conflict(local, remote_config, remote.version, local_canon)

    def _conflict(
        self, local: ClientConfig, remote: ClientConfig, version: int, local_canon: bytes
    ) -> SyncResult:
        self._open = _Open(local_canon, remote, version)
        base = self._read_base()
        since = "the last sync" if base is None else f"the last sync (version {base.version})"
        return SyncResult(
            "conflict",
            f"the local settings and the gateway's (version {version}) both changed since "
            f"{since}; nothing was overwritten: choose which to keep",
            config=local,
            local=local,
            remote=remote,
            remote_version=version,
        )

    async def _put(self, local: ClientConfig, expected: int, attempt: int = 1) -> SyncResult:
        document = local.model_dump(mode="json")
        try:
            stored = await self.gateway.put_settings(self.client_id, document, expected)
        except SettingsConflict as exc:
            # Someone wrote in between: decide again against what they wrote.
            return await self._merge(local, exc.current, self._base_or_defaults(), "push", attempt)
        except GatewayError as exc:
            return self._unreachable(exc, local)
        self._write_base(stored.version, canonical_json(local))
        return SyncResult(
            "pushed", f"stored at the gateway as version {stored.version}", config=local
        )

    async def _take_with_consent(
        self, local: ClientConfig, remote: ClientConfig, version: int
    ) -> SyncResult:
        """Take ``remote``, but its changes of where data goes only when accepted."""
        changes = endpoint_changes(local, remote)
        if not changes or self.accept_endpoints:
            return await self._take(local, remote, version)
        kept = keep_local_endpoints(remote, local)
        rest = canonical_json(kept) != canonical_json(local)
        if rest:
            taken = await self._take(local, kept, version)
            if taken.status != "pulled":
                return taken
        else:
            self._write_base(version, canonical_json(local))
        # The base is what was applied, so the next sync refuses the same change again
        # (it never pushes this machine's values over the gateway's by itself).
        self._open = _Open(canonical_json(kept), remote, version)
        message = (
            f"the gateway's settings (version {version}) change where data or credentials "
            f"go; refused, this machine's values kept: "
            + "; ".join(change.describe() for change in changes)
            + (" (the other changes were taken)" if rest else "")
            + "; accept them in the window, with 'run --accept-remote-endpoints' or "
            "'config sync --take remote'"
        )
        return SyncResult(
            "endpoints_kept",
            message,
            config=kept,
            local=kept,
            remote=remote,
            remote_version=version,
            refused=changes,
        )

    async def _take(self, local: ClientConfig, remote: ClientConfig, version: int) -> SyncResult:
        try:
            # Compare-and-set: an edit saved since the local file was read is not lost.
            # In a thread: it may wait for an autosave in progress, and it fsyncs.
            await asyncio.to_thread(self.store.save, remote, expected=local)
        except ConfigChangedError:
            return SyncResult(
                "error",
                "the local settings changed during the sync; nothing was overwritten, sync again",
                config=None,
            )
        except ConfigError as exc:
            return SyncResult("error", str(exc), config=local)
        self._write_base(version, canonical_json(remote))
        return SyncResult(
            "pulled", f"took the gateway's settings (version {version})", config=remote
        )

    # ------------------------------------------------------------------ helpers
    def _read_local(self) -> ClientConfig | SyncResult:
        try:
            return self.store.read()
        except ConfigError as exc:
            return SyncResult("error", f"the local settings cannot be synced: {exc}")

    @staticmethod
    def _unreachable(exc: GatewayError, local: ClientConfig) -> SyncResult:
        status: SyncStatus = "offline" if exc.status is None else "error"
        return SyncResult(status, str(exc), config=local)

    def _base_or_defaults(self) -> _Base:
        return self._read_base() or _Base(0, canonical_json(ClientConfig()))

    def _read_base(self) -> _Base | None:
        try:
            doc = orjson.loads(read_settings_file(self.state_path))
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("%s: ignored (%s); treating as never synced", self.state_path, exc)
            return None
        if (
            not isinstance(doc, dict)
            or doc.get("format") != _STATE_FORMAT
            or doc.get("gateway") != self.gateway.base_url
            or doc.get("client_id") != self.client_id
        ):
            return None
        version, settings = doc.get("version"), doc.get("settings")
        if not isinstance(version, int) or version < 0 or not isinstance(settings, str):
            return None
        return _Base(version, settings.encode())

    def _write_base(self, version: int, canonical: bytes) -> None:
        state = {
            "format": _STATE_FORMAT,
            "gateway": self.gateway.base_url,
            "client_id": self.client_id,
            "version": version,
            "settings": canonical.decode(),
        }
        try:
            atomic_write(self.state_path, orjson.dumps(state, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            # The sync itself worked; the next one will just see both sides as changed
            # and report a conflict instead of guessing.
            log.warning("%s: cannot record the sync: %s", self.state_path, exc)
