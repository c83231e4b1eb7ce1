"""The reconciler with fake ports and a manual clock: sessions, status, stale config, GR, ExaBGP restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_network
from typing import Any

from bgpd.bgp import Family, PathAttributes
from bgpd.desired import DesiredNode, Export, Password, StaticRoute
from bgpd.model.errors import ConfigError
from bgpd.model.resources import IPNetwork
from bgpd.model.snapshot import Snapshot
from bgpd.ports import (
    EndOfRib,
    FibChange,
    PeerOpen,
    PeerState,
    Route,
    RoutesReceived,
    RoutesWithdrawn,
    SpeakerRestarted,
)
from bgpd.reconciler import Reconciler
from tests.unit.test_plan import node, session

V4: Family = "ipv4 unicast"
P1, P2 = ip_network("192.168.1.0/24"), ip_network("192.168.2.0/24")
EXPORT = Export(ip_network("10.244.1.0/26"))


class ManualClock:
    def __init__(self) -> None:
        self.mono, self.wall = 1000.0, 1_700_000_000.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@dataclass
class FakeSpeaker:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    pid: int | None = 100

    async def configure(self, node: DesiredNode) -> None:
        self.calls.append(("configure", tuple(s.name for s in node.sessions)))

    async def announce(self, session: str, exports: Sequence[Export]) -> None:
        self.calls.append(("announce", session, tuple(str(e.prefix) for e in exports)))

    async def withdraw(self, session: str, exports: Sequence[Export]) -> None:
        self.calls.append(("withdraw", session, tuple(str(e.prefix) for e in exports)))

    async def send_eor(self, session: str, family: Family) -> None:
        self.calls.append(("eor", session, family))


@dataclass
class FakeFib:
    routes: dict[IPNetwork, tuple[str, ...]] = field(default_factory=dict)
    static: tuple[Any, ...] = ()
    calls: int = 0
    sweeps: int = 0

    async def apply(self, changes: Sequence[FibChange]) -> None:
        self.calls += 1
        for c in changes:
            if c.nexthops is None:
                del self.routes[c.prefix]
            else:
                self.routes[c.prefix] = c.nexthops

    async def set_static(self, routes: Sequence[StaticRoute], blackholes: Sequence[IPNetwork]) -> None:
        self.calls += 1
        self.static = (tuple(routes), tuple(blackholes))

    async def sweep(self) -> int:
        self.sweeps += 1
        return 0


class FakeRib:
    """Every peer's route is installed (ECMP over peers); stale marks as RFC 4724 wants them."""

    def __init__(self) -> None:
        self.adj: dict[str, dict[IPNetwork, tuple[str, bool]]] = {}

    def _fib(self) -> dict[IPNetwork, tuple[str, ...]]:
        out: dict[IPNetwork, set[str]] = {}
        for routes in self.adj.values():
            for prefix, (nh, _stale) in routes.items():
                out.setdefault(prefix, set()).add(nh)
        return {p: tuple(sorted(nhs)) for p, nhs in out.items()}

    def _change(self, mutate: Any) -> list[FibChange]:
        before = self._fib()
        mutate()
        after = self._fib()
        return [FibChange(p, after.get(p)) for p in sorted(before.keys() | after.keys(), key=str)
                if before.get(p) != after.get(p)]

    def configure(self, node: DesiredNode) -> list[FibChange]:
        return []

    def update(self, session: str, family: Family, routes: Iterable[Route]) -> list[FibChange]:
        return self._change(lambda: self.adj.setdefault(session, {}).update(
            {r.prefix: (r.attributes.next_hop, False) for r in routes}))

    def withdraw(self, session: str, family: Family, prefixes: Iterable[IPNetwork]) -> list[FibChange]:
        return self._change(lambda: [self.adj.get(session, {}).pop(p, None) for p in prefixes])

    def peer_down(self, session: str, graceful: bool) -> list[FibChange]:
        if graceful:
            routes = self.adj.get(session, {})
            return self._change(lambda: routes.update({p: (nh, True) for p, (nh, _) in routes.items()}))
        return self._change(lambda: self.adj.pop(session, None))

    def _drop_stale(self, session: str) -> None:
        routes = self.adj.get(session, {})
        for p in [p for p, (_, stale) in routes.items() if stale]:
            del routes[p]

    def end_of_rib(self, session: str, family: Family) -> list[FibChange]:
        return self._change(lambda: self._drop_stale(session))

    def expire(self, session: str) -> list[FibChange]:
        return self._change(lambda: self._drop_stale(session))

    def counts(self, session: str) -> tuple[int, int]:
        n = len(self.adj.get(session, {}))
        return n, n

    def totals(self) -> tuple[int, int]:
        return (len(self._fib()),
                sum(1 for r in self.adj.values() for _, stale in r.values() if stale))


class World:
    def __init__(self) -> None:
        self.clock, self.speaker, self.fib, self.rib = ManualClock(), FakeSpeaker(), FakeFib(), FakeRib()
        self.nodes: dict[str, DesiredNode] = {}
        self.r = Reconciler("node-1", "file:///res", self.speaker, self.fib, self.rib, self.clock,
                            lambda snap, name: self.nodes[snap.revision], restart_deadline=300)

    def apply(self, revision: str, desired: DesiredNode | None = None, *errors: ConfigError) -> None:
        if desired is not None:
            self.nodes[revision] = desired
        run(self.r.on_snapshot(Snapshot(revision=revision, errors=errors)))

    def event(self, *events: Any) -> None:
        for e in events:
            run(self.r.on_event(e))

    def up(self, *names: str) -> None:
        self.event(*(PeerState(n, "up") for n in names))

    def receive(self, name: str, *prefixes: IPNetwork, nh: str = "10.0.0.2") -> None:
        self.event(RoutesReceived(name, V4, tuple(Route(p, PathAttributes(nh)) for p in prefixes)))

    def info(self) -> dict[str, tuple[str, str]]:
        return {s.name: (s.state, s.info) for s in self.r.status().sessions}

    def reset_calls(self) -> None:
        self.speaker.calls.clear()
        self.fib.calls = 0


def run(coro: Any) -> Any:
    return asyncio.run(coro)


M2, M3, G9 = "Mesh_10_0_0_2", "Mesh_10_0_0_3", "Global_10_0_0_9"
A = node(session("10.0.0.2"), session("10.0.0.3"), exports=(EXPORT,),
         static_routes=(StaticRoute(ip_network("10.0.0.9/32"), "10.0.0.254"),))


def started() -> World:
    w = World()
    w.apply("a", A)
    w.up(M2, M3)
    w.reset_calls()
    return w


def test_first_snapshot_configures_sessions_and_static_routes() -> None:
    w = World()
    w.apply("a", A)
    assert w.speaker.calls == [("configure", (M2, M3))]
    assert w.fib.static == (A.static_routes, ())
    assert w.info() == {M2: ("start", "Idle: new session"), M3: ("start", "Idle: new session")}
    assert w.r.status().revision == "a" and w.r.status().exit_status == 1


def test_session_up_announces_exports_then_eor() -> None:
    w = World()
    w.apply("a", A)
    w.speaker.calls.clear()
    w.up(M2)
    assert w.speaker.calls == [("announce", M2, ("10.244.1.0/26",)), ("eor", M2, V4)]
    assert w.info()[M2] == ("up", "Established")


def test_noop_snapshot_does_nothing() -> None:
    w = started()
    w.apply("a2", A)
    assert w.speaker.calls == [] and w.fib.calls == 0
    assert w.r.status().revision == "a2"


def test_a_b_a_returns_to_the_same_state() -> None:
    w = started()
    before = w.r.status()
    b = node(session("10.0.0.2"), session("10.0.0.4"), exports=(Export(ip_network("10.244.2.0/26")),))
    w.apply("b", b)
    w.apply("a", A)
    after = w.r.status()
    assert [s.name for s in after.sessions] == [s.name for s in before.sessions]
    assert w.r.current == A and w.fib.static == (A.static_routes, ())
    assert [c for c in w.speaker.calls if c[0] == "configure"][-1] == ("configure", (M2, M3))
    assert w.speaker.calls[-2:] == [("withdraw", M2, ("10.244.2.0/26",)),
                                    ("announce", M2, ("10.244.1.0/26",))]
    assert w.info()[M2] == ("up", "Established")  # M2 never changed: never touched


def test_unrelated_peer_added_touches_no_running_session() -> None:
    w = started()
    since = {s.name: s.since for s in w.r.status().sessions}
    w.clock.advance(60)
    w.apply("b", node(*A.sessions, session("10.0.0.9", name=G9, kind="Global"), exports=A.exports,
                      static_routes=A.static_routes))
    assert w.speaker.calls == [("configure", (M2, M3, G9))]
    status = {s.name: s for s in w.r.status().sessions}
    assert [(n, status[n].state, status[n].since) for n in (M2, M3)] == [(M2, "up", since[M2]),
                                                                        (M3, "up", since[M3])]
    assert w.info()[G9] == ("start", "Idle: new session")


def test_password_change_resets_only_that_session_and_drops_its_routes() -> None:
    w = started()
    w.receive(M2, P1)
    w.receive(M3, P2, nh="10.0.0.3")
    w.apply("b", node(session("10.0.0.2", password=Password("s3cret")), session("10.0.0.3"),
                      exports=A.exports, static_routes=A.static_routes))
    assert w.info() == {
        M2: ("start", "Idle: reset: password (no OPEN received; MD5 password mismatch suspected)"),
        M3: ("up", "Established")}
    assert w.fib.routes == {P2: ("10.0.0.3",)}
    assert "s3cret" not in repr(w.r.status().to_json())


def test_removed_session_takes_its_routes_and_status_with_it() -> None:
    w = started()
    w.receive(M3, P2, nh="10.0.0.3")
    w.apply("b", node(session("10.0.0.2"), exports=A.exports, static_routes=A.static_routes))
    assert w.speaker.calls == [("configure", (M2,))]
    assert w.fib.routes == {} and list(w.info()) == [M2]


def test_status_info_gives_the_reason_a_session_is_not_up() -> None:
    w = started()
    w.event(PeerState(M2, "Active", "Socket: Connection refused"),
            PeerState(M3, "down", "Hold timer expired"))
    assert w.info() == {M2: ("start", "Active: Socket: Connection refused"),
                        M3: ("start", "Idle: Hold timer expired")}
    assert w.r.status().exit_status == 1
    w.up(M2, M3)
    assert w.r.status().exit_status == 0


def test_bad_snapshot_changes_nothing_and_marks_status_stale() -> None:
    w = started()
    w.receive(M2, P1)
    w.reset_calls()
    error = ConfigError("peers.yaml", 2, "BGPPeer", "tor", "spec.asNumber", "not an AS number", "x")
    w.apply("bad", None, error)
    assert w.speaker.calls == [] and w.fib.calls == 0
    status = w.r.status()
    assert (status.stale, status.revision) == (True, "a")
    assert status.errors == ("peers.yaml:2 BGPPeer/tor spec.asNumber: not an AS number; got 'x'",)
    assert w.info() == {M2: ("up", "Established"), M3: ("up", "Established")}
    w.apply("good", A)
    assert (w.r.status().stale, w.r.status().errors, w.r.status().revision) == (False, (), "good")


def test_resolver_errors_and_crashes_are_stale_too() -> None:
    w = started()
    w.apply("e", replace(A, errors=(ConfigError("<resolve>", 0, "Node", "node-1", "", "not found"),)))
    assert w.r.status().stale and w.speaker.calls == []
    w.r.resolve = lambda snap, name: 1 / 0  # type: ignore[assignment,return-value]
    w.apply("z")
    assert w.r.status().errors == ("resolving node node-1 failed: ZeroDivisionError: division by zero",)


def test_graceful_restart_keeps_stale_routes_until_the_deadline() -> None:
    w = started()
    w.event(PeerOpen(M2, restart_time=120))
    w.receive(M2, P1, P2)
    w.event(PeerState(M2, "down", "Connection closed"))
    assert w.fib.routes == {P1: ("10.0.0.2",), P2: ("10.0.0.2",)}
    assert w.r.status().routes_stale == 2
    assert w.r.next_deadline() == w.clock.mono + 120
    w.clock.advance(119)
    run(w.r.tick())
    assert len(w.fib.routes) == 2
    w.clock.advance(1)
    run(w.r.tick())
    assert w.fib.routes == {}
    assert all(s.stale_until is None for s in w.r.sessions.values())


def test_graceful_restart_end_of_rib_sweeps_what_was_not_refreshed() -> None:
    w = started()
    w.event(PeerOpen(M2, restart_time=120))
    w.receive(M2, P1, P2)
    w.event(PeerState(M2, "down", "Connection closed"))
    w.up(M2)
    w.receive(M2, P1)
    w.event(EndOfRib(M2, V4))
    assert w.fib.routes == {P1: ("10.0.0.2",)}
    assert w.r.status().routes_stale == 0
    assert all(s.stale_until is None for s in w.r.sessions.values())


def test_peer_without_graceful_restart_loses_its_routes_at_once() -> None:
    w = started()
    w.receive(M2, P1)
    w.event(RoutesWithdrawn(M2, V4, ()))
    w.event(PeerState(M2, "down", "Hold timer expired"))
    assert w.fib.routes == {}


def test_exabgp_restart_keeps_routes_then_replays_exports_before_eor() -> None:
    w = started()
    w.receive(M2, P1)
    w.event(SpeakerRestarted(pid=101, restarts=1, last_exit="killed by SIGKILL"))
    assert w.info()[M2] == ("start", "Idle: ExaBGP restarted (killed by SIGKILL)")
    assert w.fib.routes == {P1: ("10.0.0.2",)}
    w.speaker.pid = 101
    w.up(M2)
    assert w.speaker.calls == [("announce", M2, ("10.244.1.0/26",)), ("eor", M2, V4)]
    status = w.r.status()
    assert (status.exabgp_pid, status.exabgp_restarts) == (101, 1)
    assert status.exabgp_last_exit == "killed by SIGKILL"
    w.clock.advance(300)  # M2 never sent End-of-RIB: its stale routes go at our restart deadline
    run(w.r.tick())
    assert w.fib.routes == {}


def test_export_changes_go_to_established_sessions_only() -> None:
    w = World()
    w.apply("a", A)
    w.up(M2)
    w.speaker.calls.clear()
    new = Export(ip_network("10.244.2.0/26"))
    w.apply("b", replace(A, exports=(new,)))
    assert w.speaker.calls == [("withdraw", M2, ("10.244.1.0/26",)), ("announce", M2, ("10.244.2.0/26",))]


def test_next_hop_change_reannounces_without_reset() -> None:
    w = started()
    w.apply("b", node(session("10.0.0.2", next_hop="self"), session("10.0.0.3"), exports=A.exports,
                      static_routes=A.static_routes))
    assert w.speaker.calls == [("configure", (M2, M3)), ("announce", M2, ("10.244.1.0/26",))]
    assert w.info()[M2] == ("up", "Established")


def test_first_sweep_waits_for_every_end_of_rib_or_the_deadline() -> None:
    w = started()
    w.event(EndOfRib(M2, V4))
    assert w.fib.sweeps == 0
    w.event(EndOfRib(M3, V4))
    assert w.fib.sweeps == 1
    w2 = started()
    w2.clock.advance(300)
    run(w2.r.tick())
    assert w2.fib.sweeps == 1
    run(w2.r.tick())
    assert w2.fib.sweeps == 1 and w2.r.next_deadline() is None


def test_events_for_unknown_sessions_are_ignored() -> None:
    w = started()
    w.receive("Mesh_10_9_9_9", P1)
    w.event(PeerState("Mesh_10_9_9_9", "up"))
    assert w.fib.routes == {} and w.speaker.calls == []
