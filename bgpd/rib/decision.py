"""The BGP decision process (RFC 4271 §9.1.2.2, RFC 4456 §9) and the multipath (ECMP) set.

Set-based rather than pairwise, so the result does not depend on the order of the candidates
(BIRD's "deterministic med"): each step keeps only the candidates that are best on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import ip_address
from typing import NamedTuple

from bgpd.bgp import PathAttributes
from bgpd.rib.peer import PeerInfo
from bgpd.rib.policy import effective_local_pref


class Candidate(NamedTuple):
    peer: PeerInfo
    attrs: PathAttributes  # after import policy
    stale: bool


def _keep_min(cands: list[Candidate], key: Callable[[Candidate], int]) -> list[Candidate]:
    best = min(key(c) for c in cands)
    return [c for c in cands if key(c) == best]


def neighbour_as(c: Candidate) -> int:
    """The AS a route came from, for the MED comparison (0 = from inside our AS)."""
    return c.attrs.as_path[0] if c.attrs.as_path else 0


def _med_step(cands: list[Candidate]) -> list[Candidate]:
    """Drop a route when one from the same neighbour AS has a lower MED (missing MED = 0)."""
    lowest: dict[int, int] = {}
    for c in cands:
        med = c.attrs.med or 0
        asn = neighbour_as(c)
        lowest[asn] = min(med, lowest.get(asn, med))
    return [c for c in cands if (c.attrs.med or 0) == lowest[neighbour_as(c)]]


def multipath(cands: Sequence[Candidate]) -> list[Candidate]:
    """The routes that tie up to and including the IGP-cost step (BIRD `merge paths`).

    bgpd knows no IGP cost, so every route ties there. Stale routes lose to fresh ones first.
    """
    left = [c for c in cands if not c.stale] or list(cands)
    if len(left) > 1:
        left = _keep_min(left, lambda c: -effective_local_pref(c.attrs))
        left = _keep_min(left, lambda c: c.attrs.as_path_length)
        left = _keep_min(left, lambda c: c.attrs.origin)
        left = _med_step(left)
        left = _keep_min(left, lambda c: 1 if c.peer.ibgp else 0)
    return left


def _address_key(text: str | None) -> tuple[int, int]:
    if text is None:
        return (7, 0)  # unknown sorts last
    addr = ip_address(text)
    return (addr.version, int(addr))


def tie_break_key(c: Candidate) -> tuple[tuple[int, int], int, tuple[int, int]]:
    """Lowest router id (ORIGINATOR_ID when present), shorter CLUSTER_LIST, lowest peer address."""
    router_id = c.attrs.originator_id or c.peer.router_id
    return _address_key(router_id), len(c.attrs.cluster_list), _address_key(c.peer.peer_ip)


def select(cands: Sequence[Candidate]) -> tuple[Candidate, list[Candidate]]:
    """The best route and the ECMP set it belongs to (which includes it). ``cands`` is not empty."""
    group = multipath(cands)
    if len(group) == 1:
        return group[0], group
    return min(group, key=tie_break_key), group
