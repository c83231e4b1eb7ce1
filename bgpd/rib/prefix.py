"""Prefix strings: family, martians and containment, fast enough to run on every received route.

Prefixes travel through the RIB as strings (``10.0.0.0/24``, ``2001:db8::/32``), as the speaker
decodes them; containment is computed on integer spans, not ``ipaddress`` objects (5x cheaper).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network
from itertools import repeat
from operator import itemgetter
from socket import AF_INET, AF_INET6, inet_pton

from bgpd.bgp import Family
from bgpd.model.resources import IPNetwork

_MARTIANS: tuple[IPNetwork, ...] = (
    *(IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")),
    *(IPv6Network(n) for n in ("::/128", "::1/128", "::ffff:0:0/96", "fe80::/10", "ff00::/8")),
)
DEFAULT_ROUTES = frozenset({"0.0.0.0/0", "::/0"})
# IPv4 first octets outside every martian (the common case, decided without parsing the prefix)
_PLAIN_FIRST_OCTETS = frozenset(str(octet) for octet in range(1, 224) if octet not in (127, 169))


def family_of(prefix: str) -> Family:
    return "ipv6 unicast" if ":" in prefix else "ipv4 unicast"


def is_default(prefix: str) -> bool:
    return prefix in DEFAULT_ROUTES


def is_martian(prefix: str) -> bool:
    """Addresses that never belong in a routing table (RFC 6890 special purpose, link-local, multicast).

    The common case (a unicast IPv4 prefix) is decided from the first octet without parsing.
    A default route is not a martian; whether it is installed is a separate decision.
    """
    if prefix.partition(".")[0] in _PLAIN_FIRST_OCTETS:
        return False
    if is_default(prefix):
        return False
    route = span(prefix)
    return any(inside(route, m) for m in spans(_MARTIANS))


def none_martian(prefixes: Iterable[str]) -> bool:
    """True when no prefix is a martian, decided for a whole UPDATE of plain unicast IPv4 prefixes at
    C speed (first octets against a set); False means some may be, and each must be checked."""
    return _PLAIN_FIRST_OCTETS.issuperset(map(_first, map(str.partition, prefixes, repeat("."))))


_first = itemgetter(0)


Span = tuple[int, int, int, int]  # (version, first address, last address, prefix length) as ints


def span(prefix: str) -> Span:
    """A prefix as integers, several times faster than ``ipaddress`` (this runs once per route)."""
    addr, _, length = prefix.partition("/")
    v6 = ":" in addr
    bits = 128 if v6 else 32
    plen = int(length) if length else bits
    host = (1 << (bits - plen)) - 1
    first = int.from_bytes(inet_pton(AF_INET6 if v6 else AF_INET, addr), "big") & ~host
    return (6 if v6 else 4), first, first | host, plen


def net_span(net: IPNetwork) -> Span:
    return net.version, int(net.network_address), int(net.broadcast_address), net.prefixlen


_SPANS: dict[int, tuple[tuple[IPNetwork, ...], tuple[Span, ...]]] = {}


def spans(nets: tuple[IPNetwork, ...]) -> tuple[Span, ...]:
    """``nets`` as spans, remembered by the tuple's identity: policies are long-lived tuples that are
    checked on every route, and hashing a tuple of networks costs more than the check itself."""
    hit = _SPANS.get(id(nets))
    if hit is not None and hit[0] is nets:
        return hit[1]
    if len(_SPANS) > 256:
        _SPANS.clear()
    result = tuple(net_span(n) for n in nets)
    _SPANS[id(nets)] = (nets, result)
    return result


def inside(a: Span, b: Span) -> bool:
    """``a`` equals or lies inside ``b`` (BIRD's ``net ~ N``)."""
    return a[0] == b[0] and b[1] <= a[1] and a[2] <= b[2]


def near(prefixes: Sequence[str], nets: tuple[IPNetwork, ...]) -> Sequence[str]:
    """The prefixes whose address lies in one of ``nets`` (a superset of those inside one: lengths are
    not compared), for a whole UPDATE at C speed: addresses are parsed by ``map``, and each is looked up
    among the nets' merged ranges by bisection. When the prefixes mix families or do not parse, all of
    them are returned, so the exact check that follows still sees every one."""
    if not prefixes or not nets:
        return prefixes if nets else ()
    family = AF_INET6 if ":" in prefixes[0] else AF_INET
    ranges = _ranges(nets, 6 if family == AF_INET6 else 4)
    try:
        addrs = map(int.from_bytes, map(inet_pton, repeat(family), map(_first, map(str.partition, prefixes,
                                                                                    repeat("/")))))
        starts, ends = ranges
        return [p for p, a in zip(prefixes, addrs, strict=True)
                if (i := bisect_right(starts, a) - 1) >= 0 and a <= ends[i]]
    except OSError:
        return prefixes


def _ranges(nets: tuple[IPNetwork, ...], version: int) -> tuple[list[int], list[int]]:
    """The address ranges of ``nets`` of one IP version, merged and sorted: (starts, ends)."""
    starts: list[int] = []
    ends: list[int] = []
    for _, first, last, _ in sorted(net_span(n) for n in nets if n.version == version):
        if ends and first <= ends[-1] + 1:
            ends[-1] = max(ends[-1], last)
        else:
            starts.append(first)
            ends.append(last)
    return starts, ends


def covered_by(prefix: str | Span, nets: tuple[IPNetwork, ...]) -> bool:
    """``prefix`` equals or lies inside one of ``nets``."""
    if not nets:
        return False
    s = span(prefix) if isinstance(prefix, str) else prefix
    return any(inside(s, n) for n in spans(nets))
