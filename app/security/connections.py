"""TLS for each endpoint the settings name: the one context factory, applied per URL.

``host:port`` pins need the port, so a context is made per endpoint, never shared.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

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


def tls_context_for(
    url: str, settings: TlsSettings, on_pin_failure: PinFailureHook | None = None
) -> ssl.SSLContext | None:
    """The one TLS context factory, per endpoint (``host:port`` pins need the port)."""
    if urlsplit(url).scheme not in ("https", "wss"):
        warning = check_plaintext_url(url)
        if warning:
            log.warning("%s", warning)
        return None
    return make_client_context(settings, url, on_pin_failure=on_pin_failure)
