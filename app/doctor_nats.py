"""``trading-client doctor``'s check of the NATS servers, when the ticks go to JetStream.

Why: with ``backend.sink`` ``nats`` or ``both`` a capture that cannot publish only fills
its spool, and the reason — a server down, a server started without ``-js``, a stream
that exists with other subjects, three replicas asked of a lone server — shows only in
the log. So each server of ``backend.nats_url`` gets one line: reached (with the
settings' login and TLS), JetStream enabled, and the stream present (as the settings want
it, or with what the next start will update) or creatable. Nothing is created or changed.

The login is read from the system keyring only: the doctor never asks for the encrypted
file's master password, so with that vault a server that wants a login is reported as
answering, not further checked.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from urllib.parse import urlsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import StreamInfo

from app.config import ClientConfig, ConfigError
from app.config.nats_schema import nats_servers
from app.doctor_check import Check, Level, tcp_error
from app.link.delivery import nats_options
from app.nats.connect import NatsOptions, open_connection
from app.nats.stream import StreamRefusedError, differences
from app.nats.subjects import StreamSpec
from app.security.logins import nats_credential_name
from app.security.secret import Secret
from app.security.vault import VaultError, keyring_status
from app.security.vault.os_keyring import KeyringVault

__all__ = ["check_nats"]

_Line = tuple[Level, str, str]  # level, detail, fix

_START = "start nats-server with JetStream (nats-server -js, or 'jetstream {}' in its config)"
_UNREACHABLE = f"{_START}, or correct backend.nats_url; ticks wait in the spool until it is up"


def check_nats(config: ClientConfig, timeout: float) -> list[Check]:
    """One line per server of ``backend.nats_url``; none when the sink is the bridge."""
    b = config.backend
    if not b.enabled or b.sink == "bridge":
        return []
    try:
        servers = nats_servers(b.nats_url)
        secret, login_note = _keyring_secret(config)
        options = nats_options(b, config.security, secret, _no_hook)
    except (ValueError, ConfigError) as exc:
        return [Check("fail", "nats", str(exc), "correct backend.nats_url or security settings")]
    options = replace(options, connect_timeout=timeout, ack_timeout=max(timeout, 2.0))
    lines = asyncio.run(_check_servers(options, servers, login_note))
    if any(level == "ok" for level, _, _ in lines):
        lines = [_one_of_several(line) for line in lines]
    return [
        Check(level, f"nats {url}", detail, fix)
        for url, (level, detail, fix) in zip(servers, lines, strict=True)
    ]


def _no_hook(_url: str, _expected: str, _actual: str) -> None:
    """A pin mismatch fails the handshake, which the server's line reports."""


def _one_of_several(line: _Line) -> _Line:
    """One server down of several is a warning: the sink publishes through the others."""
    level, detail, fix = line
    if level == "fail" and detail.startswith("unreachable"):
        return "warn", f"{detail} (the other servers answer)", fix
    return line


def _keyring_secret(config: ClientConfig) -> tuple[Secret | None, str]:
    """The NATS password (or token) when the system keyring holds it; else None and why."""
    name = nats_credential_name(config.backend.nats_username)
    if config.security.vault == "file" or not keyring_status().usable:
        return None, f"{name} is not read by doctor (the vault is the encrypted file)"
    try:
        secret = KeyringVault().get(name)
    except VaultError as exc:
        return None, f"{name} could not be read from the keyring: {exc}"
    return secret, "" if secret is not None else f"no {name} in the keyring"


async def _check_servers(options: NatsOptions, servers: list[str], login_note: str) -> list[_Line]:
    return [await _check_server(replace(options, servers=(url,)), login_note) for url in servers]


async def _check_server(options: NatsOptions, login_note: str) -> _Line:
    url = urlsplit(options.servers[0])
    refused = await asyncio.to_thread(
        tcp_error, url.hostname or "", url.port or 4222, options.connect_timeout
    )
    if refused is not None:
        return "fail", f"unreachable: {refused}", _UNREACHABLE
    try:
        nc, _ = await asyncio.wait_for(open_connection(options), options.connect_timeout + 1)
    except (OSError, TimeoutError) as exc:
        detail = _why(str(exc), options.servers[0]) if isinstance(exc, OSError) else ""
        if "authorization" in detail.lower():
            if login_note:
                return "warn", f"answers, asks for a login; {login_note}", ""
            return (
                "fail",
                f"login refused: {detail}",
                "check backend.nats_username and its password: trading-client credentials "
                f"set {nats_credential_name(options.username)}",
            )
        why = detail or f"no answer within {options.connect_timeout:g} s"
        return "fail", f"unreachable: {why}", _UNREACHABLE
    try:
        return await _check_jetstream(nc, options)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), options.connect_timeout + 1)


def _why(message: str, url: str) -> str:
    """The server's own failure out of :func:`open_connection`'s one line."""
    inner = message.partition("(")[2].removesuffix(")") or message
    return inner.removeprefix(f"{url}: ")


async def _check_jetstream(nc: Client, options: NatsOptions) -> _Line:
    info = nc._server_info  # the server's INFO: the only place its cluster shows
    name = f"{info.get('server_name') or '?'} {info.get('version') or ''}".strip()
    if not info.get("jetstream"):
        return "fail", f"reached ({name}), but JetStream is not enabled", _START
    js = nc.jetstream(timeout=options.ack_timeout)
    spec = options.stream
    try:
        stream: StreamInfo | None = await js.stream_info(spec.name)
    except nats.js.errors.NotFoundError:
        stream = None
    except (nats.errors.Error, TimeoutError) as exc:
        return "fail", f"reached ({name}), but JetStream does not answer: {exc}", _START
    up = f"reached ({name}), JetStream on"
    if stream is None:
        return _creatable(up, spec, bool(info.get("cluster")))
    try:
        changes = differences(stream, spec)
    except StreamRefusedError as exc:
        return "fail", f"{up}; {exc}", "the client refuses to publish into this stream"
    held = f"stream {spec.name} present ({stream.state.messages:,} messages)"
    if changes:
        return "ok", f"{up}; {held}; the next start updates {', '.join(changes)}", ""
    return "ok", f"{up}; {held}", ""


def _creatable(up: str, spec: StreamSpec, clustered: bool) -> _Line:
    """Missing is fine (the sink creates it), except replicas no lone server can hold. A
    cluster's size is not checked: its INFO lists the servers it has heard of so far."""
    if spec.replicas > 1 and not clustered:
        return (
            "fail",
            f"{up}; stream {spec.name} is missing and cannot be created: "
            f"{spec.replicas} replicas need a cluster, this server is alone",
            "set backend.nats_replicas to 1, or run a cluster of that many servers",
        )
    return "ok", f"{up}; stream {spec.name} missing: the first start creates it", ""
