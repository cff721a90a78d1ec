"""The tick stream at start: created when missing, checked (and safely updated) when not.

Why at start and on every connect: a sink publishing into a stream whose subjects do not
cover ``ticks.>`` gets no acks at all (its spool only grows), and one whose duplicate
window is shorter than a reconnect stores resends twice. So the stream is made to match
:class:`~app.nats.subjects.StreamSpec` before the first publish. Retention (age, bytes)
and the duplicate window are safe to change on a live stream and are updated; the
subjects and the storage are not (they would take another client's stream over, or cannot
change at all), so a mismatch there is refused with one line naming the difference. The
cluster may refuse too (3 replicas on one server): that is one line as well.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig, StreamInfo
from nats.js.errors import APIError, NotFoundError

from app.config import BackendConfig
from app.nats.subjects import StreamSpec

__all__ = [
    "StreamRefusedError",
    "differences",
    "ensure_stream",
    "stream_config",
    "stream_spec",
]


class StreamRefusedError(RuntimeError):
    """The stream cannot be made to match the settings: the message says why, in one line."""


def stream_spec(config: BackendConfig) -> StreamSpec:
    """The stream the ``backend`` settings describe."""
    return StreamSpec(
        name=config.nats_stream,
        replicas=config.nats_replicas,
        duplicate_window_s=config.nats_duplicate_window_s,
        max_age_s=config.nats_max_age_s,
        max_bytes=config.nats_max_bytes,
    )


def stream_config(spec: StreamSpec) -> StreamConfig:
    """The JetStream configuration of ``spec`` (limits of 0 are "unlimited"); the one
    place it is written, for the sink, the bridge's forwarder and relay, and the benches."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        num_replicas=spec.replicas,
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s,
        max_bytes=spec.max_bytes if spec.max_bytes > 0 else -1,
    )


def _why(exc: APIError) -> str:
    return exc.description or f"error {exc.err_code or exc.code}"


async def ensure_stream(js: JetStreamContext, spec: StreamSpec, *, update: bool = True) -> str:
    """Create the stream, or check it and update what is safe; returns what was done
    (``created``, ``updated: ...``, ``kept: ...`` or ``ok``). Raises
    :class:`StreamRefusedError`.

    ``update=False`` leaves the safe differences as they are (``kept: ...``): for a
    publisher with no settings of its own (the bridge's forwarder), which must not undo
    the retention the clients' settings chose."""
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        try:
            await js.add_stream(stream_config(spec))
        except APIError as exc:
            raise StreamRefusedError(
                f"the NATS cluster refused to create stream {spec.name} "
                f"({spec.replicas} replica(s)): {_why(exc)}"
            ) from None
        return "created"
    changes = differences(info, spec)
    if not changes:
        return "ok"
    if not update:
        return "kept: " + ", ".join(changes)
    try:
        await js.update_stream(
            info.config.evolve(
                num_replicas=spec.replicas,
                duplicate_window=spec.duplicate_window_s,
                max_age=spec.max_age_s,
                max_bytes=spec.max_bytes if spec.max_bytes > 0 else -1,
            )
        )
    except APIError as exc:
        raise StreamRefusedError(
            f"the NATS cluster refused to update stream {spec.name} ({', '.join(changes)}): "
            f"{_why(exc)}"
        ) from None
    return "updated: " + ", ".join(changes)


def differences(info: StreamInfo, spec: StreamSpec) -> list[str]:
    """What differs between the live stream and ``spec``: refused outright when it is
    the subjects or the storage, else the list of safe changes."""
    live = info.config
    subjects = sorted(live.subjects or [])
    if subjects != sorted(spec.subjects):
        raise StreamRefusedError(
            f"stream {spec.name} exists with subjects {subjects}, not {list(spec.subjects)}: "
            "choose another backend.nats_stream or fix the stream"
        )
    if live.storage not in (None, StorageType.FILE):
        raise StreamRefusedError(
            f"stream {spec.name} exists with {live.storage} storage, not file: "
            "choose another backend.nats_stream"
        )
    changes = []
    if (live.num_replicas or 1) != spec.replicas:
        changes.append(f"replicas {live.num_replicas or 1} -> {spec.replicas}")
    if abs((live.duplicate_window or 0) - spec.duplicate_window_s) > 1e-3:
        changes.append(
            f"duplicate window {live.duplicate_window:g} s -> {spec.duplicate_window_s:g} s"
        )
    if abs((live.max_age or 0) - spec.max_age_s) > 1e-3:
        changes.append(f"max age {live.max_age or 0:g} s -> {spec.max_age_s:g} s")
    if max(live.max_bytes or 0, 0) != spec.max_bytes:
        changes.append(f"max bytes {max(live.max_bytes or 0, 0)} -> {spec.max_bytes}")
    return changes
