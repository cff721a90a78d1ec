"""Redaction with real logging: messages, arguments, tracebacks, uncaught exceptions."""

from __future__ import annotations

import io
import logging
import sys
import uuid
from collections.abc import Iterator

import pytest

from app.security.redact import (
    FILTER,
    MIN_SECRET_LENGTH,
    REGISTRY,
    RedactingFilter,
    install_redaction,
    redact,
    register_secret,
)
from app.security.secret import Secret


@pytest.fixture(autouse=True)
def _restore_handler_filters() -> Iterator[None]:
    """install_redaction() changes process-wide handlers (pytest's own among them):
    undo it, so that other tests see their records untouched."""
    handlers = [*logging.getLogger().handlers, logging.lastResort]
    before = {id(h): list(h.filters) for h in handlers if h is not None}
    yield
    for handler in handlers:
        if handler is not None:
            handler.filters[:] = before[id(handler)]


@pytest.fixture
def secret() -> Iterator[str]:
    """A fresh registered value, removed again so tests do not depend on each other."""
    value = f"pw-{uuid.uuid4().hex}"
    register_secret(value)
    yield value
    REGISTRY.discard(value)


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    """A real handler on the root logger, redacted the way the application does it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        assert install_redaction() is FILTER
        assert FILTER in handler.filters
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_message_and_arguments_are_redacted(secret: str, root_stream: io.StringIO) -> None:
    log = logging.getLogger("app.some.module")  # a child: propagated records are covered
    log.info("logging in with %s", secret)
    log.warning(f"inline {secret} in an f-string")
    log.info("as a dict %r", {"user": "alice", "pw": secret})
    log.info("as a Secret %s", Secret(secret))
    text = root_stream.getvalue()
    assert secret not in text
    assert text.count("***") == 4
    assert "logging in with ***" in text


def test_control_characters_from_peers_and_files_are_escaped_in_every_log_line(
    root_stream: io.StringIO,
) -> None:
    log = logging.getLogger("app.some.module")
    hostile = "EUR\x1b[2J\x00USD\nERROR forged: second line"
    log.warning("symbol %s refused", hostile)
    text = root_stream.getvalue()
    assert text.count("\n") == 1  # one record, one line: the forged line is not one
    assert "\x1b" not in text
    assert "\x00" not in text
    assert "EUR\\x1b[2J\\x00USD\\nERROR forged" in text


def _connect(password: str) -> None:
    raise ConnectionError(f"broker refused login, password was {password}")


def test_traceback_is_redacted(secret: str, root_stream: io.StringIO) -> None:
    log = logging.getLogger("app.connector")
    try:
        _connect(secret)
    except ConnectionError:
        log.exception("login failed")
    text = root_stream.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "_connect" in text  # the traceback itself survived, only the value is gone
    assert "ConnectionError: broker refused login, password was ***" in text
    assert secret not in text


def test_secret_in_a_traceback_source_line_is_redacted(root_stream: io.StringIO) -> None:
    register_secret("Literal-Source-Secret-42")
    try:
        raise KeyError("Literal-Source-Secret-42")
    except KeyError:
        logging.getLogger("x").error("oops", exc_info=True)
    text = root_stream.getvalue()
    assert 'raise KeyError("***")' in text
    assert "Literal-Source-Secret-42" not in text


def test_patterns_catch_unregistered_secrets(root_stream: io.StringIO) -> None:
    log = logging.getLogger("app.link")
    log.debug("GET /api Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9.abc-def_1==")
    log.debug("POST body %s", '{"username": "alice", "password": "Pa55\\"word"}')
    log.debug("url https://gw/api?access_token=tok123456&x=1")
    log.debug("connect password=hunter2 server=demo")
    log.debug("headers %r", {"Authorization": "Basic dXNlcjpwYXNz"})
    text = root_stream.getvalue()
    for leaked in ("eyJhbGciOi", "Pa55", "tok123456", "hunter2", "dXNlcjpwYXNz"):
        assert leaked not in text
    assert '"username": "alice"' in text  # only the secret part goes
    assert "server=demo" in text
    assert "access_token=***&x=1" in text


def test_mismatched_arguments_do_not_reach_stderr_raw(
    secret: str, root_stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # a bug in a log call, made on purpose
    logging.getLogger("x").info("two placeholders %s %s", secret)  # noqa: PLE1206
    captured = capsys.readouterr()
    text = root_stream.getvalue() + captured.err + captured.out
    assert "arguments did not fit" in text
    assert secret not in text


def test_stack_info_is_redacted(secret: str) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.stack_info = f"Stack (most recent call last):\n  connect({secret!r})"
    RedactingFilter().filter(record)
    assert record.stack_info == "Stack (most recent call last):\n  connect('***')"


def test_every_handler_sees_the_redacted_record(secret: str) -> None:
    """The filter rewrites the record, so a handler installed without it (after the
    redacting one) cannot see the original exception either."""
    first, second = io.StringIO(), io.StringIO()
    log = logging.getLogger(f"isolated.{uuid.uuid4().hex}")
    log.propagate = False
    redacting = logging.StreamHandler(first)
    redacting.addFilter(RedactingFilter())
    plain = logging.StreamHandler(second)  # added later, by code that forgot the filter
    log.addHandler(redacting)
    log.addHandler(plain)
    try:
        _connect(secret)
    except ConnectionError:
        log.exception("failed %s", secret)
    assert secret not in first.getvalue()
    assert secret not in second.getvalue()
    assert "ConnectionError" in second.getvalue()


def test_uncaught_exception_hook_is_redacted(
    secret: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    install_redaction(excepthook=True)
    install_redaction(excepthook=True)  # idempotent: not wrapped twice
    assert type(sys.excepthook).__name__ == "_RedactingExceptHook"
    assert not hasattr(sys.excepthook.previous, "previous")  # type: ignore[attr-defined]
    try:
        _connect(secret)
    except ConnectionError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "ConnectionError: broker refused login, password was ***" in err
    assert secret not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("Authorization: Basic dXNlcg==", "Authorization: Basic ***"),
        ('{"password": "x y z"}', '{"password": "***"}'),
        ("{'mt5_password': 'abc'}", "{'mt5_password': '***'}"),
        ('{"access_token": "abc", "expires_in": 60}', '{"access_token": "***", "expires_in": 60}'),
        ("refresh_token=abc&scope=x", "refresh_token=***&scope=x"),
        ("password: hunter2 next", "password: *** next"),
        ("https://bob:pa55@example.com/x", "https://bob:***@example.com/x"),
        ("password=***", "password=***"),  # idempotent
        ("token_type not bearer; basic settings", "token_type not bearer; basic settings"),
        (
            "wrong master password, or the file changed",
            "wrong master password, or the file changed",
        ),
    ],
)
def test_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(redact(text)) == expected


def test_registry_blanks_longest_first_and_escaped_forms() -> None:
    inner, outer = "abcd1234", "xxabcd1234yy"
    register_secret(inner)
    register_secret(Secret(outer))
    quoted = 'q"uo\\te-secret'
    register_secret(quoted)
    try:
        assert redact(f"{outer} and {inner}") == "*** and ***"
        assert redact(repr(quoted)) == "'***'"  # the repr escapes the backslash
        assert redact(f"-> {quoted}") == "-> ***"
    finally:
        for value in (inner, outer, quoted):
            REGISTRY.discard(value)
    assert redact(inner) == inner


def test_too_short_values_are_not_registered() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    register_secret(short)
    assert redact(f"a {short} b") == f"a {short} b"
