"""A string that never shows itself by accident.

Passwords and tokens travel through code that logs, raises and prints: a ``repr`` in a
traceback, an f-string in a log call, a dataclass dumped for debugging. Wrapping the value
makes every one of those paths print ``Secret('***')``; the only way to the plaintext is
an explicit :meth:`Secret.reveal`, which is easy to grep for and to review.

What this cannot do: Python strings are immutable and the interpreter may copy them, so
the plaintext cannot be wiped from memory and stays there until the memory is reused.
A :class:`Secret` keeps the value out of *output*; it is no defence against something
that can read this process's memory (a debugger, a core dump, the same user's malware).
"""

from __future__ import annotations

import hmac
from typing import Final, NoReturn, Self

#: What every text form of a secret looks like.
MASK: Final = "***"


class Secret:
    """Holds one secret string; prints as ``Secret('***')``.

    Equality is constant-time (a comparison must not tell, by how long it takes, how many
    leading characters matched) and only defined between two secrets. A secret cannot be
    pickled: pickles end up in caches, queues and files, where a secret must not go.
    Copying returns the same object, since a secret is immutable.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            # The message names only the type: the value could be the secret itself.
            raise TypeError(f"a Secret holds a str, not {type(value).__name__}")
        self._value: Final = value

    def reveal(self) -> str:
        """The plaintext. Call it at the last moment and do not keep the result."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    # A hash of the value would be a stable fingerprint of it in sets and dict keys.
    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")
