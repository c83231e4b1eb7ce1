"""Adjacent route events of one session merge; nothing moves past another event."""

from __future__ import annotations

from bgpd.bgp import PathAttributes
from bgpd.speaker.coalesce import coalesce
from bgpd.speaker.codec import Ack, EndOfRib, Event, PeerState, RoutesReceived, RoutesWithdrawn

A = PathAttributes("10.0.0.1", as_path=(65001,))
B = PathAttributes("10.0.0.1", as_path=(65001, 7))
V4 = "ipv4 unicast"


def got(p: str, attrs: PathAttributes = A, peer: str = "10.0.0.1") -> RoutesReceived:
    return RoutesReceived(peer, V4, attrs, (p,))


def gone(*prefixes: str, peer: str = "10.0.0.1") -> RoutesWithdrawn:
    return RoutesWithdrawn(peer, V4, prefixes)


def test_one_prefix_updates_with_equal_attributes_become_one_event() -> None:
    # equal, not identical: every decoded line makes its own attributes object
    events = [got(f"10.{i}.0.0/16", PathAttributes("10.0.0.1", as_path=(65001,))) for i in range(500)]
    prefixes = tuple(f"10.{i}.0.0/16" for i in range(500))
    assert coalesce(events) == [RoutesReceived("10.0.0.1", V4, A, prefixes)]


def test_runs_break_at_other_attributes_sessions_kinds_and_events() -> None:
    events: list[Event] = [
        got("p1"), got("p2"), got("p3", B), got("p4", peer="10.0.0.2"), gone("p1"), gone("p2", "p5"),
        Ack(True), gone("p6"), EndOfRib("10.0.0.1", V4), got("p7"), PeerState("10.0.0.1", "down"), got("p8"),
        RoutesReceived("10.0.0.1", "ipv6 unicast", A, ("fd00::/64",)), got("p9"), got("p9"),
    ]
    assert coalesce(events) == [
        RoutesReceived("10.0.0.1", V4, A, ("p1", "p2")), got("p3", B), got("p4", peer="10.0.0.2"),
        gone("p1", "p2", "p5"), Ack(True), gone("p6"), EndOfRib("10.0.0.1", V4), got("p7"),
        PeerState("10.0.0.1", "down"), got("p8"),
        RoutesReceived("10.0.0.1", "ipv6 unicast", A, ("fd00::/64",)),
        RoutesReceived("10.0.0.1", V4, A, ("p9", "p9")),
    ]


def test_nothing_to_merge_returns_the_same_events() -> None:
    events: list[Event] = [got("p1"), gone("p1"), got("p1")]
    assert coalesce(events) == events and all(a is b for a, b in zip(coalesce(events), events, strict=True))
