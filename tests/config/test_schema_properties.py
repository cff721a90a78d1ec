"""Whatever a settings file holds, reading it gives settings or a clear error, never a crash.

Hand edits, old versions and other tools produce every kind of wrong document, so the
documents here are arbitrary JSON (random nesting, wrong types, huge and out-of-range
numbers, unknown keys), random mutations of a valid file, and raw bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from app.config import ClientConfig, ConfigError, parse_config
from app.config.store import InvalidConfig, check_config, config_json

SOURCE = "desk.json"
SETTINGS = settings(
    max_examples=150,
    deadline=None,  # a busy 2-core machine is slow at times, never wrong
    derandomize=True,  # the same documents on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: A problem line: where (a dotted field path, "(top level)", "not valid JSON"), then what.
PROBLEM = re.compile(r"^.+?: .+$|^the top level must be a JSON object$", re.DOTALL)

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2**63, -(2**63) - 1, 1e308, -1e-308, 0.5, 999_999_999]),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12))
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


def _field_names(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _sections() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, info in ClientConfig.model_fields.items():
        ann = info.annotation
        inner = getattr(ann, "__args__", (ann,))[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            out[name] = _field_names(inner)
    return out


SECTIONS = _sections()
#: Documents shaped like settings: known keys (plus unknown ones), random values.
shaped = st.fixed_dictionaries(
    {},
    optional={
        section: st.dictionaries(
            st.sampled_from([*names, "unknown_key", "backoff"]), json_values, max_size=6
        )
        for section, names in SECTIONS.items()
    }
    | {"surprise": json_values},
)


@st.composite
def mutated_defaults(draw: st.DrawFn) -> Any:
    """The default document with a few values replaced, removed or added, anywhere."""
    doc: Any = ClientConfig().model_dump(mode="json")
    for _ in range(draw(st.integers(1, 4))):
        node = doc
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            child = node[draw(st.sampled_from(keys))]
            if not isinstance(child, dict | list):
                break
            node = child
        if isinstance(node, dict):
            action = draw(st.sampled_from(["set", "delete", "add"]))
            if action == "add" or not node:
                node[draw(st.text(max_size=8))] = draw(json_values)
            elif action == "delete":
                del node[draw(st.sampled_from(sorted(node)))]
            else:
                node[draw(st.sampled_from(sorted(node)))] = draw(json_values)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(json_values)
    return doc


def _check(data: bytes) -> None:
    """The property: settings, or a ConfigError that is one readable line per problem."""
    error: InvalidConfig | None = None
    try:
        config = check_config(data, SOURCE)
    except InvalidConfig as exc:
        error = exc
    if error is None:
        assert isinstance(config, ClientConfig)
        assert parse_config(data, SOURCE) == config
        assert check_config(config_json(config), SOURCE) == config  # saves round-trip
        return
    assert str(error).startswith(f"{SOURCE}: ")
    assert str(error).isprintable()  # one line, no control characters
    assert error.problems
    for problem in error.problems:
        assert PROBLEM.match(problem), problem
        assert problem.isprintable()
    # The plain reader refuses the same documents, with a ConfigError only.
    with pytest.raises(ConfigError, match=f"^{re.escape(SOURCE)}: "):
        parse_config(data, SOURCE)


@SETTINGS
@given(json_values)
def test_any_json_document(doc: Any) -> None:
    _check(json.dumps(doc).encode())


@SETTINGS
@given(shaped)
def test_documents_shaped_like_settings(doc: dict[str, Any]) -> None:
    _check(json.dumps(doc).encode())


@SETTINGS
@given(mutated_defaults())
def test_mutations_of_a_valid_file(doc: Any) -> None:
    _check(json.dumps(doc).encode())


@SETTINGS
@given(st.binary(max_size=200))
def test_raw_bytes(data: bytes) -> None:
    _check(data)


def test_names_from_the_file_cannot_break_the_line() -> None:
    doc = {"pool": {"a\nb": 1}, "terminals": [{"symbols": ["X\x1b[2J", "X\x1b[2J"]}]}
    with pytest.raises(InvalidConfig) as info:
        check_config(json.dumps(doc), SOURCE)
    assert info.value.problems == (
        "terminals.0.symbols: X\\x1b[2J is listed twice",
        "pool.a\\nb: unknown setting",
    )


def test_parse_config_keeps_one_line_for_a_key_with_a_newline() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(b'{"pool": {"a\\nb": 1}}', SOURCE)
    assert "\n" not in str(info.value)


def test_the_generators_reach_both_outcomes() -> None:
    """Guard against a strategy that only ever produces one kind of document."""
    _check(json.dumps(ClientConfig().model_dump(mode="json")).encode())
    with pytest.raises(InvalidConfig, match=r"pool\.size: 0 is below the minimum 1"):
        check_config(b'{"pool": {"size": 0}}', SOURCE)
