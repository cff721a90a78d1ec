"""The sink's settings: defaults, each server URL checked, the duplicate window's floor."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import BackendConfig
from app.config.nats_schema import nats_servers


def test_defaults_keep_the_bridge() -> None:
    cfg = BackendConfig()
    assert cfg.sink == "bridge"
    assert nats_servers(cfg.nats_url) == ["nats://127.0.0.1:4222"]
    assert (cfg.nats_stream, cfg.nats_replicas, cfg.nats_duplicate_window_s) == ("TICKS", 1, 600)


def test_several_servers_comma_separated() -> None:
    cfg = BackendConfig(nats_url="nats://a:4222, tls://b.example:4443")
    assert nats_servers(cfg.nats_url) == ["nats://a:4222", "tls://b.example:4443"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://a:4222", "is not a nats://HOST:PORT URL"),
        ("nats://:4222", "is not a nats://HOST:PORT URL"),
        ("nats://a", "is not a nats://HOST:PORT URL"),
        ("nats://a:99999", "the port is not a number"),
        ("nats://a:4222,ws://b:1", "'ws://b:1' is not a nats://"),
        ("nats://u:secret@a:4222", "no credentials in the URL"),
        ("nats://u:se/cret@a", "no credentials in the URL"),
        (" , ", "no NATS server given"),
    ],
)
def test_bad_server_is_one_clear_line(url: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        BackendConfig(nats_url=url)
    assert says in str(info.value)
    assert "secret" not in str(info.value).split("input_value")[0]  # not echoed


def test_duplicate_window_must_outlast_the_longest_reconnect() -> None:
    with pytest.raises(ValidationError, match="below the longest reconnect"):
        BackendConfig(nats_duplicate_window_s=10, backoff={"maximum_s": 30})
    assert BackendConfig(nats_duplicate_window_s=30, backoff={"maximum_s": 30})


@pytest.mark.parametrize("replicas", [0, 6])
def test_replicas_within_one_to_five(replicas: int) -> None:
    with pytest.raises(ValidationError):
        BackendConfig(nats_replicas=replicas)
