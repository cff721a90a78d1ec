"""Where the NATS servers are, as a user types them: ``nats://HOST:PORT[,…]``.

One parser for every command that takes servers (``store --from``, ``backend
--forward-nats``), so they accept and refuse the same things with the same one line.
Credentials in a URL are refused: a command line is visible to the machine's other users
(``ps``), so a password comes from :data:`ENV_PASSWORD` or the vault instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: The NATS password of ``--user`` for automation (removed from the environment once read).
ENV_PASSWORD = "TRADING_CLIENT_NATS_PASSWORD"


class BadInputError(ValueError):
    """What the user typed cannot work: the message is the one line to print."""


def parse_servers(text: str) -> tuple[str, ...]:
    """``nats://HOST:PORT[,…]`` → the URLs, each checked for scheme, host and port.

    The one parser of NATS servers: command lines and the ``backend.nats_url`` setting.
    A URL carrying a user or password is refused first and never echoed (the message
    could otherwise print the password)."""
    urls = tuple(part.strip() for part in text.split(",") if part.strip())
    if not urls:
        raise BadInputError("no NATS server given: nats://HOST:PORT[,…]")
    for url in urls:
        parts = urlsplit(url)
        # "@" anywhere, not only where urlsplit finds a user: a password holding "/" or
        # "#" moves the rest into the path or a fragment.
        if "@" in url or parts.username or parts.password:
            raise BadInputError(
                "no credentials in the URL (command lines and settings are readable by "
                f"others): use --user with ${ENV_PASSWORD}, or the vault (nats/<user>)"
            )
        try:
            port = parts.port
        except ValueError:
            raise BadInputError(f"{url!r}: the port is not a number in 0..65535") from None
        if parts.scheme not in ("nats", "tls") or not parts.hostname or port is None:
            raise BadInputError(f"{url!r} is not a nats://HOST:PORT URL")
    return urls
