"""BGP value types shared by the speaker codec (which decodes them) and the RIB (which selects on them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["ipv4 unicast", "ipv6 unicast"]
FAMILIES: tuple[Family, ...] = ("ipv4 unicast", "ipv6 unicast")

ORIGIN_IGP, ORIGIN_EGP, ORIGIN_INCOMPLETE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class PathAttributes:
    """The path attributes of one UPDATE. Hashable, so many prefixes share one instance.

    ``as_path`` is the flattened AS_SEQUENCE segments; ``as_set`` the members of AS_SET segments
    (an AS_SET counts as one hop in path length, RFC 4271 §9.1.2.2).
    """

    next_hop: str
    origin: int = ORIGIN_IGP
    as_path: tuple[int, ...] = ()
    as_set: tuple[int, ...] = ()
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[tuple[int, int], ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    originator_id: str | None = None
    cluster_list: tuple[str, ...] = ()
    atomic_aggregate: bool = False

    @property
    def as_path_length(self) -> int:
        return len(self.as_path) + (1 if self.as_set else 0)
