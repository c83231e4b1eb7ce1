"""Desired vs current -> the ordered actions that take one to the other (pure).

A session is reset only when a parameter that its OPEN or its TCP connection depends on changed;
anything else (filters, next hop, route-reflector client, allow-local-AS) is applied in place by
re-evaluating routes, so a running session never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal, TypeVar

from bgpd.desired import DesiredNode, DesiredSession, Export, StaticRoute
from bgpd.model.resources import BGPFilter, IPNetwork

T = TypeVar("T")
ActionKind = Literal["remove", "reset", "add", "update", "noop"]

# Changing any of these changes the TCP connection or the OPEN message: the session must restart.
RESET_FIELDS: tuple[str, ...] = (
    "family", "peer_ip", "port", "remote_as", "local_as", "password", "ttl_security", "passive",
    "source_address", "max_restart_time", "keepalive_time",
)
# Changing these only changes which routes are accepted or how they are sent: no reset.
UPDATE_FIELDS: tuple[str, ...] = (
    "ibgp", "next_hop", "rr_client", "rr_cluster_id", "allow_local_as", "filters", "reachable_by",
)
_ORDER: dict[ActionKind, int] = {"remove": 0, "reset": 1, "add": 2, "update": 3, "noop": 4}


@dataclass(frozen=True)
class SessionAction:
    """``changed`` names the fields that differ (``filter:<name>`` when a used filter's rules did)."""

    kind: ActionKind
    name: str
    session: DesiredSession | None
    previous: DesiredSession | None
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    sessions: tuple[SessionAction, ...] = ()
    announce: tuple[Export, ...] = ()
    withdraw: tuple[Export, ...] = ()
    static_add: tuple[StaticRoute, ...] = ()
    static_remove: tuple[StaticRoute, ...] = ()
    blackhole_add: tuple[IPNetwork, ...] = ()
    blackhole_remove: tuple[IPNetwork, ...] = ()
    speaker_changed: tuple[str, ...] = ()

    @property
    def actions(self) -> tuple[SessionAction, ...]:
        """The session actions that do something (everything but no-ops)."""
        return tuple(a for a in self.sessions if a.kind != "noop")

    def of_kind(self, kind: ActionKind) -> tuple[str, ...]:
        return tuple(a.name for a in self.sessions if a.kind == kind)

    @property
    def needs_speaker_config(self) -> bool:
        """Whether the speaker's session configuration must be re-rendered and reloaded."""
        return bool(self.speaker_changed) or any(
            a.kind in ("remove", "reset", "add") for a in self.sessions)

    @property
    def static_changed(self) -> bool:
        return bool(self.static_add or self.static_remove or self.blackhole_add or self.blackhole_remove)

    @property
    def empty(self) -> bool:
        return not (self.actions or self.announce or self.withdraw or self.static_changed
                    or self.speaker_changed)


def plan(current: DesiredNode | None, desired: DesiredNode) -> Plan:
    before = current or DesiredNode(node=desired.node, as_number=desired.as_number, router_id=None,
                                    listen_port=None)
    speaker = _speaker_fields(before, desired) if current is not None else ("initial",)
    # A new router ID changes every OPEN, so it resets every session.
    actions = _session_actions(before, desired, ("router_id",) if "router_id" in speaker else ())
    announce, withdraw = _diff_exports(before.exports, desired.exports)
    static_add, static_remove = _diff(before.static_routes, desired.static_routes)
    blackhole_add, blackhole_remove = _diff(before.blackholes, desired.blackholes)
    return Plan(
        sessions=tuple(sorted(actions, key=lambda a: (_ORDER[a.kind], a.name))),
        announce=announce, withdraw=withdraw,
        static_add=static_add, static_remove=static_remove,
        blackhole_add=blackhole_add, blackhole_remove=blackhole_remove,
        speaker_changed=speaker,
    )


def _speaker_fields(before: DesiredNode, after: DesiredNode) -> tuple[str, ...]:
    """Node-wide parameters of the speaker itself (its listener and BGP identifier)."""
    changed = []
    if before.router_id != after.router_id:
        changed.append("router_id")
    if before.listen_port != after.listen_port:
        changed.append("listen_port")
    return tuple(changed)


def _session_actions(before: DesiredNode, after: DesiredNode,
                     reset_all: tuple[str, ...]) -> list[SessionAction]:
    old = {s.name: s for s in before.sessions}
    new = {s.name: s for s in after.sessions}
    actions = [SessionAction("remove", n, None, s) for n, s in old.items() if n not in new]
    actions += [SessionAction("add", n, s, None) for n, s in new.items() if n not in old]
    for name in sorted(old.keys() & new.keys()):
        prev, cur = old[name], new[name]
        resets = reset_all + tuple(f for f in RESET_FIELDS if getattr(prev, f) != getattr(cur, f))
        updates = tuple(f for f in UPDATE_FIELDS if getattr(prev, f) != getattr(cur, f))
        updates += _changed_filters(cur.filters, before.filters, after.filters)
        if resets:
            actions.append(SessionAction("reset", name, cur, prev, resets + updates))
        elif updates:
            actions.append(SessionAction("update", name, cur, prev, updates))
        else:
            actions.append(SessionAction("noop", name, cur, prev, _other_changes(prev, cur)))
    return actions


def _changed_filters(names: tuple[str, ...], old: Mapping[str, BGPFilter],
                     new: Mapping[str, BGPFilter]) -> tuple[str, ...]:
    return tuple(f"filter:{n}" for n in names if old.get(n) != new.get(n))


def _other_changes(prev: DesiredSession, cur: DesiredSession) -> tuple[str, ...]:
    """Bookkeeping-only differences (e.g. which resources produced the session)."""
    return tuple(f.name for f in fields(DesiredSession) if getattr(prev, f.name) != getattr(cur, f.name))


def _diff_exports(old: tuple[Export, ...],
                  new: tuple[Export, ...]) -> tuple[tuple[Export, ...], tuple[Export, ...]]:
    """An export whose communities changed is re-announced (an announce replaces the old path)."""
    old_by_prefix = {e.prefix: e for e in old}
    new_by_prefix = {e.prefix: e for e in new}
    announce = tuple(e for e in new if old_by_prefix.get(e.prefix) != e)
    withdraw = tuple(e for e in old if e.prefix not in new_by_prefix)
    return announce, withdraw


def _diff(old: tuple[T, ...], new: tuple[T, ...]) -> tuple[tuple[T, ...], tuple[T, ...]]:
    old_set, new_set = set(old), set(new)
    return tuple(x for x in new if x not in old_set), tuple(x for x in old if x not in new_set)
