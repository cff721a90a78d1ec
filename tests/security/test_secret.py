"""Secret: nothing but reveal() shows the value."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass

import pytest

from app.security.secret import Secret

VALUE = "correct horse battery staple"


def test_every_text_form_is_masked() -> None:
    secret = Secret(VALUE)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret):  # noqa: UP031
        assert text == "Secret('***')"
    assert secret.reveal() == VALUE


def test_containers_and_exceptions_show_the_mask() -> None:
    @dataclass
    class Login:
        user: str
        password: Secret

    login = Login("alice", Secret(VALUE))
    assert VALUE not in repr(login)
    assert VALUE not in repr({"pw": login.password, "list": [login.password]})
    assert VALUE not in str(ValueError(f"login failed with {login.password}"))


def test_equality_is_between_secrets_only_and_secrets_are_unhashable() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret(VALUE + "!")
    assert Secret("ünïcode-pässword") == Secret("ünïcode-pässword")
    assert Secret(VALUE) != VALUE  # a plain string is never equal: compare secrets
    with pytest.raises(TypeError):
        hash(Secret(VALUE))


def test_pickling_is_refused_but_copying_is_allowed() -> None:
    secret = Secret(VALUE)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(secret, protocol=protocol)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps({"nested": [secret]})
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"a": secret})["a"] is secret


def test_only_strings_and_the_error_does_not_show_the_value() -> None:
    with pytest.raises(TypeError) as info:
        Secret(b"bytes-secret-value")  # type: ignore[arg-type]
    assert "bytes-secret-value" not in str(info.value)
    secret = Secret(VALUE)
    with pytest.raises(AttributeError):
        secret.__dict__  # noqa: B018 -- slots: no place to hang the value elsewhere
