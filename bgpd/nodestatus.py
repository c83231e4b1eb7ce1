"""CalicoNodeStatus ``status``: built from bgpd's StatusReport and a view of its RIB (pure).

calico-node fills it from BIRD (node/pkg/status, reference calico-semantics.md §1.8): ``agent`` (the
daemon per family), ``bgp`` (sessions per family, only those named ``Mesh_``/``Node_``/``Global_``),
``routes`` (FIB and RIB entries), each part only when its class is requested. bgpd reports itself
as the agent (its version, router id, start and last reconfiguration). ``lastUpdated`` says when the
status was built; `same_status` compares statuses without it, so an unchanged status is not rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bgpd.control.status import SessionStatus, StatusReport
from bgpd.desired import SessionKind
from bgpd.rib import Rib

Status = dict[str, Any]
Class = Literal["Agent", "BGP", "Routes"]
# Calico derives the peer type from the BIRD protocol name; Local_Workload sessions are not reported.
PEER_TYPES: Mapping[str, str] = {"Mesh": "NodeMesh", "Node": "NodePeer", "Global": "GlobalPeer"}
BGP_STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Close")


@dataclass(frozen=True)
class RouteView:
    """One route as CalicoNodeStatus lists it. ``source_type``: Kernel, Static, Direct, NodeMesh or
    BGPPeer; ``peer_ip`` only for BGP-learned routes."""

    family: Literal[4, 6]
    type: Literal["FIB", "RIB"]
    destination: str
    gateway: str
    interface: str
    source_type: str
    peer_ip: str | None = None

    def to_json(self) -> dict[str, Any]:
        learned: dict[str, Any] = {"sourceType": self.source_type}
        if self.peer_ip:
            learned["peerIP"] = self.peer_ip
        return {"type": self.type, "destination": self.destination, "gateway": self.gateway,
                "interface": self.interface, "learnedFrom": learned}


def route_views(rib: Rib, sessions: Mapping[str, tuple[SessionKind, str]]) -> list[RouteView]:
    """The RIB as CalicoNodeStatus routes: what is in the kernel (FIB: one entry per next hop, our own
    blocks as Static blackholes) and the other routes received (RIB: alternatives that lost the
    decision, stale ones included). ``sessions`` maps a session name to (kind, peer IP)."""
    received: dict[str, list[tuple[str, str]]] = {}  # prefix -> [(session, next hop)]
    for name, prefix, attrs in sorted(rib.received(), key=lambda r: (r[1], r[0])):
        received.setdefault(prefix, []).append((name, attrs.next_hop))
    views: list[RouteView] = []
    installed: set[tuple[str, str]] = set()
    for prefix, change in sorted(rib.fib().items()):
        family = _family(prefix)
        if change.kind == "blackhole":
            views.append(RouteView(family, "FIB", prefix, "", "blackhole", "Static"))
            continue
        best = rib.best(prefix)
        first = best[0].name if best is not None and best[0] is not None else None
        for nexthop in change.nexthops or ():
            # an ECMP next hop comes from the session that sent it (the best one's first)
            sources = [n for n, hop in received.get(prefix, ()) if hop == nexthop]
            source = first if first in sources or not sources else sources[0]
            if source is not None:
                installed.add((source, prefix))
            views.append(RouteView(family, "FIB", prefix, nexthop, "", *_learned(source, sessions)))
    for prefix, routes in received.items():
        for name, nexthop in routes:
            if (name, prefix) not in installed:
                learned = _learned(name, sessions)
                views.append(RouteView(_family(prefix), "RIB", prefix, nexthop, "", *learned))
    return views


def _family(prefix: str) -> Literal[4, 6]:
    return 6 if ":" in prefix else 4


def _learned(session: str | None, sessions: Mapping[str, tuple[SessionKind, str]]) -> tuple[str, str | None]:
    if session is None or session not in sessions:
        return "Kernel", None  # adopted from an earlier run, not (yet) learned again
    kind, peer_ip = sessions[session]
    return ("NodeMesh" if kind == "Mesh" else "BGPPeer"), peer_ip


def build_status(report: StatusReport, routes: Sequence[RouteView], classes: Iterable[str], *,
                 version: str, reconfigured: float | None) -> Status:
    """The ``status`` of a CalicoNodeStatus asking for ``classes``, as of ``report.now``."""
    wanted = set(classes)
    status: Status = {"lastUpdated": _time(report.now)}
    if "Agent" in wanted:
        status["agent"] = _agent(report, version, reconfigured)
    if "BGP" in wanted:
        status["bgp"] = _bgp(report.sessions)
    if "Routes" in wanted:
        status["routes"] = {f"routesV{f}": [r.to_json() for r in routes if r.family == f] for f in (4, 6)}
    return status


def _agent(report: StatusReport, version: str, reconfigured: float | None) -> Status:
    ready = bool(report.revision) and report.as_number is not None and report.exabgp_pid is not None
    agent = {"state": "Ready" if ready else "NotReady", "version": version,
             "routerID": report.router_id or "", "lastBootTime": _time(report.started),
             "lastReconfigurationTime": _time(reconfigured) if reconfigured is not None else ""}
    # One daemon serves both families; IPv6 is reported when the node has IPv6 sessions.
    result = {"birdV4": agent}
    if any(s.family == 6 for s in report.sessions):
        result["birdV6"] = dict(agent)
    return result


def _bgp(sessions: Sequence[SessionStatus]) -> Status:
    bgp: Status = {}
    for family in (4, 6):
        peers = [_peer(s) for s in sessions if s.family == family and s.kind in PEER_TYPES]
        up = sum(1 for p in peers if p["state"] == "Established")
        bgp[f"numberEstablishedV{family}"] = up
        bgp[f"numberNotEstablishedV{family}"] = len(peers) - up
        bgp[f"peersV{family}"] = peers
    return bgp


def _peer(session: SessionStatus) -> dict[str, Any]:
    return {"peerIP": session.peer_ip, "type": PEER_TYPES[session.kind], "state": bgp_state(session),
            "since": _time(session.since) if session.since is not None else ""}


def bgp_state(session: SessionStatus) -> str:
    """The FSM state in Calico's vocabulary; bgpd's ``info`` starts with its own state name."""
    if session.established:
        return "Established"
    word = session.info.split(":")[0].split()[0] if session.info.strip() else ""
    if word in BGP_STATES:
        return word
    return "Active" if word == "Passive" else "Idle"  # passive: waiting for the peer to connect


def same_status(a: Status | None, b: Status | None) -> bool:
    """Equal apart from ``lastUpdated`` (rewriting only that would be noise in the datastore)."""
    if a is None or b is None:
        return a is b
    return {k: v for k, v in a.items() if k != "lastUpdated"} == \
        {k: v for k, v in b.items() if k != "lastUpdated"}


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
