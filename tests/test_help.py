"""Every command's ``--help`` ends with examples, and ``--version`` answers."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from app import __version__
from app.cli import _build_parser
from tests.test_cli import run_cli

COMMANDS = {"run", "gui", "backend", "config", "credentials", "bench", "export", "doctor", "trade"}


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command below ``parser``, however deep, with the words that reach it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _walk(sub, (*path, name))


ALL = dict(_walk(_build_parser()))


def test_every_command_is_registered() -> None:
    assert {words[0] for words in ALL} >= COMMANDS


@pytest.mark.parametrize("words", sorted(ALL), ids=" ".join)
def test_help_shows_examples(words: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main  # noqa: PLC0415 - the real entry point, in-process for speed

    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "\nexamples:\n" in text, f"'{' '.join(words)} --help' has no examples"
    examples = text.split("\nexamples:\n", 1)[1]
    assert "trading-client" in examples


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version", timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"trading-client {__version__}"


def test_top_level_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """``trading-client --help`` is the first thing a new user reads: it ends with examples
    that name real sub-commands (each one parses)."""
    from app.cli import main  # noqa: PLC0415 - the real entry point, in-process for speed

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "\nexamples:\n" in text, "'trading-client --help' has no examples"
    lines = [ln.strip() for ln in text.split("\nexamples:\n", 1)[1].splitlines()]
    commands = [
        ln.split("#")[0].split()
        for ln in lines
        if ln.startswith("trading-client") and "COMMAND" not in ln
    ]
    assert len(commands) >= 3
    parser = _build_parser()
    for words in commands:
        args = [w for w in words[1:] if "=" not in w]
        parser.parse_args(args)  # an example that does not parse would exit 2 here
