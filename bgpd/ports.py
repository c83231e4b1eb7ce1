"""What the reconciler needs from the I/O edges, as Protocols.

The concrete adapters (bgpd.speaker.process.ExaBGPSpeaker, the kernel FIB behind bgpd.adapters, the
stores) satisfy these; tests use fakes. The RIB is not a port: it is pure, so the reconciler owns a
real one. Events come from the speaker as `bgpd.speaker.codec.Event` values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from bgpd.desired import DesiredNode
from bgpd.model.snapshot import Snapshot
from bgpd.rib import FibChange


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

    async def reconfigure(self, desired: DesiredNode) -> None:
        """Run exactly ``desired.sessions``; untouched sessions stay up. ValueError: config refused."""
        ...

    async def send(self, commands: Sequence[str]) -> object:
        """API commands (bgpd.speaker.codec), sent in order. May return before ExaBGP has them: a
        failure (ExaBGP went away, it restarts and every session replays) is the adapter's to log."""
        ...


class FibPort(Protocol):
    async def apply(self, changes: Sequence[FibChange]) -> None:
        """Install/replace/delete routes of ours (batched; failures are the adapter's to log/count)."""
        ...

    async def dump(self) -> dict[str, tuple[str, ...]]:
        """Our routes in the kernel now (prefix -> next hops), to adopt at start."""
        ...

    @property
    def leftovers(self) -> bool:
        """After `dump`: whether the kernel also held routes of ours that it did not return
        (blackholes, a prefix under a second metric), which only a sweep removes."""
        ...

    async def sweep(self, keep: set[str]) -> int:
        """Delete our routes whose prefix is not in ``keep``; returns how many."""
        ...


class StorePort(Protocol):
    @property
    def source(self) -> str: ...

    def watch(self) -> AsyncIterator[Snapshot]: ...
