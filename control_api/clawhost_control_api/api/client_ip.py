"""The client's address: the TCP peer, or, when the peer is a trusted proxy, the X-Forwarded-For hop before it.

The ingress appends the address it received the connection from to X-Forwarded-For. Reading the
header from the right and skipping hops that are themselves trusted proxies yields the first address
no trusted proxy vouches for; anything left of it was written by the client and is ignored. Without
trusted proxies (the default) the header is never read, so a client cannot choose its own address.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.requests import HTTPConnection

Network = IPv4Network | IPv6Network


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address | None, proxies: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_ip(connection: HTTPConnection, trusted_proxies: Sequence[Network]) -> str:
    peer_text = connection.client.host if connection.client else ""
    peer = _parse(peer_text)
    if not _trusted(peer, trusted_proxies):
        return str(peer) if peer is not None else peer_text or "unknown"
    hops = [hop for value in connection.headers.getlist("x-forwarded-for") for hop in value.split(",") if hop.strip()]
    current = peer
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # a malformed hop: the last address a trusted proxy gave is the client
        current = address
        if not _trusted(address, trusted_proxies):
            break
    return str(current)
