"""MT5 symbol group masks, as ``symbols_get(group=...)`` takes them."""

from __future__ import annotations

import functools
import re

__all__ = ["match_group"]


def match_group(names: tuple[str, ...], group: str) -> list[str]:
    """MT5 group syntax: comma-separated ``*`` masks, ``!`` excludes; inclusions first.

    A group of exclusions only selects nothing, as inclusions are applied first.
    Matching is case-insensitive, as symbol names are in the terminal.
    """
    include: list[str] = []
    exclude: list[str] = []
    for raw in group.split(","):
        mask = raw.strip().upper()
        if not mask:
            continue
        if mask.startswith("!"):
            exclude.append(mask[1:])
        else:
            include.append(mask)

    def hit(name: str, masks: list[str]) -> bool:
        return any(_mask_regex(m).fullmatch(name.upper()) for m in masks)

    return [n for n in names if hit(n, include) and not hit(n, exclude)]


@functools.lru_cache(maxsize=256)
def _mask_regex(mask: str) -> re.Pattern[str]:
    """Only ``*`` is a wildcard in MT5 masks; everything else is literal."""
    return re.compile(".*".join(re.escape(part) for part in mask.split("*")))
