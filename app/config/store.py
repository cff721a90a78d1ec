"""The settings file on disk: atomic saves, backups, rollback, recovery and autosave.

A settings file is edited by hand, by the settings editor and by the gateway sync, and the
process writing it can be killed at any moment (a crash, a power cut, a task manager). So:

* a save never leaves a half-written file: the new content goes to a temporary file in the
  same folder, is flushed to the disk, and then atomically replaces the old one;
* the file a save replaces is kept in ``backups/`` (the newest N), so that any edit can be
  undone with :meth:`ConfigStore.rollback`;
* a file that cannot be used (not JSON, or values out of range) never stops the client: it
  is put aside under a new name *untouched* (it may hold hours of hand edits), the user is
  told what is wrong with it, and the client starts from the newest valid backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import platformdirs
from pydantic import ValidationError

from app.clock import SYSTEM_CLOCK, Clock
from app.config.load import ConfigError, describe_validation_error, one_line, read_settings_file
from app.config.schema import ClientConfig
from app.untrusted import JsonRefusedError, loads_json

log = logging.getLogger(__name__)

APP_NAME: Final = "trading-client"
CONFIG_FILE_NAME: Final = "client-config.json"
BACKUP_DIR_NAME: Final = "backups"
DEFAULT_BACKUPS: Final = 10
#: Temporary files of an interrupted save older than this are removed by ``load``; younger
#: ones may belong to another process saving right now.
STALE_TEMP_S: Final = 60.0


def default_config_path() -> Path:
    """Where the client keeps its settings unless told otherwise (per user, per OS)."""
    return platformdirs.user_config_path(APP_NAME) / CONFIG_FILE_NAME


# ----------------------------------------------------------------------- validation
class InvalidConfig(ConfigError):  # noqa: N818 -- reads as "the config is invalid"
    """A settings document that does not validate; ``problems`` has one line per problem.

    The message reads like the one :func:`app.config.parse_config` gives; the separate
    lines are what a validator prints and a warning lists, without re-parsing a message.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems: tuple[str, ...] = tuple(one_line(p) for p in problems)
        super().__init__(f"{one_line(source)}: " + "; ".join(self.problems))


class ConfigChangedError(ConfigError):
    """The file changed between reading it and saving over it (another writer won)."""


def validate_document(doc: Any, source: str = "<config>") -> ClientConfig:
    """A parsed JSON document as settings, or :class:`InvalidConfig` naming each problem."""
    if not isinstance(doc, dict):
        raise InvalidConfig(source, ["the top level must be a JSON object"])
    try:
        return ClientConfig.model_validate(doc)
    except ValidationError as exc:
        raise InvalidConfig(source, describe_validation_error(exc)) from None


def check_config(data: bytes | str, source: str = "<config>") -> ClientConfig:
    """Parse and validate settings; like ``parse_config`` but with the problems listed."""
    try:
        doc = loads_json(data)
    except JsonRefusedError as exc:
        raise InvalidConfig(source, [str(exc)]) from None
    return validate_document(doc, source)


def config_json(config: ClientConfig) -> bytes:
    """The file form: indented, fields in schema order, so hand edits and diffs are easy."""
    return orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"


def canonical_json(doc: ClientConfig | dict[str, Any]) -> bytes:
    """One byte string per content (sorted keys, no spaces): what "unchanged" compares."""
    data = doc.model_dump(mode="json") if isinstance(doc, ClientConfig) else doc
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def json_schema_bytes() -> bytes:
    """The JSON Schema of :class:`ClientConfig`, pretty and with sorted keys (stable diffs)."""
    schema = ClientConfig.model_json_schema()
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_json_schema(path: Path) -> None:
    """Write the JSON Schema (editors use it for completion and checking of hand edits)."""
    atomic_write(Path(path), json_schema_bytes())


# ----------------------------------------------------------------------- atomic files
def fsync_directory(folder: Path) -> None:
    """Make a rename durable: on POSIX the directory entry is only safe once the directory
    itself is synced. Windows has no directory handles to sync (NTFS journals renames)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a reader (or a crash) sees old or new, never
    a mix: temp file in the same folder (``os.replace`` is atomic only within one file
    system), flushed and synced before the rename, directory synced after it.
    ``sync=False`` skips both fsyncs: still old-or-new, but a power cut may keep the old
    (for a change whose loss is harmless, e.g. forgetting a settled in-flight order).

    The temp file is named ``.<name>.<random>.tmp``: hidden, and never matching the
    settings file or a backup, so a leftover from a kill cannot be mistaken for either.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_directory(path.parent)


def _stamp(ms: int) -> str:
    """``20241124T121700.123Z``: UTC, sortable, and without ':' (not allowed on Windows)."""
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{dt:%Y%m%dT%H%M%S}.{ms % 1000:03d}Z"


def _parse_stamp(date: str, millis: str) -> int:
    dt = datetime.strptime(date, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1000 + int(millis)


# ----------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class Backup:
    """One kept earlier version; ``saved_at`` is when a newer save replaced it."""

    path: Path
    saved_at: datetime
    valid: bool


@dataclass(frozen=True, slots=True)
class Rollback:
    """What :meth:`ConfigStore.rollback` restored; ``written`` is False when the backup
    already equalled the current settings (then nothing was saved)."""

    backup: Backup
    config: ClientConfig
    written: bool


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The settings to run with, and what the user must be told about how they were found.

    ``source`` says where they came from; ``kept_as`` is where an unusable file was put.
    """

    config: ClientConfig
    warnings: list[str] = field(default_factory=list)
    source: Literal["file", "defaults", "backup"] = "file"
    kept_as: Path | None = None


# ----------------------------------------------------------------------- the store
class ConfigStore:
    """The settings file at ``path`` and its ``backups/`` folder.

    Saves are serialised by a lock, so the autosaver (which saves in a worker thread) and
    the gateway sync cannot interleave. One store per file per process; other processes
    only ever see complete files.
    """

    def __init__(
        self, path: Path, *, backups: int = DEFAULT_BACKUPS, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if backups < 0:
            raise ValueError("backups must be >= 0")
        self.path = Path(path)
        self.keep_backups = backups
        self._clock = clock
        self._lock = threading.RLock()
        stem, suffix = self.path.stem, self.path.suffix
        self._backup_re = re.compile(
            rf"^{re.escape(stem)}\.(\d{{8}}T\d{{6}})\.(\d{{3}})Z{re.escape(suffix)}$"
        )

    def __repr__(self) -> str:
        return f"ConfigStore({str(self.path)!r}, backups={self.keep_backups})"

    @property
    def backup_dir(self) -> Path:
        return self.path.parent / BACKUP_DIR_NAME

    # ------------------------------------------------------------------ reading
    def read(self) -> ClientConfig:
        """The settings in the file, without side effects; :class:`ConfigError` when it is
        missing, unreadable or invalid (``InvalidConfig`` then lists the problems)."""
        try:
            data = read_settings_file(self.path)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        return check_config(data, str(self.path))

    def load(self, *, repair: bool = True) -> LoadResult:
        """The settings to start with; never fails because of the file's content.

        A missing file means a first run: the defaults, written out so the user has a file
        to edit. An unusable file is renamed to ``<name>.bad-<timestamp>`` (never
        overwritten, never changed) and the newest valid backup, else the defaults, are
        used and saved in its place. With ``repair=False`` nothing on disk is changed
        (for ``config show``): same settings and problems, nothing renamed or written.

        Raises :class:`ConfigError` only when the file cannot be read at all (permissions,
        a folder where the file should be, an unreadable folder).
        """
        with self._lock:
            if repair:
                self._remove_stale_temps()
                self._prune_backups(self._backup_files())
            try:
                data: bytes | None = read_settings_file(self.path)
            except FileNotFoundError:
                data = None
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
            if data is None:
                return self._first_run(repair)
            try:
                return LoadResult(check_config(data, str(self.path)))
            except InvalidConfig as exc:
                return self._recover(exc, repair)

    def _first_run(self, repair: bool) -> LoadResult:
        config = ClientConfig()
        warnings: list[str] = []
        if repair:
            try:
                self.save(config)
            except ConfigError as exc:
                warnings.append(f"the default settings could not be written: {exc}")
        return LoadResult(config, warnings, source="defaults")

    def _recover(self, exc: InvalidConfig, repair: bool) -> LoadResult:
        warnings = [f"{self.path}: {problem}" for problem in exc.problems]
        kept_as: Path | None = None
        if repair:
            try:
                kept_as = self._put_aside()
            except OSError as err:
                # Saving over a file that could not be kept would destroy it: run from
                # memory instead and leave the disk as it is.
                warnings.append(
                    f"{self.path} could not be renamed ({err.strerror or err}); it was left "
                    "as it is, and the settings in use are not saved over it"
                )
                repair = False
            else:
                warnings.append(f"{self.path} was not used and was kept as {kept_as.name}")
        else:
            warnings.append(f"{self.path} cannot be used")
        config: ClientConfig | None = None
        chosen: Backup | None = None
        for backup in self.backups():
            if backup.valid:
                with contextlib.suppress(OSError, ConfigError):
                    config = check_config(read_settings_file(backup.path), str(backup.path))
                    chosen = backup
                    break
        source: Literal["defaults", "backup"]
        if config is not None and chosen is not None:
            source = "backup"
            warnings.append(
                f"started from the backup of {chosen.saved_at:%Y-%m-%d %H:%M:%S} UTC "
                f"({chosen.path.name})"
            )
        else:
            config, source = ClientConfig(), "defaults"
            warnings.append("no valid backup was found; started from the default settings")
        if repair:
            try:
                self.save(config)
            except ConfigError as err:
                warnings.append(f"the recovered settings could not be written: {err}")
        for line in warnings:
            log.warning("%s", line)
        return LoadResult(config, warnings, source=source, kept_as=kept_as)

    def _put_aside(self) -> Path:
        base = f"{self.path.name}.bad-{_stamp(int(self._clock.time() * 1000))}"
        target = self.path.with_name(base)
        n = 1
        while target.exists() or target.is_symlink():
            target = self.path.with_name(f"{base}-{n}")
            n += 1
        # A rename moves the bytes as they are: the kept file is the bad file, unchanged.
        os.rename(self.path, target)
        fsync_directory(self.path.parent)
        return target

    def _remove_stale_temps(self) -> None:
        """Leftovers of saves that were killed mid-way; harmless, but they pile up."""
        now = time.time()  # file times are on the real clock, whatever self._clock says
        pattern = f".{self.path.stem}.*.tmp"
        for folder in (self.path.parent, self.backup_dir):
            with contextlib.suppress(OSError):
                for tmp in folder.glob(pattern):
                    with contextlib.suppress(OSError):
                        if now - tmp.stat().st_mtime > STALE_TEMP_S:
                            tmp.unlink()

    # ------------------------------------------------------------------ saving
    def save(self, config: ClientConfig, *, expected: ClientConfig | None = None) -> bool:
        """Write ``config`` atomically; False (and nothing written) when the file already
        holds the same content. The file it replaces goes to ``backups/`` first.

        ``expected`` makes it a compare-and-set: :class:`ConfigChangedError` when the file
        does not hold ``expected`` (someone saved since it was read). Other failures raise
        :class:`ConfigError` naming the file and the OS reason.
        """
        new_bytes = config_json(config)
        new_canon = canonical_json(config)
        with self._lock:
            try:
                old: bytes | None = read_settings_file(self.path)
            except FileNotFoundError:
                old = None
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
            old_canon = self._canonical_of(old)
            if old_canon == new_canon:
                return False
            if expected is not None and old_canon != canonical_json(expected):
                raise ConfigChangedError(f"{self.path}: changed by another writer")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if old is not None and self.keep_backups > 0:
                    self._write_backup(old)
                atomic_write(self.path, new_bytes)
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot save: {exc.strerror or exc}") from None
            log.debug("settings saved to %s", self.path)
            return True

    @staticmethod
    def _canonical_of(data: bytes | None) -> bytes | None:
        if data is None:
            return None
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return canonical_json(doc) if isinstance(doc, dict) else None

    def _write_backup(self, data: bytes) -> None:
        folder = self.backup_dir
        folder.mkdir(exist_ok=True)
        existing = self._backup_files()
        ms = int(self._clock.time() * 1000)
        if existing:
            # Strictly after the newest one, so that names sort like saves even when
            # two saves share a millisecond or the wall clock steps back.
            ms = max(ms, existing[0][0] + 1)
        name = f"{self.path.stem}.{_stamp(ms)}{self.path.suffix}"
        atomic_write(folder / name, data)
        # Pruned after the new one is safe, so a kill in between leaves one too many
        # (pruned by the next save or load), never one too few.
        self._prune_backups([(ms, folder / name), *existing])

    def _prune_backups(self, newest_first: list[tuple[int, Path]]) -> None:
        for _, old in newest_first[self.keep_backups :]:
            with contextlib.suppress(OSError):
                old.unlink()

    def _backup_files(self) -> list[tuple[int, Path]]:
        """(milliseconds, path) of every backup, newest first."""
        try:
            entries = list(self.backup_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(f"{self.backup_dir}: cannot list: {exc.strerror or exc}") from None
        found: list[tuple[int, Path]] = []
        for entry in entries:
            m = self._backup_re.match(entry.name)
            if m is None:
                continue
            with contextlib.suppress(ValueError):
                found.append((_parse_stamp(m.group(1), m.group(2)), entry))
        found.sort(key=lambda item: item[0], reverse=True)
        return found

    # ------------------------------------------------------------------ backups
    def backups(self) -> list[Backup]:
        """Kept versions, newest first (index 0 is the one the last save replaced)."""
        out: list[Backup] = []
        for ms, path in self._backup_files():
            try:
                check_config(read_settings_file(path), str(path))
                valid = True
            except (OSError, ConfigError):
                valid = False
            out.append(Backup(path, datetime.fromtimestamp(ms / 1000, tz=UTC), valid))
        return out

    def rollback(self, n: int = 0) -> Rollback:
        """Make backup ``n`` (0 = newest) the settings again. It goes through :meth:`save`,
        so the settings it replaces become the newest backup and a rollback can itself be
        rolled back."""
        with self._lock:
            kept = self.backups()
            if not 0 <= n < len(kept):
                have = f"0..{len(kept) - 1}" if kept else "none"
                raise ConfigError(f"{self.backup_dir}: there is no backup {n} (have {have})")
            backup = kept[n]
            try:
                data = read_settings_file(backup.path)
            except OSError as exc:
                raise ConfigError(f"{backup.path}: cannot read: {exc.strerror or exc}") from None
            config = check_config(data, str(backup.path))
            return Rollback(backup, config, self.save(config))


# ----------------------------------------------------------------------- autosave
class Autosaver:
    """Saves the settings once editing pauses, instead of on every keystroke.

    :meth:`changed` is cheap and is called on every edit; the save happens when no
    further change came for ``quiet_period`` seconds, in a worker thread (an fsync can
    take a while and the event loop drives the UI). Call :meth:`flush` (or
    :meth:`aclose`) before exiting so that the last edit is never lost.

    Cancel-safe: cancelling a caller of :meth:`flush` or the autosaver's own timer never
    leaves a half-written file (saves are atomic and run to completion in their thread),
    a change not yet written stays pending for the next flush, and saves happen in the
    order the changes were made.
    """

    def __init__(self, store: ConfigStore, quiet_period: float = 2.0) -> None:
        if quiet_period < 0:
            raise ValueError("quiet_period must be >= 0")
        self.store = store
        self.quiet_period = quiet_period
        self.saves = 0  # saves that wrote the file
        self.last_error: str | None = None
        self._pending: ClientConfig | None = None
        self._deadline = 0.0
        self._timer: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[bool] | None = None

    @property
    def pending(self) -> bool:
        """A change is waiting to be written."""
        return self._pending is not None

    @property
    def idle(self) -> bool:
        """Nothing pending and no save running."""
        return self._pending is None and (self._inflight is None or self._inflight.done())

    def changed(self, config: ClientConfig) -> None:
        """Note an edit; the newest config is what will be saved. Needs a running loop."""
        loop = asyncio.get_running_loop()
        self._pending = config
        self._deadline = loop.time() + self.quiet_period
        if self._timer is None or self._timer.done():
            self._timer = loop.create_task(self._wait_and_save(), name="config-autosave")

    async def _wait_and_save(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending is not None:
            delay = self._deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if await self._save_pending() == "failed":
                return  # retried on the next change or flush, not in a tight loop

    async def flush(self) -> bool:
        """Save a pending change now; True when the file was written.

        Raises :class:`ConfigError` when the save fails (the change stays pending).
        """
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        written = False
        while self._pending is not None:
            outcome = await self._save_pending()
            if outcome == "failed":
                raise ConfigError(self.last_error or "the settings could not be saved")
            written = written or outcome == "written"
        if self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight])
        return written

    async def aclose(self) -> None:
        """Stop the timer and write what is pending (errors are logged, not raised)."""
        try:
            await self.flush()
        except ConfigError as exc:
            log.error("settings not saved on exit: %s", exc)

    async def _save_pending(self) -> Literal["written", "unchanged", "failed"]:
        """Write the pending config once any save still running has finished."""
        while self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight])  # never cancels it, and keeps the order
        config = self._pending
        if config is None:
            return "unchanged"
        self._pending = None
        future = asyncio.ensure_future(asyncio.to_thread(self.store.save, config))
        future.add_done_callback(functools.partial(self._saved, config))
        self._inflight = future
        # A cancelled caller stops waiting here; the save itself runs to completion.
        await asyncio.wait([future])
        if future.cancelled() or future.exception() is not None:
            return "failed"
        return "written" if future.result() else "unchanged"

    def _saved(self, config: ClientConfig, future: asyncio.Future[bool]) -> None:
        """Bookkeeping that runs even when whoever awaited the save was cancelled."""
        exc = asyncio.CancelledError() if future.cancelled() else future.exception()
        if exc is None:
            self.last_error = None
            if future.result():
                self.saves += 1
            return
        self.last_error = str(exc) or type(exc).__name__
        if self._pending is None:
            self._pending = config  # not lost: the next change or flush writes it
        log.error("autosave of %s failed: %s", self.store.path, self.last_error)
