"""The settings' JSON Schema, walked field by field for the settings form.

:class:`FieldSpec` is one property of an object with ``$ref`` followed and an
``anyOf``-with-null unwrapped: its kind (which editor shows it), its label (the
title-cased key) and its tooltip (description, default, range, choices).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

JsonPath = tuple[str, ...]
Schema = dict[str, Any]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: No default known for a field (pydantic's ``default_factory`` leaves none in the schema).
MISSING: Final = _Missing()

_UNITS: Final = {"s": "(s)", "ms": "(ms)", "mb": "(MB)"}
_WORDS: Final = {"url": "URL", "id": "ID", "db": "DB", "tls": "TLS", "ca": "CA", "mt5": "MT5"}
_PATHLIKE_KEY: Final = re.compile(r"(^path$|_path$|_file$|_dir$|_db$|_bundle$|_log$)")


# --------------------------------------------------------------------------- the schema
def resolve(node: Schema, defs: Schema) -> Schema:
    """``node`` with its ``$ref`` followed; the referring node's own keys (description,
    default) win, since pydantic puts the field's description next to the ``$ref``."""
    seen = 0
    while "$ref" in node and seen < 32:
        target = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node


def field_label(key: str) -> str:
    """``ticks_per_symbol`` → ``Ticks Per Symbol``; ``interval_s`` → ``Interval (s)``."""
    parts = [p for p in key.split("_") if p]
    unit = ""
    if len(parts) > 1 and parts[-1].lower() in _UNITS:
        unit = " " + _UNITS[parts.pop().lower()]
    return " ".join(_WORDS.get(p.lower(), p[:1].upper() + p[1:]) for p in parts) + unit


def _show_default(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "none"
    if isinstance(value, dict) and not value:
        return "none"
    if isinstance(value, str):
        return value or "empty"
    return json.dumps(value)


def format_number(value: float) -> str:
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def bound(node: Schema, inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    if inclusive in node:
        return float(node[inclusive]), True
    if exclusive in node:
        return float(node[exclusive]), False
    return None, True


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One property of an object in the schema, with ``$ref`` and ``anyOf``-null unwrapped."""

    key: str
    node: Schema
    nullable: bool
    description: str
    default: Any
    defs: Schema

    @classmethod
    def of(cls, key: str, raw: Schema, defs: Schema, default: Any = MISSING) -> FieldSpec:
        node = resolve(raw, defs)
        nullable = False
        variants = node.get("anyOf")
        if isinstance(variants, list):
            others = [v for v in variants if v.get("type") != "null"]
            if len(others) == 1 and len(others) < len(variants):
                outer = {k: v for k, v in node.items() if k != "anyOf"}
                node = {**resolve(others[0], defs), **outer}
                nullable = True
        if "default" in raw:
            default = raw["default"]
        elif "default" in node:
            default = node["default"]
        return cls(key, node, nullable, str(node.get("description", "")), default, defs)

    @property
    def kind(self) -> str:
        """Which editor: bool, integer, number, enum, path, string, strings, mapping,
        json, object (a group of fields) or objects (a list of sub-forms)."""
        node, typ = self.node, self.node.get("type")
        if "enum" in node:
            return "enum"
        if typ == "boolean":
            return "bool"
        if typ in ("integer", "number"):
            return str(typ)
        if typ == "string":
            if node.get("format") == "path" or _PATHLIKE_KEY.search(self.key):
                return "path"
            return "string"
        if typ == "array":
            items = resolve(node.get("items", {}), self.defs)
            if items.get("type") == "string" and "enum" not in items:
                return "strings"
            if items.get("type") == "object" and items.get("properties"):
                return "objects"
            return "json"
        if typ == "object":
            if node.get("properties"):
                return "object"
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and extra.get("type") in ("number", "integer", "string"):
                return "mapping"
            return "json"
        return "json"

    @property
    def label(self) -> str:
        return field_label(self.key)

    def range_text(self) -> str:
        low, low_in = bound(self.node, "minimum", "exclusiveMinimum")
        high, high_in = bound(self.node, "maximum", "exclusiveMaximum")
        if low is None and high is None:
            return ""

        def show(v: float) -> str:
            return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:g}"

        if low is not None and high is not None:
            left = show(low) if low_in else f"above {show(low)}"
            return f"{left} … {show(high)}"
        if low is not None:
            return f"≥ {show(low)}" if low_in else f"> {show(low)}"
        assert high is not None
        return f"≤ {show(high)}" if high_in else f"< {show(high)}"

    def tooltip(self) -> str:
        lines = [self.description] if self.description else []
        extra = []
        if self.default is not MISSING:
            extra.append(f"Default: {_show_default(self.default)}")
        if rng := self.range_text():
            extra.append(f"Range: {rng}")
        if "enum" in self.node:
            extra.append("Choices: " + ", ".join(str(v) for v in self.node["enum"]))
        if self.kind == "strings":
            extra.append("Separate entries with commas or spaces.")
        if self.kind == "mapping":
            extra.append("Entries as KEY=VALUE, separated by commas.")
        if self.kind == "json":
            extra.append("JSON text; empty means none.")
        if extra:
            lines.append("\n".join(extra))
        return "\n\n".join(lines)


__all__ = [
    "MISSING",
    "FieldSpec",
    "JsonPath",
    "Schema",
    "bound",
    "field_label",
    "format_number",
    "resolve",
]
