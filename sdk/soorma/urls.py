"""URLs that carry credentials (``nats://user:password@host``, ``postgresql://user:password@host/db``): how they are
shown. Part of the SDK's lowest layer so everything above (the local stack, the CLI, ``agent.run()``) redacts the same
way."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` without the password of its user information (``nats://soorma:***@127.0.0.1:4222``; a user part with
    no password, which NATS reads as a token, becomes ``***``); a URL without user information is returned as it is.

    For anything shown or stored where others may read it (logs, ``state.json``, ``soorma local status``); the local
    stack keeps the URL with the password only in ``.soorma/secrets.json`` (0600). An unparseable URL gives
    ``"<unparseable url>"`` rather than itself."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    # without a password the user part is itself the secret (a NATS token: nats://TOKEN@host)
    netloc = f"{parts.username}:***@{host}" if parts.password is not None and parts.username else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
