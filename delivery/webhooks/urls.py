"""Which endpoint URLs a webhook may point at (no server-side request forgery).

``https`` is required, except for loopback when loopback is allowed (the local profile's default). The host's
addresses are resolved when the endpoint is created or changed and again before each send: private, link-local,
loopback, multicast and reserved addresses are refused unless allowed, so a webhook cannot be aimed at the
network the delivery node sits in.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from hubstream.errors import HubstreamError


class EndpointUrlError(HubstreamError):
    """A webhook URL that is malformed, not https, or aimed at a refused address."""


def check_url(url: str, *, allow_loopback: bool, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointUrlError(f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise EndpointUrlError("put credentials in the endpoint's headers, not in its URL")
    addresses = _addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    loopback = all(a.is_loopback for a in addresses)
    if parts.scheme == "http" and not (loopback and allow_loopback):
        raise EndpointUrlError(f"{url!r}: webhooks need https (plain http only to loopback, when allowed)")
    for address in addresses:
        if address.is_loopback:
            if not allow_loopback:
                raise EndpointUrlError(f"{url!r} resolves to the loopback address {address}, which is not allowed here")
        elif not address.is_global and not (allow_private and (address.is_private or address.is_link_local)):
            raise EndpointUrlError(
                f"{url!r} resolves to {address}, a private, link-local or reserved address; "
                "webhooks may go only to public addresses (HUBSTREAM_WEBHOOKS__ALLOW_PRIVATE=true "
                "lifts this)"
            )


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EndpointUrlError(f"cannot resolve {host!r}: {exc.strerror}") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]
