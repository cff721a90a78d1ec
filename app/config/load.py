"""Reading a settings file, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from app.config.schema import ClientConfig
from app.security.redact import escape_controls
from app.untrusted import JsonRefusedError, loads_json, read_regular_file

#: Largest settings file read (the defaults are about 3 KB): a symlink to ``/dev/zero``
#: or a runaway file is refused before it is read.
MAX_SETTINGS_BYTES: Final = 4 * 2**20


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


#: Problem texts quote the file (unknown keys, symbol and terminal names): escaped.
one_line = escape_controls


def read_settings_file(path: Path) -> bytes:
    """A settings file's bytes: a regular file within :data:`MAX_SETTINGS_BYTES`."""
    return read_regular_file(path, MAX_SETTINGS_BYTES)


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem, e.g. ``pool.size: 0 is below the minimum 1``."""
    return [one_line(_describe(dict(e))) for e in exc.errors()]


def parse_config(data: bytes | str, source: str = "<config>") -> ClientConfig:
    try:
        doc = loads_json(data)
    except JsonRefusedError as exc:
        raise ConfigError(one_line(f"{source}: {exc}")) from None
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
        data = read_settings_file(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_config(data, str(path))
