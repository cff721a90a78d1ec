"""One TLS client context for every https/wss connection, with optional key pinning.

Why one factory: the API gateway and the central hub (httpx) and the data bridge
(websockets) must all refuse the same things: anything older than TLS 1.2, unverified
certificates, mismatched host names and, where configured, a server key other than the
pinned one. Building the :class:`ssl.SSLContext` in one place keeps those rules from
drifting apart between clients.

Why pinning hooks into the handshake: httpx (through httpcore and anyio) and websockets
(through asyncio's SSL transport) both drive the handshake themselves, and neither offers a
callback between "handshake done" and "first request byte written". Both create their TLS
objects through the context, though: ``SSLContext.wrap_bio`` instantiates
``context.sslobject_class`` (asyncio, anyio, trio, websockets' sync proxy path) and
``SSLContext.wrap_socket`` instantiates ``context.sslsocket_class`` (httpx's and
websockets' synchronous clients). The context made here points both attributes at
subclasses whose ``do_handshake()`` checks the pin right after OpenSSL finishes (and
after OpenSSL's own chain and host name verification passed), and raises
:class:`PinMismatchError` out of the handshake itself. Each client then fails the connect
the way it fails any certificate error, before it has written a single request byte.

The attributes are set on a plain ``ssl.SSLContext`` instance rather than on a subclass
because anyio moves ``wrap_bio`` of any context whose type is not exactly
``ssl.SSLContext`` to a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "PinFailureHook",
    "PinMismatchError",
    "TlsSettings",
    "check_plaintext_url",
    "make_client_context",
    "normalize_pin",
    "spki_sha256",
]

log = logging.getLogger(__name__)

#: Called with (host, expected pins joined by ", ", actual pin) just before a pin
#: mismatch refuses a connection; runs on the thread doing the handshake (the event loop
#: for the async clients), so it must be quick and must not block.
PinFailureHook = Callable[[str, str, str], None]

_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}
_SHA256_LEN = 32
#: OpenSSL's X509_V_ERR_APPLICATION_VERIFICATION: "rejected by the application".
_X509_V_ERR_APPLICATION_VERIFICATION = 50


class PinMismatchError(ssl.SSLCertVerificationError):
    """The server's key is not one of the pinned keys for this host.

    A subclass of :class:`ssl.SSLCertVerificationError` so every client treats it like
    any other certificate failure (asyncio reports "SSL handshake failed on verifying
    the certificate", httpx raises ``ConnectError``), with no special casing needed.
    """

    def __init__(self, host: str, expected: tuple[str, ...], actual: str) -> None:
        message = (
            f"TLS certificate pin mismatch for {host}: expected SPKI sha256 "
            f"{' or '.join(expected)}, server presented {actual}"
        )
        # (errno, strerror) so ``strerror`` is a string like OpenSSL's own errors: anyio
        # inspects it when it classifies a failed handshake.
        super().__init__(1, message)
        self.host = host
        self.expected = expected
        self.actual = actual
        self.verify_code = _X509_V_ERR_APPLICATION_VERIFICATION
        self.verify_message = message
        self.reason = "CERTIFICATE_PIN_MISMATCH"
        self.library = "SSL"

    def __str__(self) -> str:
        # httpx and websockets surface ``str(exc)``; without this it would be
        # "[Errno 1] ..." which reads like an OS error.
        return self.verify_message

    def __reduce__(self) -> tuple[type[PinMismatchError], tuple[str, tuple[str, ...], str]]:
        return (type(self), (self.host, self.expected, self.actual))


# ----------------------------------------------------------------------------- pins


def normalize_pin(pin: str) -> str:
    """Return ``pin`` as base64 SHA-256 (the HPKP ``pin-sha256`` form).

    Accepts base64 (optionally prefixed ``sha256/`` like OkHttp, or ``pin-sha256=`` with
    quotes like HPKP headers) and hex with or without colons, any case, because operators
    copy fingerprints from ``openssl`` output, browsers and HPKP docs alike. The two are
    never ambiguous: a SHA-256 is 44 base64 characters but 64 hex digits.
    """
    text = pin.strip()
    for prefix in ("pin-sha256=", "sha256/", "sha256:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :].strip().strip('"')
    hex_text = text.replace(":", "").replace(" ", "")
    raw: bytes
    if len(hex_text) == 2 * _SHA256_LEN and all(c in "0123456789abcdefABCDEF" for c in hex_text):
        raw = bytes.fromhex(hex_text)
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != _SHA256_LEN:
        raise ValueError(
            f"not a SHA-256 SPKI pin (base64 or hex): {pin!r}",
        )
    return base64.b64encode(raw).decode("ascii")


def spki_sha256(cert: bytes | str) -> str:
    """Base64 SHA-256 of a certificate's SubjectPublicKeyInfo (DER, or PEM text/bytes).

    The key, not the whole certificate, is pinned so a server can renew its certificate
    with the same key without a client update (the HPKP convention).
    """
    data = cert.encode("ascii") if isinstance(cert, str) else cert
    if data.lstrip().startswith(b"-----BEGIN"):
        parsed = x509.load_pem_x509_certificate(data)
    else:
        parsed = x509.load_der_x509_certificate(data)
    spki = parsed.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


# ------------------------------------------------------------------------- endpoints

_Endpoint = tuple[str, int | None]


def _normalize_host(host: str) -> str:
    """Lower case, no trailing dot, IP addresses in canonical form, so ``LOCALHOST.``,
    ``localhost`` and ``0:0::1`` vs ``::1`` all find the same pins."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _parse_endpoint(text: str) -> _Endpoint:
    """``host``, ``host:port``, ``[v6]:port``, bare IPv6 or a URL → (host, port or None).

    A URL without a port gets its scheme's default port, so a context made for
    ``wss://bridge`` finds pins keyed ``bridge:443``.
    """
    text = text.strip()
    port: int | None = None
    if "://" in text:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    elif text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unbalanced '[' in host {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"bad port in {text!r}")
            port = int(rest[1:])
    else:
        host = text
        try:
            ipaddress.ip_address(text)
        except ValueError:
            if text.count(":") == 1:
                host, _, port_text = text.partition(":")
                if not port_text.isdigit():
                    raise ValueError(f"bad port in {text!r}") from None
                port = int(port_text)
    if not host:
        raise ValueError(f"no host in {text!r}")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return _normalize_host(host), port


def _format_endpoint(endpoint: _Endpoint) -> str:
    host, port = endpoint
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TlsSettings:
    """What the configuration decides about TLS; everything else is fixed policy.

    ``pins`` maps ``host`` or ``host:port`` (``[v6]:port``) to the allowed SPKI SHA-256
    fingerprints. Several per host let a key rotation ship the next key's pin before the
    server switches. Values are normalised to base64 on construction, so a bad
    fingerprint fails when the configuration loads rather than at the first connect.
    """

    min_version: Literal["1.2", "1.3"] = "1.2"
    ca_bundle: Path | None = None
    # Not hashed (a mapping is not hashable); equality still compares it.
    pins: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.min_version not in ("1.2", "1.3"):
            raise ValueError(f"min_version must be '1.2' or '1.3', not {self.min_version!r}")
        if self.ca_bundle is not None and not isinstance(self.ca_bundle, Path):
            object.__setattr__(self, "ca_bundle", Path(self.ca_bundle))
        normalized: dict[str, tuple[str, ...]] = {}
        for key, values in self.pins.items():
            endpoint = _format_endpoint(_parse_endpoint(key))
            # A lone string is one pin, not a sequence of one-character pins.
            items: Iterable[str] = (values,) if isinstance(values, str) else values
            pins = tuple(dict.fromkeys(normalize_pin(v) for v in items))
            if not pins:
                raise ValueError(f"empty pin list for {key!r}: remove the entry to unpin it")
            normalized[endpoint] = tuple(dict.fromkeys(normalized.get(endpoint, ()) + pins))
        object.__setattr__(self, "pins", MappingProxyType(normalized))


# ---------------------------------------------------------------------------- pinning


@dataclass(frozen=True)
class _PinPolicy:
    """The pins one context enforces, and for which endpoint it was made."""

    pins: Mapping[_Endpoint, tuple[str, ...]]
    #: The endpoint passed to :func:`make_client_context`: its port makes ``host:port``
    #: pins apply, since a TLS object only knows the host name, not the port.
    bound: _Endpoint | None
    on_failure: PinFailureHook | None

    def expected(self, server_hostname: str) -> tuple[str, tuple[str, ...]] | None:
        """(label, pins) for this host, or None when the host is not pinned.

        Without a known port, every ``host:port`` entry for the host counts: refusing a
        key that is pinned on none of the host's ports is safer than not pinning.
        """
        host = _normalize_host(server_hostname)
        port = self.bound[1] if self.bound is not None and self.bound[0] == host else None
        if port is not None and (host, port) in self.pins:
            return _format_endpoint((host, port)), self.pins[(host, port)]
        if (host, None) in self.pins:
            return host, self.pins[(host, None)]
        if port is None:
            union = tuple(
                dict.fromkeys(p for (h, _), ps in self.pins.items() if h == host for p in ps)
            )
            if union:
                return host, union
        return None

    def check(self, server_hostname: str | None, der: bytes | None) -> PinMismatchError | None:
        """The error to raise for this peer certificate, or None when it is acceptable."""
        if not self.pins or server_hostname is None:
            return None
        wanted = self.expected(server_hostname)
        if wanted is None:
            return None
        label, expected = wanted
        try:
            actual = spki_sha256(der) if der else "(no certificate)"
        except Exception:
            # asyncio's SSL transport only expects SSLError out of a handshake; a parse
            # failure must still end as a refusal, not as an unhandled exception.
            log.exception("cannot parse the certificate of %s", label)
            actual = "(unparseable certificate)"
        if actual in expected:
            return None
        error = PinMismatchError(label, expected, actual)
        log.warning("%s", error)
        if self.on_failure is not None:
            try:
                self.on_failure(label, ", ".join(expected), actual)
            except Exception:
                # The audit hook failing must never turn a refusal into a connection.
                log.exception("TLS pin failure hook raised")
        return error


class _PinnedSSLObject(ssl.SSLObject):
    """Memory-BIO TLS (asyncio, anyio, trio) that checks the pin as the handshake ends."""

    _pin_policy: ClassVar[_PinPolicy]
    # Instances come from ``_create`` (``__init__`` is never called): class defaults.
    _pin_verified: bool = False
    _pin_error: PinMismatchError | None = None

    def do_handshake(self) -> None:
        if self._pin_error is not None:
            raise self._pin_error
        super().do_handshake()
        if not self._pin_verified:
            error = self._pin_policy.check(self.server_hostname, self.getpeercert(True))
            if error is not None:
                self._pin_error = error
                raise error
            self._pin_verified = True

    # SSL_read/SSL_write finish a pending handshake implicitly; route that through
    # do_handshake so a caller skipping it cannot skip the pin check.
    def read(self, len: int = 1024, buffer: WriteableBuffer | None = None) -> bytes:
        if not self._pin_verified:
            self.do_handshake()
        return super().read(len, buffer)

    def write(self, data: ReadableBuffer) -> int:
        if not self._pin_verified:
            self.do_handshake()
        return super().write(data)


class _PinnedSSLSocket(ssl.SSLSocket):
    """Blocking-socket TLS (httpx.Client, websockets.sync) with the same check."""

    _pin_policy: ClassVar[_PinPolicy]
    _pin_verified: bool = False
    _pin_error: PinMismatchError | None = None

    def do_handshake(self, block: bool = False) -> None:
        if self._pin_error is not None:
            raise self._pin_error
        super().do_handshake(block)
        if not self._pin_verified:
            error = self._pin_policy.check(self.server_hostname, self.getpeercert(True))
            if error is not None:
                self._pin_error = error
                raise error
            self._pin_verified = True

    def _ensure_pinned(self) -> None:
        # Before the TLS layer exists (``_sslobj`` is None) these calls are plain socket
        # I/O that ``SSLSocket`` itself routes around TLS; leave them alone.
        if not self._pin_verified and getattr(self, "_sslobj", None) is not None:
            self.do_handshake()

    # recv/recv_into go through read, sendall/sendfile through send.
    def read(self, len: int = 1024, buffer: WriteableBuffer | None = None) -> bytes:
        self._ensure_pinned()
        return super().read(len, buffer)

    def write(self, data: ReadableBuffer) -> int:
        self._ensure_pinned()
        return super().write(data)

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        self._ensure_pinned()
        return super().send(data, flags)


def _pinned_classes(
    policy: _PinPolicy,
) -> tuple[type[ssl.SSLObject], type[ssl.SSLSocket]]:
    """Per-context subclasses carrying the policy, so TLS objects need no back-reference
    to a context that could be swapped (``SSLObject.context`` is writable)."""

    class PinnedSSLObject(_PinnedSSLObject):
        _pin_policy = policy

    class PinnedSSLSocket(_PinnedSSLSocket):
        _pin_policy = policy

    return PinnedSSLObject, PinnedSSLSocket


# --------------------------------------------------------------------------- factory


def make_client_context(
    settings: TlsSettings | None = None,
    host: str | None = None,
    *,
    on_pin_failure: PinFailureHook | None = None,
) -> ssl.SSLContext:
    """The client context for an https/wss connection.

    ``host`` (``host``, ``host:port`` or a URL) names the endpoint this context is for;
    it is only needed for pins keyed ``host:port``, because during the handshake only
    the host name is known. Without a port, the pins of all the host's ports are merged
    and the server's key must match one of them.

    Verification and host name checks are always on: pins add to the CA check, they
    never replace it. OpenSSL negotiates the highest common version, so TLS 1.3 is used
    whenever the server has it; ``min_version`` only sets the floor. Unlike
    :func:`ssl.create_default_context`, ``SSLKEYLOGFILE`` is ignored: an environment
    variable must not be able to dump session keys of a trading client.
    """
    settings = settings if settings is not None else TlsSettings()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    if settings.min_version == "1.3":
        if not ssl.HAS_TLSv1_3:
            raise RuntimeError("min_version 1.3 requested but this OpenSSL lacks TLS 1.3")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    # The pin is checked once, after the initial handshake; a TLS 1.2 renegotiation
    # could otherwise present a different certificate afterwards.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION

    if settings.ca_bundle is not None:
        bundle = settings.ca_bundle
        if bundle.is_dir():
            ctx.load_verify_locations(capath=str(bundle))
        elif bundle.is_file():
            ctx.load_verify_locations(cafile=str(bundle))
        else:
            raise FileNotFoundError(f"TLS CA bundle not found: {bundle}")
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        try:
            import certifi  # noqa: PLC0415 - optional dependency
        except ImportError:
            pass
        else:
            # Windows and macOS system stores can lag behind; certifi fills the gaps.
            ctx.load_verify_locations(cafile=certifi.where())

    pins = {_parse_endpoint(key): values for key, values in settings.pins.items()}
    if pins:
        bound = _parse_endpoint(host) if host is not None else None
        policy = _PinPolicy(pins=pins, bound=bound, on_failure=on_pin_failure)
        ctx.sslobject_class, ctx.sslsocket_class = _pinned_classes(policy)
    return ctx


# ------------------------------------------------------------------------- plaintext


def check_plaintext_url(url: str) -> str | None:
    """A warning when ``url`` is plaintext (``ws://``/``http://``) to another machine.

    Loopback (``localhost``, 127.0.0.0/8, ``::1``) stays allowed without a warning: a
    local test bridge or a TLS-terminating sidecar never puts bytes on the network.
    The text names scheme, host and port only: the URL may carry credentials.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "http"):
        return None
    try:
        hostname = parts.hostname or ""
        port = parts.port
    except ValueError:
        hostname, port = parts.hostname or "", None
    if _is_loopback(hostname):
        return None
    secure = "wss" if scheme == "ws" else "https"
    where = _format_endpoint((_normalize_host(hostname), port)) if hostname else "(no host)"
    return (
        f"Unencrypted connection: {scheme}://{where} is not a loopback address, so data "
        f"and credentials cross the network in plain text; use {secure}://"
    )


def _is_loopback(hostname: str) -> bool:
    host = _normalize_host(hostname)
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
