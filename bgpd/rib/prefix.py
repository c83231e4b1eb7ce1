"""Prefix strings: family, martians and parsing, fast enough to run on every received route.

Prefixes travel through the RIB as canonical strings (``10.0.0.0/24``, ``2001:db8::/32``), as
the speaker decodes them; an ``ipaddress`` object is built only when a rule needs one.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network

from bgpd.bgp import Family
from bgpd.model.resources import IPNetwork

_V4_MARTIANS = tuple(
    IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
)
_V6_MARTIANS = tuple(
    IPv6Network(n)
    for n in ("::/128", "::1/128", "::ffff:0:0/96", "fe80::/10", "ff00::/8")
)
DEFAULT_ROUTES = frozenset({"0.0.0.0/0", "::/0"})


def family_of(prefix: str) -> Family:
    return "ipv6 unicast" if ":" in prefix else "ipv4 unicast"


@lru_cache(maxsize=1 << 16)
def parse(prefix: str) -> IPNetwork:
    """The network of a prefix string; host bits set are tolerated (and cleared)."""
    return ip_network(prefix, strict=False)


def is_default(prefix: str) -> bool:
    return prefix in DEFAULT_ROUTES


def is_martian(prefix: str) -> bool:
    """Addresses that never belong in a routing table (RFC 6890 special purpose, link-local, multicast).

    The common case (a unicast IPv4 prefix) is decided from the first octet without parsing.
    A default route is not a martian; whether it is installed is a separate decision.
    """
    if is_default(prefix):
        return False
    if ":" not in prefix:
        first = int(prefix[: prefix.index(".")])
        if first not in (0, 127, 169) and first < 224:
            return False
    net = parse(prefix)
    martians = _V4_MARTIANS if net.version == 4 else _V6_MARTIANS
    return any(net.version == m.version and net.subnet_of(m) for m in martians)  # type: ignore[arg-type]


def covered_by(prefix: str, nets: tuple[IPNetwork, ...]) -> bool:
    """``prefix`` equals or lies inside one of ``nets`` (BIRD's ``net ~ N``)."""
    if not nets:
        return False
    net = parse(prefix)
    return any(net.version == n.version and net.subnet_of(n) for n in nets)  # type: ignore[arg-type]
