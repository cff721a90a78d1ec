"""TLS for each endpoint the settings name: the one context factory, applied per URL.

``host:port`` pins need the port, so a context is made per endpoint, never shared.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Collection
from urllib.parse import urlsplit

from app.config.load import ConfigError
from app.config.schema import SecurityConfig
from app.security.tls import TlsSettings, check_plaintext_url, make_client_context

log = logging.getLogger(__name__)

PinFailureHook = Callable[[str, str, str], None]


def tls_settings(config: SecurityConfig) -> TlsSettings:
    tls = config.tls
    return TlsSettings(
        min_version=tls.min_version,
        ca_bundle=tls.ca_bundle,
        pins={host: tuple(pins) for host, pins in tls.pins.items()},
    )


class PlaintextRefusedError(ConfigError):
    """Plain ``ws://``/``http://`` to another machine that the settings do not allow."""


def tls_context_for(
    url: str,
    settings: TlsSettings,
    on_pin_failure: PinFailureHook | None = None,
    *,
    plaintext_allowed: Collection[str] = (),
) -> ssl.SSLContext | None:
    """The one TLS context factory, per endpoint (``host:port`` pins need the port).

    Plaintext to anything but loopback is refused (:class:`PlaintextRefusedError`)
    unless its ``host:port`` is listed in ``plaintext_allowed``
    (``security.plaintext_allowed``): a warning alone let a password cross the network
    in clear.
    """
    if urlsplit(url).scheme not in ("https", "wss"):
        warning = check_plaintext_url(url)
        if warning:
            if plaintext_endpoint(url) not in {_normal(e) for e in plaintext_allowed}:
                raise PlaintextRefusedError(
                    f"{warning}; refused (to allow it anyway, list "
                    f"{plaintext_endpoint(url)!r} in security.plaintext_allowed)"
                )
            log.warning("%s (allowed by security.plaintext_allowed)", warning)
        return None
    return make_client_context(settings, url, on_pin_failure=on_pin_failure)


def plaintext_endpoint(url: str) -> str:
    """``host:port`` of a plain ``ws://``/``http://`` URL (port 80 when not given)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port or 80
    except ValueError:
        port = 80
    return _normal(f"{parts.hostname or ''}:{port}")


def _normal(endpoint: str) -> str:
    text = endpoint.strip().lower()
    return text if ":" in text.lstrip("[").split("]")[-1] else f"{text}:80"
