"""What the RIB hands on: kernel FIB changes and per-peer outbound announcements (plain values)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Literal, NamedTuple

from bgpd.bgp import PathAttributes

FibKind = Literal["unicast", "blackhole"]


# The values below are NamedTuples, not frozen dataclasses: one is made per prefix (announcements) or
# per UPDATE (FIB changes), a million on a full table, and a frozen dataclass costs ~10x a tuple.


class FibChange(NamedTuple):
    """The kernel route of every prefix in ``prefixes`` must now be this one; ``nexthops is None``
    means delete them.

    One change covers every prefix an event decided alike (a whole UPDATE's ~1000 on the common path),
    so neither the RIB nor the kernel encoder makes an object per prefix. ``nexthops`` is sorted and
    de-duplicated (more than one = ECMP); a blackhole has ``()``.
    """

    prefixes: tuple[str, ...]
    nexthops: tuple[str, ...] | None
    kind: FibKind = "unicast"

    def routes(self) -> Iterator[FibChange]:
        """This change one prefix at a time (for checks and the rare per-prefix consumer)."""
        for prefix in self.prefixes:
            yield FibChange((prefix,), self.nexthops, self.kind)


def fib_grouped(decisions: Iterable[tuple[str, tuple[str, ...] | None, FibKind]]) -> tuple[FibChange, ...]:
    """Per-prefix decisions (prefix, next hops, kind), in order, as FibChanges: each run of consecutive
    prefixes with the same next hops and kind becomes one change. (The RIB decides a prefix at most
    once per event, so no run holds a prefix twice.)"""
    return tuple(FibChange(tuple(map(_prefix, run)), *target) for target, run in groupby(decisions, _target))


_prefix = itemgetter(0)
_target = itemgetter(1, 2)


def fib_size(changes: Iterable[FibChange]) -> int:
    """How many prefixes ``changes`` touch (kernel routes to write)."""
    return sum(len(c.prefixes) for c in changes)


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
