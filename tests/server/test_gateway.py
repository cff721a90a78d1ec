"""The API gateway against a raw httpx client: logins, tokens, settings with ETags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.server import ReferenceBackend
from tests.server.conftest import add_user, poll_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def http(backend: ReferenceBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=backend.gateway_url, timeout=10) as client:
        yield client


async def login(http: httpx.AsyncClient, user: str = "trader", password: str = "trader") -> str:
    answer = await http.post("/api/auth/login", json={"username": user, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_health(http: httpx.AsyncClient) -> None:
    answer = await http.get("/health")
    assert answer.json() == {"status": "ok", "service": "gateway"}


async def test_login_gives_a_bearer_token(http: httpx.AsyncClient) -> None:
    answer = await http.post("/api/auth/login", json={"username": "trader", "password": "trader"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 32


@pytest.mark.parametrize(
    ("user", "password"), [("trader", "wrong"), ("nobody", "trader"), ("trader", "")]
)
async def test_a_wrong_login_is_401(http: httpx.AsyncClient, user: str, password: str) -> None:
    answer = await http.post("/api/auth/login", json={"username": user, "password": password})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_credentials"


async def test_a_malformed_login_is_400(http: httpx.AsyncClient) -> None:
    for body in (b"not json", b"[]", b'{"username": "trader"}'):
        answer = await http.post("/api/auth/login", content=body)
        assert answer.status_code == 400
        assert answer.json()["error"] == "bad_request"


async def test_there_is_no_default_login(db_path: Path) -> None:
    async with (
        ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path) as backend,
        httpx.AsyncClient(base_url=backend.gateway_url) as http,
    ):
        for user, password in (("trader", "trader"), ("admin", "admin"), ("", "")):
            bad = await http.post("/api/auth/login", json={"username": user, "password": password})
            assert bad.status_code == 401
        add_user(db_path, "ann", "s3cret", ["desk-1"])  # picked up while running
        await login(http, "ann", "s3cret")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dHJhZGVyOm5vcGU="}],
)
async def test_protected_routes_need_a_valid_token(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/api/settings/desk-1"),
        ("PUT", "/api/settings/desk-1"),
        ("POST", "/api/auth/refresh"),
        ("GET", "/api/bridge/stats"),
    ):
        answer = await http.request(method, path, headers=headers)
        assert answer.status_code == 401, (method, path)
        assert answer.json()["error"] in ("unauthorized", "invalid_token", "invalid_credentials")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_expired_token_is_401_and_cannot_be_refreshed(db_path: Path) -> None:
    add_user(db_path)
    async with (
        ReferenceBackend(
            bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path, token_ttl=0.2
        ) as backend,
        httpx.AsyncClient(base_url=backend.gateway_url) as http,
    ):
        token = await login(http)
        answer = await http.post(
            "/api/auth/login", json={"username": "trader", "password": "trader"}
        )
        assert answer.json()["expires_in"] == 0.2
        assert (await http.get("/api/settings/desk-1", headers=bearer(token))).status_code == 200

        async def rejected() -> bool:
            answer = await http.get("/api/settings/desk-1", headers=bearer(token))
            return answer.status_code == 401

        await poll_until(rejected, 10, "the token to expire")
        refreshed = await http.post("/api/auth/refresh", headers=bearer(token))
        assert refreshed.status_code == 401
        assert refreshed.json()["error"] in ("token_expired", "invalid_token")


async def test_refresh_gives_a_new_working_token(http: httpx.AsyncClient) -> None:
    token = await login(http)
    answer = await http.post("/api/auth/refresh", headers=bearer(token))
    assert answer.status_code == 200
    new = answer.json()["access_token"]
    assert new != token
    assert (await http.get("/api/settings/desk-1", headers=bearer(new))).status_code == 200


async def test_settings_follow_the_etag_rules(http: httpx.AsyncClient) -> None:
    auth = bearer(await login(http))
    first = await http.get("/api/settings/desk-1", headers=auth)
    assert first.json() == {"version": 0, "settings": {}}
    assert first.headers["ETag"] == '"0"'

    missing = await http.put("/api/settings/desk-1", headers=auth, json={"settings": {"a": 1}})
    assert missing.status_code == 428
    assert missing.json()["error"] == "precondition_required"

    put = await http.put(
        "/api/settings/desk-1", headers={**auth, "If-Match": '"0"'}, json={"settings": {"a": 1}}
    )
    assert put.status_code == 200
    assert put.json() == {"version": 1, "settings": {"a": 1}}
    assert put.headers["ETag"] == '"1"'

    stale = await http.put(
        "/api/settings/desk-1", headers={**auth, "If-Match": '"0"'}, json={"settings": {"b": 2}}
    )
    assert stale.status_code == 412
    assert stale.json() == {"version": 1, "settings": {"a": 1}}
    assert stale.headers["ETag"] == '"1"'

    garbled = await http.put(
        "/api/settings/desk-1", headers={**auth, "If-Match": "one"}, json={"settings": {}}
    )
    assert garbled.status_code == 412

    bad_body = await http.put(
        "/api/settings/desk-1", headers={**auth, "If-Match": '"1"'}, json={"settings": [1]}
    )
    assert bad_body.status_code == 400

    again = await http.put(
        "/api/settings/desk-1",
        headers={**auth, "If-Match": put.headers["ETag"]},
        json={"settings": {"a": 2, "nested": {"x": [1, 2]}}},
    )
    assert again.json()["version"] == 2
    now = await http.get("/api/settings/desk-1", headers=auth)
    assert now.json() == {"version": 2, "settings": {"a": 2, "nested": {"x": [1, 2]}}}
    assert now.headers["ETag"] == '"2"'
    other = await http.get("/api/settings/desk-2", headers=auth)
    assert other.json() == {"version": 0, "settings": {}}


async def test_settings_survive_a_restart(db_path: Path) -> None:
    add_user(db_path)
    for expected_version in (0, 1):
        async with (
            ReferenceBackend(bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path) as b,
            httpx.AsyncClient(base_url=b.gateway_url) as http,
        ):
            auth = bearer(await login(http))
            doc = (await http.get("/api/settings/desk-1", headers=auth)).json()
            assert doc["version"] == expected_version
            if expected_version == 0:
                answer = await http.put(
                    "/api/settings/desk-1",
                    headers={**auth, "If-Match": '"0"'},
                    json={"settings": {"theme": "dark"}},
                )
                assert answer.status_code == 200
            else:
                assert doc["settings"] == {"theme": "dark"}


async def test_bridge_stats_have_the_documented_shape(http: httpx.AsyncClient) -> None:
    answer = await http.get("/api/bridge/stats", headers=bearer(await login(http)))
    assert answer.status_code == 200
    assert answer.json() == {
        "ticks_received": 0,
        "ticks_stored": 0,
        "batches_stored": 0,
        "duplicate_batches": 0,
        "refused_messages": 0,
        "lost_batches": 0,
        "refused_by_reason": {},
        "sessions": [],
    }


async def test_unknown_routes_answer_json(http: httpx.AsyncClient) -> None:
    answer = await http.get("/nope")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    wrong_method = await http.delete("/api/auth/login")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


async def test_no_password_or_token_is_logged(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await http.post("/api/auth/login", json={"username": "trader", "password": "hunter2-wrong"})
    token = await login(http)
    await http.get("/api/settings/x", headers=bearer(token))
    assert "hunter2" not in caplog.text
    assert token not in caplog.text
