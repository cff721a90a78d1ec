"""The sink's login and transport security: a NATS user's password from the vault, a
wrong one said without the secret, ``tls://`` through the project's TLS context and
plain ``nats://`` to another machine refused like any plaintext endpoint."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config import ClientConfig
from app.link.delivery import nats_options
from app.link.spool import Spool
from app.nats.cluster import LocalCluster, Node
from app.nats.connect import NatsOptions
from app.nats.sink import NatsLink
from app.nats.subjects import StreamSpec
from app.security.connections import PlaintextRefusedError
from app.security.logins import MissingCredentialError, nats_credential
from app.security.secret import Secret
from app.security.vault.encrypted_file import FileVault

PASSWORD = "s3cret-nats-pw"


class AuthCluster(LocalCluster):
    def _config(self, node: Node) -> str:
        return super()._config(node) + f'authorization {{ user: bob, password: "{PASSWORD}" }}\n'


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[LocalCluster]:
    with AuthCluster(tmp_path / "nats-auth", size=1) as cluster:
        yield cluster


def run_until(link: NatsLink, done: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Run ``link`` until ``done()`` (True) or the deadline (False)."""

    async def body() -> bool:
        task = asyncio.create_task(link.run())
        try:
            deadline = time.monotonic() + timeout
            while not done():
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.02)
            return True
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await link.close()

    return asyncio.run(body())


def test_the_users_password_logs_in_and_a_wrong_one_is_said_without_it(
    auth_server: LocalCluster,
) -> None:
    spool = Spool(2**20, 0, None, client_id="desk", session="s1")
    good = NatsOptions(tuple(auth_server.urls), StreamSpec(), username="bob",
                       password=Secret(PASSWORD))  # fmt: skip
    link = NatsLink(good, "desk", spool)
    assert run_until(link, lambda: link.connected), link.state.last_error
    bad = NatsOptions(tuple(auth_server.urls), StreamSpec(), username="bob",
                      password=Secret("wrong-" + PASSWORD))  # fmt: skip
    refused = NatsLink(bad, "desk", Spool(2**20, 0, None, client_id="desk", session="s2"))
    assert run_until(refused, lambda: bool(refused.state.last_error)), "refusal not said"
    error = refused.state.last_error
    assert not refused.connected
    assert "authorization" in error.lower() or "no NATS server answered" in error
    assert PASSWORD not in error


def test_the_vault_holds_the_nats_password_under_nats_user(tmp_path: Path) -> None:
    vault = FileVault(tmp_path / "vault.bin", Secret("master-pass-123"))
    config = ClientConfig.model_validate({"backend": {"sink": "nats", "nats_username": "bob"}})
    with pytest.raises(MissingCredentialError, match="credentials set nats/bob"):
        nats_credential(config, vault)
    vault.set("nats/bob", Secret(PASSWORD))
    assert nats_credential(config, vault) == Secret(PASSWORD)
    token_only = ClientConfig.model_validate({"backend": {"sink": "both"}})
    assert nats_credential(token_only, vault) is None  # no token stored: no login
    vault.set("nats/token", Secret("tok-123"))
    assert nats_credential(token_only, vault) == Secret("tok-123")
    bridge = ClientConfig.model_validate({"backend": {"nats_username": "bob"}})
    assert nats_credential(bridge, vault) is None  # the sink does not use NATS


def _fail(host: str, expected: str, actual: str) -> None:
    raise AssertionError("no pin is configured")


def test_tls_servers_get_the_projects_context_and_remote_plaintext_is_refused() -> None:
    tls = ClientConfig.model_validate(
        {"backend": {"sink": "nats", "nats_url": "tls://nats.example.com:4443"}}
    )
    options = nats_options(tls.backend, tls.security, Secret("tok"), _fail)
    assert isinstance(options.tls, ssl.SSLContext)
    assert options.token == Secret("tok")
    assert options.password is None
    plain = ClientConfig.model_validate(
        {"backend": {"sink": "nats", "nats_url": "nats://nats.example.com:4222"}}
    )
    with pytest.raises(PlaintextRefusedError, match="plaintext_allowed"):
        nats_options(plain.backend, plain.security, None, _fail)
    local = ClientConfig.model_validate({"backend": {"sink": "nats"}})
    assert nats_options(local.backend, local.security, None, _fail).tls is None
