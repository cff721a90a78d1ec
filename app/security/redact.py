"""Keep secrets out of log output.

Two nets, because each misses what the other catches:

* **Known values.** Every secret the application holds in plaintext (what the vault
  returns or stores) is registered with :func:`register_secret`; any occurrence of it is
  blanked, wherever it turns up: a message, an argument, an exception text, a traceback's
  source line. This catches secrets in shapes nobody anticipated.
* **Patterns.** ``Authorization: Bearer …``, ``password=…``, ``"password": "…"``,
  ``access_token=…``, ``scheme://user:password@host``. These catch secrets the
  application never registered, such as a token a server echoes back.

:class:`RedactingFilter` applies both to a :class:`logging.LogRecord`: the message is
formatted with its arguments *before* redaction (an argument can hold a secret, and a
formatted message is what reaches the handler), and an exception is turned into redacted
text so that no later formatter sees the original exception object.

What it cannot do: the registry keeps registered values in this process's memory,
because it has to recognise them; values shorter than :data:`MIN_SECRET_LENGTH`
characters are not registered (blanking every "abc" would wreck the logs, and a secret
that short protects nothing); a secret split across two log records, or encoded
(base64, URL-escaped), is not recognised.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Final, TextIO

from app.security.secret import MASK, Secret

#: Registered values shorter than this are ignored (see the module docstring).
MIN_SECRET_LENGTH: Final = 4

# Key names whose values are secret; a prefix or suffix is allowed ("mt5_password").
_KEYS: Final = (
    r"(?:password|passwd|passphrase|pwd|secret|access_token|refresh_token|id_token|"
    r"token|api[_-]?key|private[_-]?key)"
)
_KEY_NAME: Final = rf"[\w.-]*?{_KEYS}[\w.-]*"
_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Bearer abc (in an Authorization header, a curl line, a repr of headers)
    (re.compile(r"(?i)\b(bearer\s+)(?!\*\*\*)[A-Za-z0-9\-._~+/]+=*"), rf"\1{MASK}"),
    # Authorization: Basic abc / Digest ... / Token abc
    (
        re.compile(
            r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?(?:basic|digest|token)\s+)"""
            r"""(?!\*\*\*)[^\s'",;]+"""
        ),
        rf"\1{MASK}",
    ),
    # "password": "abc"  /  'password': 'abc'  (JSON and Python reprs)
    (
        re.compile(rf"""(?i)(["']{_KEY_NAME}["']\s*:\s*)(["'])(?:(?!\2)[^\\]|\\.)*\2"""),
        rf"\1\2{MASK}\2",
    ),
    # password=abc, access_token=abc&..., password='abc', password: abc
    (
        re.compile(
            rf"""(?i)\b({_KEY_NAME})(\s*[=:]\s*)(?!\*\*\*)(?:"[^"]*"|'[^']*'|[^\s&,;'"]+)"""
        ),
        rf"\1\2{MASK}",
    ),
    # scheme://user:password@host
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)(?!\*\*\*)[^/\s@]+(@)"),
        rf"\1{MASK}\2",
    ),
)


class SecretRegistry:
    """The plaintext values to blank out, longest first.

    Longest first, because a secret that contains another must be blanked whole; the
    escaped forms a ``repr`` or JSON dump would print are registered alongside.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._ordered: tuple[str, ...] = ()

    def add(self, value: str | Secret) -> None:
        text = value.reveal() if isinstance(value, Secret) else value
        if len(text) < MIN_SECRET_LENGTH:
            return
        forms = {text, repr(text)[1:-1], json.dumps(text)[1:-1]}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def discard(self, value: str | Secret) -> None:
        text = value.reveal() if isinstance(value, Secret) else value
        forms = {text, repr(text)[1:-1], json.dumps(text)[1:-1]}
        with self._lock:
            self._values -= forms
            self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._ordered = ()

    def redact(self, text: str) -> str:
        for value in self._ordered:  # a snapshot: adding never mutates the tuple
            if value in text:
                text = text.replace(value, MASK)
        return text


#: The process-wide registry the vault and the log filter share.
REGISTRY: Final = SecretRegistry()


def register_secret(value: str | Secret) -> None:
    """Blank ``value`` out of every later log line and audit record."""
    REGISTRY.add(value)


def redact(text: str, registry: SecretRegistry = REGISTRY) -> str:
    """``text`` with registered secrets and secret-looking key/value pairs blanked."""
    text = registry.redact(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def escape_controls(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x1b``, ``\\x00``).

    The one escaping for text a user, a file or a peer supplied, wherever the client
    prints or logs it: a newline there would forge a second log line, an ANSI escape
    would play tricks with the terminal, a NUL would cut the line for some readers.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_EXC_FORMATTER: Final = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Rewrites each record so that nothing after it can see a secret.

    The message becomes the redacted, already formatted text (``args`` are dropped: they
    were used), and an exception becomes redacted ``exc_text`` while ``exc_info`` is
    cleared, because a formatter given the exception object would print it afresh. The
    traceback is therefore always in the standard format. Installed on handlers (not on
    loggers) because a logger's filters do not see records propagated from its children.
    """

    def __init__(self, registry: SecretRegistry = REGISTRY) -> None:
        super().__init__()
        self._registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A mismatched format would make the handler print msg and args raw to stderr.
            message = f"{record.msg!s} (arguments did not fit: {record.args!r})"
        # Escaped after redaction: a secret split by an escape would no longer match.
        record.msg = escape_controls(redact(message, self._registry))
        record.args = None
        if record.exc_info:
            text = _EXC_FORMATTER.formatException(record.exc_info)
            record.exc_text = redact(text, self._registry)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, self._registry)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._registry)
        return True


#: The filter :func:`install_redaction` puts on handlers.
FILTER: Final = RedactingFilter()

_ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def install_redaction(
    logger: logging.Logger | None = None, *, excepthook: bool = False
) -> RedactingFilter:
    """Put the redacting filter on every handler of ``logger`` (default: the root logger).

    Call it after logging is configured: a handler added later is not covered (calling
    again is harmless). ``logging.lastResort`` is covered too, since it prints records
    while no handler is configured. With ``excepthook``, tracebacks of uncaught
    exceptions (which bypass logging) are redacted as well.
    """
    target = logger if logger is not None else logging.getLogger()
    handlers = list(target.handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(FILTER)
    if excepthook and not isinstance(sys.excepthook, _RedactingExceptHook):
        sys.excepthook = _RedactingExceptHook(sys.excepthook)
    return FILTER


class _RedactingExceptHook:
    """Prints an uncaught exception's traceback redacted, instead of the previous hook."""

    def __init__(self, previous: _ExceptHook) -> None:
        self.previous = previous

    def __call__(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
        stream: TextIO | None = None,
    ) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        out = stream if stream is not None else sys.stderr
        out.write(redact(text))
        out.flush()
