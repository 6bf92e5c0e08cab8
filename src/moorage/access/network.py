"""Client addresses and CIDR rules.

Behind a reverse proxy the peer address is the proxy's; the real client is in a header, which
is trusted only when the peer is one of the configured proxies (else anyone could claim any
address by sending the header).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(cidr: str) -> Network:
    """A CIDR (or a bare address) as a network; ValueError with a readable message if bad."""
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{cidr!r} is not a CIDR such as 10.0.0.0/8 or 192.168.1.7/32") from None


@functools.lru_cache(maxsize=4096)
def parse_address(value: str) -> Address | None:
    """Cached: the same few peers ask again and again, and parsing costs more than a pull."""
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def address_text(address: Address | None) -> str:
    """str(address), cached: formatting an address costs more than looking it up."""
    return "" if address is None else str(address)


def in_any(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_address(peer: str | None, headers: dict[str, str], trusted_proxies: list[Network],
                   proxy_header: str) -> Address | None:
    """The client's address: the peer, or, through trusted proxies, the forwarded one."""
    address = parse_address(peer) if peer else None
    if address is None or not in_any(address, trusted_proxies):
        return address
    raw = headers.get(proxy_header.lower())
    if not raw:
        return address
    # X-Forwarded-For lists client, proxy1, proxy2…: walk from the right past our own proxies.
    for hop in reversed([h.strip() for h in raw.split(",") if h.strip()]):
        hop_address = parse_address(hop)
        if hop_address is None:
            return address
        if not in_any(hop_address, trusted_proxies):
            return hop_address
        address = hop_address
    return address


def private_destination(host: str) -> Address | None:
    """The first loopback, private, link-local or otherwise internal address `host` resolves
    to, or None. Outbound calls a user configures (webhooks) must not reach the registry's own
    network unless the operator allows it, or a namespace owner could probe internal services.
    """
    import socket

    literal = parse_address(host)
    candidates: list[Address] = []
    if literal is not None:
        candidates.append(literal)
    else:
        try:
            for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
                address = parse_address(str(info[4][0]))
                if address is not None:
                    candidates.append(address)
        except OSError:
            return None  # unresolvable: the delivery fails on its own, with its own error
    for address in candidates:
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_reserved or address.is_multicast or address.is_unspecified):
            return address
    return None
