"""The routing core: events in (routes, session changes, time), FIB diffs and announcements out.

Pure: no I/O, no clock (time is an argument), no asyncio. How the reconciler drives it:

- start: ``rib = Rib(LocalInfo.from_desired(node))``; ``rib.set_peer(PeerInfo.from_session(...))`` for
  each session; ``rib.adopt(our kernel routes, now + T)``; the kernel's first full apply is ``rib.fib()``.
- session up: ``rib.peer_up(info)`` with the OPEN's router id and GR restart time; send its
  announcements, then End-of-RIB. UPDATEs: ``rib.update(peer, prefixes, attrs)`` / ``rib.withdraw``;
  End-of-RIB: ``rib.end_of_rib(peer, family)``; session lost: ``rib.peer_down(peer, now, graceful)``.
- a timer at ``rib.next_deadline()`` calls ``rib.expire(now)``.
- configuration: ``rib.set_local`` / ``rib.set_peer`` / ``rib.remove_peer``.

Each of these returns a `RibDiff`: kernel changes to apply in order, and per-session announcements.
"""

from bgpd.rib.adjin import PeerStatus
from bgpd.rib.fib import Announce, FibChange, Outbound, RibDiff, Withdraw, fib_size
from bgpd.rib.peer import DEFAULT_MAX_PREFIXES, LocalInfo, PeerInfo
from bgpd.rib.table import Rib

__all__ = [
    "DEFAULT_MAX_PREFIXES",
    "Announce",
    "FibChange",
    "LocalInfo",
    "Outbound",
    "PeerInfo",
    "PeerStatus",
    "Rib",
    "RibDiff",
    "Withdraw",
    "fib_size",
]
