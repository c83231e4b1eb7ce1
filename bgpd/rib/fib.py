"""What the RIB hands on: kernel FIB changes and per-peer outbound announcements (plain values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from bgpd.bgp import PathAttributes

FibKind = Literal["unicast", "blackhole"]


# The per-prefix values below are NamedTuples, not frozen dataclasses: one is made per prefix and
# event (a million on a full table), and a frozen dataclass costs ~10x a tuple to construct.


class FibChange(NamedTuple):
    """The kernel route for ``prefix`` must now be this one; ``nexthops is None`` means delete it.

    ``nexthops`` is sorted and de-duplicated (more than one = ECMP); a blackhole has ``()``.
    """

    prefix: str
    nexthops: tuple[str, ...] | None
    kind: FibKind = "unicast"


class Announce(NamedTuple):
    """Send ``prefix`` with ``attributes`` (already rewritten for this peer) to session ``peer``."""

    peer: str
    prefix: str
    attributes: PathAttributes


class Withdraw(NamedTuple):
    peer: str
    prefix: str


Outbound = Announce | Withdraw


@dataclass(frozen=True, slots=True)
class RibDiff:
    """The result of one RIB event: only the prefixes whose FIB entry or advertisement changed.

    Apply in order: an event with two phases (an End-of-RIB sweep that also ends adoption) may
    list a prefix twice, and the later entry wins.
    """

    fib: tuple[FibChange, ...] = ()
    out: tuple[Outbound, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.fib or self.out)
