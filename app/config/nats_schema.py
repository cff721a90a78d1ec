"""The NATS JetStream sink's settings, mixed into ``backend`` (issue #17).

Kept apart from :mod:`app.config.schema` (which is near its size limit) but flat in the
``backend`` section: ``backend.sink`` chooses where the sequenced ticks go (the bridge,
a JetStream stream, or both) and the ``nats_*`` fields describe the stream and how to
reach it. Passwords and tokens never live here: they are in the credential vault under
``nats/<username>`` or ``nats/token``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from app.config.section import Section
from app.nats.urls import parse_servers

__all__ = ["NatsSinkFields", "check_duplicate_window", "nats_servers"]

_EXAMPLE = "nats://127.0.0.1:4222"


def nats_servers(value: str) -> list[str]:
    """The servers of a ``nats_url`` setting (comma-separated), each checked by the one
    parser of NATS servers (:func:`app.nats.urls.parse_servers`); else ValueError."""
    return list(parse_servers(value))


def check_duplicate_window(window_s: float, longest_reconnect_s: float) -> None:
    """A resend after the stream's duplicate window is stored twice in the stream, so the
    window must outlast the longest reconnect delay of the backoff."""
    if window_s < longest_reconnect_s:
        raise ValueError(
            f"backend.nats_duplicate_window_s {window_s:g} is below the longest reconnect "
            f"delay backend.backoff.maximum_s {longest_reconnect_s:g}: a resend could be "
            "stored twice"
        )


class NatsSinkFields(Section):
    """The ``backend`` fields of the JetStream sink (see the module docstring)."""

    sink: Literal["bridge", "nats", "both"] = Field(
        "bridge",
        description="Where captured ticks go: the data bridge, a NATS JetStream stream, "
        "or both (each with its own durable spool).",
    )
    nats_url: str = Field(
        _EXAMPLE,
        description="NATS servers, comma-separated (nats:// or tls://host:port).",
    )
    nats_stream: str = Field(
        "TICKS",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="JetStream stream of the ticks (subjects ticks.>); created if missing.",
    )
    nats_replicas: int = Field(
        1, ge=1, le=5, description="Copies of the stream in the cluster (3 needs 3 servers)."
    )
    nats_duplicate_window_s: float = Field(
        600.0,
        gt=0,
        le=7 * 86_400,
        description="How long the stream remembers message ids to drop a resend, s "
        "(at least the longest reconnect delay).",
    )
    nats_max_age_s: float = Field(
        7 * 86_400.0,
        ge=0,
        description="How long the stream keeps ticks, s (0: no limit).",
    )
    nats_max_bytes: int = Field(
        0, ge=0, description="Largest size of the stream, bytes (0: no limit)."
    )
    nats_username: str | None = Field(
        None,
        description="NATS user; its password lives in the credential vault "
        "(trading-client credentials set nats/<username>); without it a token stored as "
        "nats/token is used, if any.",
    )
    nats_ack_timeout_s: float = Field(
        5.0, gt=0, le=300, description="Longest wait for the stream to acknowledge a publish, s."
    )
    nats_max_in_flight: int = Field(
        256,
        ge=1,
        le=100_000,
        description="NATS messages published but not yet acknowledged by the stream, at most.",
    )

    @field_validator("nats_url")
    @classmethod
    def _servers(cls, v: str) -> str:
        nats_servers(v)
        return v
