"""Which webhook URLs the platform calls: the SSRF guard.

A webhook URL is chosen by a tenant and called by the platform, so it must not reach what only the platform can:
the VPC, the instance metadata service (169.254.169.254, fd00:ec2::254), the local stack's own services. Accepted:
``https`` URLs whose host is a public address — a literal one, or a name whose every address is public (checked
when the subscription is created, for a literal address, and again right before each attempt, for a name, since
DNS may change). ``SOORMA_WEBHOOK_ALLOW_LOOPBACK=on`` (the local stack only) also accepts ``http`` and loopback
addresses, so tests can run a receiver on 127.0.0.1; private, link-local, multicast and reserved addresses stay
refused. Redirects are never followed (:mod:`~soorma.functions.webhooks.sender`), so a public URL cannot bounce the
request inward.

"Public" is Python's ``ipaddress`` ``is_global`` (the IANA special-purpose registries,
https://www.iana.org/assignments/iana-ipv4-special-registry/). Residual risk: a name re-resolved by the HTTP client
between the check and the connection (DNS rebinding inside one attempt) is not pinned.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048


class UrlRefused(ValueError):
    """The URL may not be called; the message says why (shown to the caller as a 422)."""


class UrlUnresolved(UrlRefused):
    """The URL's host does not resolve now: the attempt fails and is retried later (a DNS outage is temporary)."""


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_loopback: bool) -> str:
    """``url`` when it is a webhook URL the platform may call (see the module docstring), without resolving names.

    Returns the URL unchanged. Raises :class:`UrlRefused` naming the reason."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"url must be 1-{MAX_URL_CHARS} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise UrlRefused("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"url is malformed: {exc}") from None
    schemes = ("https", "http") if allow_loopback else ("https",)
    if parts.scheme not in schemes:
        raise UrlRefused(f"url must use {' or '.join(schemes)}")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("url must not carry credentials")
    host = parts.hostname
    if not host:
        raise UrlRefused("url has no host")
    if port == 0:
        raise UrlRefused("url has port 0")
    if host == "localhost" or host.endswith(".localhost"):
        if not allow_loopback:
            raise UrlRefused("url points to a loopback address")
        return url
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host:
            raise UrlRefused("url host must be a public DNS name or address") from None
        return url  # a name: its addresses are checked before each attempt
    if not _address_allowed(address, allow_loopback):
        raise UrlRefused("url points to a private, loopback, link-local or reserved address")
    return url


def check_resolved(url: str, *, allow_loopback: bool) -> None:
    """Check ``url`` (:func:`check_url`) and every address its host resolves to now. Raises :class:`UrlRefused`
    (also when the name does not resolve: the attempt fails and is retried later)."""
    check_url(url, allow_loopback=allow_loopback)
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UrlUnresolved(f"url host does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not _address_allowed(address, allow_loopback):
            raise UrlRefused(f"url host resolves to a private, loopback, link-local or reserved address ({address})")
