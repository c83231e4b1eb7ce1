"""The routing core: events in (routes, session changes, time), FIB diffs and announcements out.

Pure: no I/O, no clock (time is an argument), no asyncio.
"""

from bgpd.rib.adjin import PeerStatus
from bgpd.rib.fib import Announce, FibChange, Outbound, RibDiff, Withdraw
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
]
