"""What the reconciler needs from the outside world, as Protocols, plus the event values it consumes.

The concrete adapters (speaker, kernel, store, rib) satisfy these; tests use fakes. Keeping the
reconciler against these small surfaces is what lets it run with a manual clock and no I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bgpd.bgp import Family, PathAttributes
from bgpd.desired import DesiredNode, Export, StaticRoute
from bgpd.model.resources import IPNetwork
from bgpd.model.snapshot import Snapshot

# ---------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class FibChange:
    """Install ``prefix`` via ``nexthops`` (ECMP when several), or delete it when ``nexthops`` is None."""

    prefix: IPNetwork
    nexthops: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Route:
    """One received prefix with its path attributes."""

    prefix: IPNetwork
    attributes: PathAttributes


# Speaker events. ``session`` is the DesiredSession name (the speaker maps ExaBGP's neighbor to it).


@dataclass(frozen=True, slots=True)
class PeerState:
    """A session state transition. ``state`` is a BGP FSM state name (``Established`` when up)."""

    session: str
    state: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PeerOpen:
    """The peer's OPEN: its graceful-restart time (None: no GR capability) and families."""

    session: str
    restart_time: int | None = None
    families: tuple[Family, ...] = ()


@dataclass(frozen=True, slots=True)
class RoutesReceived:
    session: str
    family: Family
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class RoutesWithdrawn:
    session: str
    family: Family
    prefixes: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class EndOfRib:
    session: str
    family: Family


@dataclass(frozen=True, slots=True)
class SpeakerRestarted:
    """The ExaBGP child exited and a new one runs (``pid``); every session starts over."""

    pid: int | None
    restarts: int
    last_exit: str


SpeakerEvent = PeerState | PeerOpen | RoutesReceived | RoutesWithdrawn | EndOfRib | SpeakerRestarted


# ---------------------------------------------------------------- ports


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds for deadlines; never goes back."""
        ...

    def time(self) -> float:
        """Unix time, for the SINCE column."""
        ...


class SpeakerPort(Protocol):
    @property
    def pid(self) -> int | None: ...

    async def configure(self, node: DesiredNode) -> None:
        """Make the speaker run exactly ``node.sessions`` (render + reload; untouched sessions stay up)."""
        ...

    async def announce(self, session: str, exports: Sequence[Export]) -> None: ...

    async def withdraw(self, session: str, exports: Sequence[Export]) -> None: ...

    async def send_eor(self, session: str, family: Family) -> None: ...


class FibPort(Protocol):
    async def apply(self, changes: Sequence[FibChange]) -> None:
        """Install/replace/delete BGP routes (batched; errors are the adapter's to log and count)."""
        ...

    async def set_static(self, routes: Sequence[StaticRoute], blackholes: Sequence[IPNetwork]) -> None:
        """Make the kernel hold exactly these static and blackhole routes of ours."""
        ...

    async def sweep(self) -> int:
        """Delete adopted routes of ours that nothing re-installed since start; returns how many."""
        ...


class StorePort(Protocol):
    @property
    def source(self) -> str: ...

    def watch(self) -> AsyncIterator[Snapshot]: ...


class RibPort(Protocol):
    """The RIB as the reconciler uses it: every call returns the kernel changes it causes."""

    def configure(self, node: DesiredNode) -> list[FibChange]:
        """New sessions/policies (filters, allow-local-AS, RR client): re-evaluate, return FIB diff."""
        ...

    def update(self, session: str, family: Family, routes: Iterable[Route]) -> list[FibChange]: ...

    def withdraw(self, session: str, family: Family, prefixes: Iterable[IPNetwork]) -> list[FibChange]: ...

    def peer_down(self, session: str, graceful: bool) -> list[FibChange]:
        """Graceful: keep the peer's routes as stale (installed). Otherwise drop them."""
        ...

    def end_of_rib(self, session: str, family: Family) -> list[FibChange]:
        """Drop the peer's routes of ``family`` still stale (not refreshed since it came back)."""
        ...

    def expire(self, session: str) -> list[FibChange]:
        """The restart deadline passed: drop every stale route of the peer."""
        ...

    def counts(self, session: str) -> tuple[int, int]:
        """(routes received, routes installed) for the session."""
        ...

    def totals(self) -> tuple[int, int]:
        """(routes installed, of which stale) over all peers."""
        ...
