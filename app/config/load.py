"""Reading a settings file, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from app.config.schema import ClientConfig


class ConfigError(ValueError):
    """A settings file that cannot be used; the message names the file and each problem."""


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    value = err.get("input")
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind in ("greater_than_equal", "greater_than"):
        rule = f"is below the minimum {ctx.get('ge', ctx.get('gt'))}"
    elif kind in ("less_than_equal", "less_than"):
        rule = f"is above the maximum {ctx.get('le', ctx.get('lt'))}"
    elif kind == "extra_forbidden":
        return f"{loc}: unknown setting"
    elif kind == "missing":
        return f"{loc}: missing"
    else:
        rule = str(err["msg"]).removeprefix("Value error, ")
        return (
            f"{loc}: {rule}"
            if kind == "value_error"
            else f"{loc}: {value!r} {rule[0].lower()}{rule[1:]}"
        )
    return f"{loc}: {value!r} {rule}"


def one_line(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x1b``, ...).

    Problem texts quote the file (unknown keys, symbol and terminal names); a newline
    there would split one problem over two lines, an escape sequence would play tricks
    with the terminal it is printed on.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem, e.g. ``pool.size: 0 is below the minimum 1``."""
    return [one_line(_describe(dict(e))) for e in exc.errors()]


def parse_config(data: bytes | str, source: str = "<config>") -> ClientConfig:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: the top level must be a JSON object")
    try:
        return ClientConfig.model_validate(doc)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def load_config(path: Path | None) -> ClientConfig:
    """The settings in ``path``, or the defaults when ``path`` is None."""
    if path is None:
        return ClientConfig()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_config(data, str(path))
