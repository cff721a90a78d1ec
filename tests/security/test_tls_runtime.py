"""The runtime's own connections (wss bridge, https hub) go through the one TLS factory:
a pinned reference backend over TLS is used, a wrong pin refuses every connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ClientConfig
from app.runtime import Runtime
from app.security.secret import Secret
from app.server.server import ReferenceBackend
from tests.conftest import wait_until
from tests.security.test_tls import Pki, _server_context, pki  # noqa: F401 - fixture
from tests.server.conftest import ADMIN_KEY, KEYS

pytestmark = pytest.mark.slow


def _config(backend: ReferenceBackend, tmp_path: Path, certs: Pki, pin: str) -> ClientConfig:
    return ClientConfig.model_validate(
        {
            "terminals": [
                {"symbols": ["EURUSD"], "rates": {"EURUSD": 500}, "market_hours": "always"}
            ],
            "pool": {"size": 1},
            "security": {"tls": {"ca_bundle": str(certs.ca_pem), "pins": {"127.0.0.1": [pin]}}},
            "backend": {
                "bridge_url": backend.bridge_url,
                "gateway_url": backend.gateway_url,
                "hub_url": backend.hub_url,
                "embedded": "never",
                "client_id": "tls-desk",
                "spool_dir": str(tmp_path / "spool"),
                "hub_heartbeat_s": 0.5,
                "backoff": {"initial_s": 0.1, "maximum_s": 0.5},
            },
        }
    )


async def test_pinned_tls_backend_is_used_and_a_wrong_pin_is_refused(
    pki: Pki,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with ReferenceBackend(
        bridge_port=0,
        gateway_port=0,
        hub_port=0,
        db_path=tmp_path / "b.sqlite",
        ssl_context=_server_context(pki),
        keys=KEYS,
    ) as backend:
        assert backend.bridge_url.startswith("wss://")
        rt = Runtime(_config(backend, tmp_path, pki, pki.spki), credential=Secret(ADMIN_KEY))
        await rt.start()
        try:
            assert rt.link is not None
            assert rt.hub is not None
            link, hub = rt.link, rt.hub
            await wait_until(lambda: link.state.ticks_acked > 100, 60, "acks over wss")
            await wait_until(lambda: hub.state.registered, 60, "registration over https")
        finally:
            await rt.stop()

        rt = Runtime(_config(backend, tmp_path, pki, pki.other_spki), credential=Secret(ADMIN_KEY))
        await rt.start()
        try:
            assert rt.link is not None
            assert rt.hub is not None
            link, hub = rt.link, rt.hub
            await wait_until(lambda: "pin mismatch" in link.state.last_error, 30, "refusal")
            assert pki.spki in link.state.last_error
            assert pki.other_spki in link.state.last_error
            assert "127.0.0.1" in link.state.last_error
            await wait_until(lambda: "pin" in hub.state.last_error, 30, "hub refusal")
            assert not link.state.connected
            assert link.state.ticks_acked == 0
            assert not hub.state.registered
        finally:
            await rt.stop()
        assert backend.store.stats()["sessions"][0]["ticks"] > 100
        assert len(backend.store.stats()["sessions"]) == 1
