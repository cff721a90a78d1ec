"""The TLS client context against real TLS servers on 127.0.0.1.

Certificates are made here (a private CA and a server certificate for localhost /
127.0.0.1 / ::1), so every test controls exactly what is trusted and what is pinned. Each
refusal is checked from both ends: the client's error names the host and both
fingerprints, and the server never saw a request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import pickle
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets
import websockets.sync.client
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request, Response

from app.security.tls import (
    PinMismatchError,
    TlsSettings,
    check_plaintext_url,
    make_client_context,
    normalize_pin,
    spki_sha256,
)
from tests.conftest import wait_until

# ------------------------------------------------------------------------------ PKI


@dataclass(frozen=True)
class Pki:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path
    #: Base64 SPKI SHA-256 of the server key (the right pin).
    spki: str
    #: The pin of a key the server does not have (a wrong pin).
    other_spki: str


def _spki_of(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    out = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        ca_pem=out / "ca.pem",
        cert_pem=out / "server.pem",
        key_pem=out / "server.key",
        spki=_spki_of(key),
        other_spki=_spki_of(ec.generate_private_key(ec.SECP256R1())),
    )
    pki.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


def _server_context(pki: Pki, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert_pem, pki.key_pem)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


# -------------------------------------------------------------------------- servers


@dataclass
class Server:
    port: int
    #: Requests (HTTP requests, WebSocket upgrade requests) the server received.
    requests: int = 0
    #: Application bytes a raw TLS server received, per finished connection.
    received: list[bytes] = field(default_factory=list)


async def _start_https(
    pki: Pki, max_version: ssl.TLSVersion | None = None
) -> tuple[Server, web.AppRunner]:
    server = Server(port=0)

    async def hello(request: web.Request) -> web.Response:
        server.requests += 1
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_server_context(pki, max_version))
    await site.start()
    server.port = runner.addresses[0][1]
    return server, runner


@pytest.fixture
async def https_server(pki: Pki) -> AsyncIterator[Server]:
    server, runner = await _start_https(pki)
    yield server
    await runner.cleanup()


@pytest.fixture
async def https12_server(pki: Pki) -> AsyncIterator[Server]:
    server, runner = await _start_https(pki, ssl.TLSVersion.TLSv1_2)
    yield server
    await runner.cleanup()


@pytest.fixture
async def wss_server(pki: Pki) -> AsyncIterator[Server]:
    server = Server(port=0)

    def count(connection: ServerConnection, request: Request) -> Response | None:
        server.requests += 1
        return None

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async with ws_serve(
        echo, "127.0.0.1", 0, ssl=_server_context(pki), process_request=count
    ) as ws:
        server.port = next(iter(ws.sockets)).getsockname()[1]
        yield server


@pytest.fixture
async def raw_tls_server(pki: Pki) -> AsyncIterator[Server]:
    """Records every application byte a client sends, below any HTTP parsing."""
    server = Server(port=0)

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        # Chunk by chunk: a client closing without close_notify ends in an SSL error,
        # and what arrived before it must still be recorded.
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                data += chunk
        server.received.append(data)
        writer.close()

    srv = await asyncio.start_server(sink, "127.0.0.1", 0, ssl=_server_context(pki))
    server.port = srv.sockets[0].getsockname()[1]
    yield server
    srv.close()
    await srv.wait_closed()


# -------------------------------------------------------------------------- helpers


def _settings(pki: Pki, pins: dict[str, tuple[str, ...]] | None = None) -> TlsSettings:
    return TlsSettings(ca_bundle=pki.ca_pem, pins=pins or {})


async def _https_get(ctx: ssl.SSLContext, url: str) -> httpx.Response:
    async with httpx.AsyncClient(verify=ctx, timeout=5) as client:
        return await client.get(url)


async def _wss_echo(ctx: ssl.SSLContext, url: str) -> str | bytes:
    async with ws_connect(url, ssl=ctx, open_timeout=5) as ws:
        await ws.send("ping")
        return await ws.recv()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _pin_error(exc: BaseException) -> PinMismatchError:
    found = [e for e in _chain(exc) if isinstance(e, PinMismatchError)]
    assert found, f"no PinMismatchError behind {exc!r}"
    return found[0]


def _assert_names_everything(message: str, host: str, expected: str, actual: str) -> None:
    assert host in message
    assert expected in message
    assert actual in message


# ------------------------------------------------------------------ right and wrong pin


async def test_right_pin_connects_over_https_with_tls13(pki: Pki, https_server: Server) -> None:
    ctx = make_client_context(_settings(pki, {"127.0.0.1": (pki.spki,)}))
    async with httpx.AsyncClient(verify=ctx, timeout=5) as client:
        resp = await client.get(f"https://127.0.0.1:{https_server.port}/")
        ssl_object = resp.extensions["network_stream"].get_extra_info("ssl_object")
    assert resp.text == "hello"
    assert https_server.requests == 1
    # 1.3 is preferred: OpenSSL negotiates the highest version both sides have.
    assert ssl_object.version() == "TLSv1.3"


async def test_right_pin_connects_over_wss(pki: Pki, wss_server: Server) -> None:
    ctx = make_client_context(_settings(pki, {"127.0.0.1": (pki.spki,)}))
    assert await _wss_echo(ctx, f"wss://127.0.0.1:{wss_server.port}/") == "ping"
    assert wss_server.requests == 1


async def test_wrong_pin_is_refused_over_https_before_any_request(
    pki: Pki, https_server: Server
) -> None:
    audits: list[tuple[str, str, str]] = []
    ctx = make_client_context(
        _settings(pki, {"127.0.0.1": (pki.other_spki,)}),
        on_pin_failure=lambda *args: audits.append(args),
    )
    with pytest.raises(httpx.ConnectError) as info:
        await _https_get(ctx, f"https://127.0.0.1:{https_server.port}/")
    _assert_names_everything(str(info.value), "127.0.0.1", pki.other_spki, pki.spki)
    error = _pin_error(info.value)
    assert (error.host, error.expected, error.actual) == ("127.0.0.1", (pki.other_spki,), pki.spki)
    assert audits == [("127.0.0.1", pki.other_spki, pki.spki)]
    assert https_server.requests == 0


async def test_wrong_pin_is_refused_over_wss_before_any_request(
    pki: Pki, wss_server: Server
) -> None:
    audits: list[tuple[str, str, str]] = []
    ctx = make_client_context(
        _settings(pki, {"127.0.0.1": (pki.other_spki,)}),
        on_pin_failure=lambda *args: audits.append(args),
    )
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        await _wss_echo(ctx, f"wss://127.0.0.1:{wss_server.port}/")
    assert isinstance(info.value, PinMismatchError)
    _assert_names_everything(str(info.value), "127.0.0.1", pki.other_spki, pki.spki)
    assert audits == [("127.0.0.1", pki.other_spki, pki.spki)]
    assert wss_server.requests == 0


@pytest.mark.parametrize("client", ["httpx", "websockets"])
async def test_wrong_pin_sends_no_application_byte(
    pki: Pki, raw_tls_server: Server, client: str
) -> None:
    """Below HTTP: the server's TLS layer never decrypts a single byte from the client."""
    ctx = make_client_context(_settings(pki, {"127.0.0.1": (pki.other_spki,)}))
    attempt = (
        _https_get(ctx, f"https://127.0.0.1:{raw_tls_server.port}/")
        if client == "httpx"
        else _wss_echo(ctx, f"wss://127.0.0.1:{raw_tls_server.port}/")
    )
    with pytest.raises((httpx.ConnectError, PinMismatchError)) as info:
        await attempt
    _pin_error(info.value)
    # Both async clients drop their final handshake flight with the connection, so the
    # server's TLS handshake never completes and its handler never runs; were it to
    # run, it must have read nothing.
    await asyncio.sleep(0.05)
    assert raw_tls_server.received in ([], [b""])


async def test_one_good_pin_among_several_is_enough(pki: Pki, https_server: Server) -> None:
    """Rotation: the next key's pin ships alongside the current one."""
    ctx = make_client_context(_settings(pki, {"127.0.0.1": (pki.other_spki, pki.spki)}))
    assert (await _https_get(ctx, f"https://127.0.0.1:{https_server.port}/")).text == "hello"


async def test_pin_for_another_host_does_not_apply(pki: Pki, https_server: Server) -> None:
    ctx = make_client_context(_settings(pki, {"hub.example.com": (pki.other_spki,)}))
    assert (await _https_get(ctx, f"https://127.0.0.1:{https_server.port}/")).text == "hello"


async def test_host_names_are_normalised(pki: Pki, https_server: Server) -> None:
    ctx = make_client_context(_settings(pki, {"LOCALHOST.": (pki.other_spki,)}))
    with pytest.raises(httpx.ConnectError) as info:
        await _https_get(ctx, f"https://localhost:{https_server.port}/")
    assert _pin_error(info.value).host == "localhost"
    assert https_server.requests == 0


async def test_failing_audit_hook_still_refuses(pki: Pki, https_server: Server) -> None:
    def broken_hook(host: str, expected: str, actual: str) -> None:
        raise RuntimeError("audit log unavailable")

    ctx = make_client_context(
        _settings(pki, {"127.0.0.1": (pki.other_spki,)}), on_pin_failure=broken_hook
    )
    with pytest.raises(httpx.ConnectError) as info:
        await _https_get(ctx, f"https://127.0.0.1:{https_server.port}/")
    _pin_error(info.value)
    assert https_server.requests == 0


# ----------------------------------------------------------------- synchronous clients


async def test_sync_clients_are_pinned_too(
    pki: Pki, https_server: Server, wss_server: Server
) -> None:
    """httpx.Client and websockets.sync use ``wrap_socket`` (SSLSocket), not memory BIOs."""
    good = make_client_context(_settings(pki, {"127.0.0.1": (pki.spki,)}))
    bad = make_client_context(_settings(pki, {"127.0.0.1": (pki.other_spki,)}))
    https_url = f"https://127.0.0.1:{https_server.port}/"
    wss_url = f"wss://127.0.0.1:{wss_server.port}/"

    def https_get(ctx: ssl.SSLContext) -> str:
        with httpx.Client(verify=ctx, timeout=5) as client:
            return client.get(https_url).text

    def wss_echo(ctx: ssl.SSLContext) -> str | bytes:
        with websockets.sync.client.connect(wss_url, ssl=ctx, open_timeout=5) as ws:
            ws.send("ping")
            return ws.recv(timeout=5)

    assert await asyncio.to_thread(https_get, good) == "hello"
    assert await asyncio.to_thread(wss_echo, good) == "ping"
    with pytest.raises(httpx.ConnectError) as info:
        await asyncio.to_thread(https_get, bad)
    _assert_names_everything(str(info.value), "127.0.0.1", pki.other_spki, pki.spki)
    with pytest.raises(PinMismatchError):
        await asyncio.to_thread(wss_echo, bad)
    assert (https_server.requests, wss_server.requests) == (1, 1)


async def test_skipping_the_explicit_handshake_does_not_skip_the_pin(
    pki: Pki, raw_tls_server: Server
) -> None:
    """``send`` would finish the handshake implicitly; the pin is still checked first."""

    def send_without_handshake(ctx: ssl.SSLContext) -> None:
        with socket.create_connection(("127.0.0.1", raw_tls_server.port), timeout=5) as raw:
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
            with tls:
                tls.sendall(b"GET / HTTP/1.1\r\n\r\n")

    bad = make_client_context(_settings(pki, {"127.0.0.1": (pki.other_spki,)}))
    with pytest.raises(PinMismatchError):
        await asyncio.to_thread(send_without_handshake, bad)
    # A blocking socket writes the client's Finished itself, so here the server does
    # complete its handshake and reads until the client hangs up: nothing.
    await wait_until(lambda: len(raw_tls_server.received) == 1, 5, "the refused connection")
    assert raw_tls_server.received == [b""]

    # Control: the same path with the right pin does deliver bytes the sink records.
    good = make_client_context(_settings(pki, {"127.0.0.1": (pki.spki,)}))
    await asyncio.to_thread(send_without_handshake, good)
    await wait_until(lambda: b"GET / HTTP/1.1\r\n\r\n" in raw_tls_server.received, 5)


# -------------------------------------------------------------- trust and TLS versions


async def test_untrusted_certificate_without_pin_is_refused(
    pki: Pki, https_server: Server, wss_server: Server
) -> None:
    ctx = make_client_context(TlsSettings())  # system trust store: the test CA is unknown
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await _https_get(ctx, f"https://127.0.0.1:{https_server.port}/")
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        await _wss_echo(ctx, f"wss://127.0.0.1:{wss_server.port}/")
    assert not isinstance(info.value, PinMismatchError)
    assert (https_server.requests, wss_server.requests) == (0, 0)


async def test_right_pin_does_not_replace_certificate_verification(
    pki: Pki, https_server: Server
) -> None:
    ctx = make_client_context(TlsSettings(pins={"127.0.0.1": (pki.spki,)}))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await _https_get(ctx, f"https://127.0.0.1:{https_server.port}/")


async def test_host_name_is_checked(pki: Pki, https_server: Server) -> None:
    """The certificate is for localhost/127.0.0.1; 127.0.0.2 reaches no SAN."""
    ctx = make_client_context(_settings(pki))
    async with httpx.AsyncClient(verify=ctx, timeout=5) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            # Connect to the real server, but verify the certificate against another name.
            await client.get(
                f"https://127.0.0.1:{https_server.port}/",
                extensions={"sni_hostname": "other.example"},
            )


async def test_tls12_only_server_needs_min_version_12(pki: Pki, https12_server: Server) -> None:
    url = f"https://127.0.0.1:{https12_server.port}/"
    strict = make_client_context(TlsSettings(min_version="1.3", ca_bundle=pki.ca_pem))
    with pytest.raises(httpx.ConnectError):
        await _https_get(strict, url)
    assert https12_server.requests == 0

    relaxed = make_client_context(TlsSettings(min_version="1.2", ca_bundle=pki.ca_pem))
    async with httpx.AsyncClient(verify=relaxed, timeout=5) as client:
        resp = await client.get(url)
        ssl_object = resp.extensions["network_stream"].get_extra_info("ssl_object")
    assert resp.text == "hello"
    assert ssl_object.version() == "TLSv1.2"


def test_context_policy_is_fixed() -> None:
    ctx = make_client_context(TlsSettings())
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert make_client_context(TlsSettings(min_version="1.3")).minimum_version == (
        ssl.TLSVersion.TLSv1_3
    )
    # Unpinned contexts keep the stock TLS classes.
    assert ctx.sslobject_class is ssl.SSLObject


# --------------------------------------------------------------------- host:port pins


async def test_pins_keyed_by_host_and_port(pki: Pki, https_server: Server) -> None:
    port = https_server.port
    url = f"https://127.0.0.1:{port}/"
    other_port = port + 1 if port < 65535 else port - 1

    bad = _settings(pki, {f"127.0.0.1:{port}": (pki.other_spki,)})
    for endpoint in (f"127.0.0.1:{port}", url):
        with pytest.raises(httpx.ConnectError) as info:
            await _https_get(make_client_context(bad, endpoint), url)
        assert _pin_error(info.value).host == f"127.0.0.1:{port}"

    good = _settings(pki, {f"127.0.0.1:{port}": (pki.spki,), "127.0.0.1": (pki.other_spki,)})
    # The port-specific pin wins over the host-wide one.
    assert (await _https_get(make_client_context(good, f"127.0.0.1:{port}"), url)).text == "hello"

    elsewhere = _settings(pki, {f"127.0.0.1:{other_port}": (pki.other_spki,)})
    # A context made for this port ignores another port's pins ...
    assert (await _https_get(make_client_context(elsewhere, f"127.0.0.1:{port}"), url)).is_success
    # ... but without a port to go by, every pin of the host counts (fail closed).
    for unknown_port in (None, "127.0.0.1"):
        with pytest.raises(httpx.ConnectError):
            await _https_get(make_client_context(elsewhere, unknown_port), url)
    assert https_server.requests == 2


async def test_host_port_pins_over_wss(pki: Pki, wss_server: Server) -> None:
    url = f"wss://127.0.0.1:{wss_server.port}/"
    bad = _settings(pki, {f"127.0.0.1:{wss_server.port}": (pki.other_spki,)})
    with pytest.raises(PinMismatchError, match=f"127.0.0.1:{wss_server.port}"):
        await _wss_echo(make_client_context(bad, url), url)
    good = _settings(pki, {f"127.0.0.1:{wss_server.port}": (pki.spki,)})
    assert await _wss_echo(make_client_context(good, url), url) == "ping"


# ---------------------------------------------------------------------- pin formats


def _hex(pin: str) -> str:
    return base64.b64decode(pin).hex()


@pytest.mark.parametrize(
    "form",
    ["base64", "sha256/", "hex", "HEX", "hex:colons", "HEX:COLONS"],
)
async def test_pin_formats(pki: Pki, https_server: Server, form: str) -> None:
    raw = _hex(pki.spki)
    pin = {
        "base64": pki.spki,
        "sha256/": f"sha256/{pki.spki}",
        "hex": raw,
        "HEX": raw.upper(),
        "hex:colons": ":".join(raw[i : i + 2] for i in range(0, len(raw), 2)),
        "HEX:COLONS": ":".join(raw[i : i + 2] for i in range(0, len(raw), 2)).upper(),
    }[form]
    settings = _settings(pki, {"127.0.0.1": (pin,)})
    assert settings.pins == {"127.0.0.1": (pki.spki,)}
    resp = await _https_get(
        make_client_context(settings), f"https://127.0.0.1:{https_server.port}/"
    )
    assert resp.text == "hello"


@pytest.mark.parametrize(
    "bad",
    ["", "not a pin", "AAAA", "ab" * 31, "ab" * 33, base64.b64encode(bytes(20)).decode()],
)
def test_bad_pins_fail_when_the_settings_load(bad: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        normalize_pin(bad)
    with pytest.raises(ValueError, match="SHA-256"):
        TlsSettings(pins={"example.com": (bad,)})


def test_settings_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty pin list"):
        TlsSettings(pins={"example.com": ()})
    with pytest.raises(ValueError, match="min_version"):
        TlsSettings(min_version="1.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        TlsSettings(pins={"example.com:https": ("ab" * 32,)})
    with pytest.raises(FileNotFoundError, match="CA bundle"):
        make_client_context(TlsSettings(ca_bundle=tmp_path / "missing.pem"))
    # Loaded configuration may hold a lone string or a list: both are accepted.
    loose: dict[str, object] = {"[::1]:443": "ab" * 32, "0:0::1": ["ab" * 32]}
    settings = TlsSettings(pins=loose)  # type: ignore[arg-type]
    assert set(settings.pins) == {"[::1]:443", "::1"}
    assert hash(settings) == hash(TlsSettings(pins={"::1": ("ab" * 32,)}))


def test_spki_sha256_accepts_der_and_pem(pki: Pki) -> None:
    pem = pki.cert_pem.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert spki_sha256(pem) == spki_sha256(pem.decode()) == spki_sha256(der) == pki.spki


def test_pin_error_survives_pickling() -> None:
    error = PinMismatchError("host:1", ("a", "b"), "c")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.host, copy.expected, copy.actual, str(copy)) == (
        "host:1",
        ("a", "b"),
        "c",
        str(error),
    )


# ------------------------------------------------------------------ plaintext warnings


@pytest.mark.parametrize(
    "url",
    [
        "ws://localhost:8765/",
        "http://localhost/",
        "ws://LOCALHOST./x",
        "http://127.0.0.1:8000/",
        "ws://127.42.0.7/",
        "ws://[::1]:9000/",
        "http://[::ffff:127.0.0.1]/",
        "wss://bridge.example.com/",
        "https://10.0.0.5/",
    ],
)
def test_plaintext_to_loopback_or_tls_is_fine(url: str) -> None:
    assert check_plaintext_url(url) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://bridge.example.com:8765/ticks", "ws://bridge.example.com:8765"),
        ("http://10.0.0.5/", "http://10.0.0.5"),
        ("WS://192.168.1.2/", "ws://192.168.1.2"),
        ("http://[2001:db8::1]:8080/", "http://[2001:db8::1]:8080"),
        ("ws://localhost.evil.example/", "ws://localhost.evil.example"),
        ("http://128.0.0.1/", "http://128.0.0.1"),
    ],
)
def test_plaintext_to_the_network_warns(url: str, shown: str) -> None:
    warning = check_plaintext_url(url)
    assert warning is not None
    assert shown in warning


def test_plaintext_warning_hides_credentials() -> None:
    warning = check_plaintext_url("http://trader:s3cret@gateway.example.com/api")
    assert warning is not None
    assert "s3cret" not in warning
    assert "trader" not in warning
