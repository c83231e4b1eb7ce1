"""The reconciler with fake ports and a manual clock: sessions, status, stale config, GR, ExaBGP restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_network
from typing import Any

import pytest

from bgpd.bgp import Family, PathAttributes
from bgpd.desired import DesiredNode, Export, ExportPolicy, Password, StaticRoute
from bgpd.model.errors import ConfigError
from bgpd.model.snapshot import Snapshot
from bgpd.reconciler import Reconciler
from bgpd.rib import FibChange
from bgpd.speaker.codec import (
    EndOfRib,
    NotificationEvent,
    PeerOpen,
    PeerState,
    RoutesReceived,
    RoutesWithdrawn,
    SpeakerRestarted,
)
from tests.unit.test_plan import node, session

V4: Family = "ipv4 unicast"
P1, P2 = "192.168.1.0/24", "192.168.2.0/24"
EXPORT = Export(ip_network("10.244.1.0/26"))
IPS = {"Mesh_10_0_0_2": "10.0.0.2", "Mesh_10_0_0_3": "10.0.0.3", "Global_10_0_0_9": "10.0.0.9"}


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
    """Records (verb, peer ip, prefixes) per API command; `configured` per reconfigure()."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    pid: int | None = 100
    refuse: bool = False

    async def reconfigure(self, desired: DesiredNode) -> None:
        if self.refuse:
            raise ValueError("ExaBGP rejected the configuration: line 3")
        self.calls.append(("configure", tuple(s.name for s in desired.sessions)))

    async def send(self, commands: Sequence[str]) -> None:
        for c in commands:
            words = c.split()
            if words[2:4] == ["announce", "eor"]:
                self.calls.append(("eor", words[1]))
            elif words[2] == "announce":
                self.calls.append(("announce", words[1], tuple(words[words.index("nlri") + 1:])))
            else:
                self.calls.append(("withdraw", words[1], (words[4],)))


@dataclass
class FakeFib:
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    calls: int = 0
    sweeps: list[set[str]] = field(default_factory=list)
    left_over: dict[str, tuple[str, ...]] = field(default_factory=dict)
    leftovers: bool = False  # blackholes / other metrics the dump does not return

    async def apply(self, changes: Sequence[FibChange]) -> None:
        self.calls += 1
        for c in changes:
            for prefix in c.prefixes:
                if c.nexthops is None:
                    self.routes.pop(prefix, None)
                else:
                    self.routes[prefix] = c.nexthops

    async def dump(self) -> dict[str, tuple[str, ...]]:
        self.routes.update(self.left_over)
        return dict(self.left_over)

    async def sweep(self, keep: set[str]) -> int:
        self.sweeps.append(keep)
        gone = [p for p in self.routes if p not in keep]
        for p in gone:
            del self.routes[p]
        return len(gone)


class World:
    def __init__(self) -> None:
        self.clock, self.speaker, self.fib = ManualClock(), FakeSpeaker(), FakeFib()
        self.nodes: dict[str, DesiredNode] = {}
        self.r = Reconciler("node-1", "file:///res", self.speaker, self.fib, self.clock,
                            lambda snap, name: self.nodes[snap.revision], restart_deadline=300)

    def apply(self, revision: str, desired: DesiredNode | None = None, *errors: ConfigError) -> None:
        if desired is not None:
            self.nodes[revision] = desired
        run(self.r.on_snapshot(Snapshot(revision=revision, errors=errors)))

    def event(self, *events: Any) -> None:
        for e in events:
            run(self.r.on_event(e))

    def up(self, *names: str) -> None:
        self.event(*(PeerState(IPS[n], "up") for n in names))

    def receive(self, name: str, *prefixes: str) -> None:
        self.event(RoutesReceived(IPS[name], V4, PathAttributes(IPS[name], local_pref=100), prefixes))

    def info(self) -> dict[str, tuple[str, str]]:
        return {s.name: (s.state, s.info) for s in self.r.status().sessions}

    def reset_calls(self) -> None:
        self.speaker.calls.clear()
        self.fib.calls = 0


def run(coro: Any) -> Any:
    return asyncio.run(coro)


M2, M3, G9 = "Mesh_10_0_0_2", "Mesh_10_0_0_3", "Global_10_0_0_9"
STATIC = StaticRoute(ip_network("10.0.0.9/32"), "10.0.0.254")
# Calico exports a prefix only inside an enabled pool (calico-semantics.md §2.7).
POLICY = ExportPolicy(pools=(ip_network("10.244.0.0/16"),),
                      blocks=(ip_network("10.244.1.0/26"), ip_network("10.244.2.0/26")))
A = node(session("10.0.0.2"), session("10.0.0.3"), exports=(EXPORT,), static_routes=(STATIC,),
         export_policy=POLICY)
ANNOUNCE_EXPORT_TO_M2 = ("announce", "10.0.0.2", ("10.244.1.0/26",))


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
    assert w.fib.routes == {"10.0.0.9/32": ("10.0.0.254",)}
    assert w.info() == {M2: ("start", "Connect: new session"), M3: ("start", "Connect: new session")}
    assert w.r.status().revision == "a" and w.r.status().exit_status == 1


def test_session_up_announces_exports_then_eor() -> None:
    w = World()
    w.apply("a", A)
    w.speaker.calls.clear()
    w.up(M2)
    assert w.speaker.calls == [ANNOUNCE_EXPORT_TO_M2, ("eor", "10.0.0.2")]
    assert w.info()[M2] == ("up", "Established")


def test_received_routes_reach_the_kernel_and_the_counts() -> None:
    w = started()
    w.receive(M2, P1, P2)
    w.receive(M3, P2)
    assert w.fib.routes[P1] == ("10.0.0.2",) and w.fib.routes[P2] == ("10.0.0.2", "10.0.0.3")
    w.event(RoutesWithdrawn("10.0.0.2", V4, (P2,)))
    assert w.fib.routes[P2] == ("10.0.0.3",)
    status = {s.name: s for s in w.r.status().sessions}
    assert (status[M2].routes_received, status[M3].routes_received) == (1, 1)
    assert w.r.status().routes_installed == 3  # with the reachableBy route: the RIB installs it too


def test_noop_snapshot_does_nothing() -> None:
    w = started()
    w.receive(M2, P1)
    w.reset_calls()
    w.apply("a2", A)
    assert w.speaker.calls == [] and w.fib.calls == 0
    assert w.r.status().revision == "a2"


def test_a_b_a_returns_to_the_same_state() -> None:
    w = started()
    before = (w.r.status().to_json(), dict(w.fib.routes))
    b = node(session("10.0.0.2"), session("10.0.0.4"), exports=(Export(ip_network("10.244.2.0/26")),),
             export_policy=POLICY)
    w.apply("b", b)
    assert w.fib.routes == {}
    w.apply("a", A)
    assert w.r.current == A and w.fib.routes == before[1]
    assert [c for c in w.speaker.calls if c[0] == "configure"] == [("configure", (M2, "Mesh_10_0_0_4")),
                                                                  ("configure", (M2, M3))]
    # M2 never changed, so it was never touched: it was told about the exports as they changed
    assert [c for c in w.speaker.calls if c[1] == "10.0.0.2"] == [
        ("withdraw", "10.0.0.2", ("10.244.1.0/26",)), ("announce", "10.0.0.2", ("10.244.2.0/26",)),
        ("withdraw", "10.0.0.2", ("10.244.2.0/26",)), ANNOUNCE_EXPORT_TO_M2]
    after = w.r.status().to_json()
    assert after["sessions"][0] == before[0]["sessions"][0]
    assert [s["name"] for s in after["sessions"]] == [s["name"] for s in before[0]["sessions"]]


def test_unrelated_peer_added_touches_no_running_session() -> None:
    w = started()
    since = {s.name: s.since for s in w.r.status().sessions}
    w.clock.advance(60)
    w.apply("b", node(*A.sessions, session("10.0.0.9", name=G9, kind="Global"), exports=A.exports,
                      static_routes=A.static_routes, export_policy=POLICY))
    assert w.speaker.calls == [("configure", (M2, M3, G9))]
    status = {s.name: s for s in w.r.status().sessions}
    assert [(n, status[n].state, status[n].since) for n in (M2, M3)] == [(M2, "up", since[M2]),
                                                                        (M3, "up", since[M3])]
    assert w.info()[G9] == ("start", "Connect: new session")


def test_password_change_resets_only_that_session_and_drops_its_routes() -> None:
    w = started()
    w.receive(M2, P1)
    w.receive(M3, P2)
    w.apply("b", node(session("10.0.0.2", password=Password("s3cret")), session("10.0.0.3"),
                      exports=A.exports, static_routes=A.static_routes, export_policy=POLICY))
    assert w.speaker.calls == [("configure", (M2, M3))]
    assert w.info() == {
        M2: ("start", "Connect: reset: password; no OPEN received"),
        M3: ("up", "Established")}
    assert w.fib.routes == {P2: ("10.0.0.3",), "10.0.0.9/32": ("10.0.0.254",)}
    assert "s3cret" not in repr(w.r.status().to_json())
    # ExaBGP then reports the replaced connection closed: the reset's reason stays in INFO
    w.event(PeerState(IPS[M2], "down", "graceful restarted negotiated, closing without a notification"))
    assert w.info()[M2] == (
        "start", "Active: reset: password; no OPEN received")


def test_filter_change_updates_in_place_without_reconfiguring_the_speaker() -> None:
    w = started()
    w.apply("b", node(session("10.0.0.2", allow_local_as=1), session("10.0.0.3"), exports=A.exports,
                      static_routes=A.static_routes, export_policy=POLICY))
    assert [c for c in w.speaker.calls if c[0] == "configure"] == []
    assert w.info()[M2] == ("up", "Established")


def test_removed_session_takes_its_routes_and_status_with_it() -> None:
    w = started()
    w.receive(M3, P2)
    w.apply("b", node(session("10.0.0.2"), exports=A.exports, static_routes=A.static_routes,
                      export_policy=POLICY))
    assert w.speaker.calls == [("configure", (M2,))]
    assert P2 not in w.fib.routes and list(w.info()) == [M2]
    w.event(RoutesReceived("10.0.0.3", V4, PathAttributes("10.0.0.3"), (P1,)))  # late event: ignored
    assert P1 not in w.fib.routes


def test_status_info_gives_the_reason_a_session_is_not_up() -> None:
    w = World()
    w.apply("a", node(session("10.0.0.2"), session("10.0.0.3", passive=True),
                      session("10.0.0.9", name=G9, kind="Global", password=Password("x"))))
    w.event(PeerState("10.0.0.2", "connected"), PeerState("10.0.0.2", "down", "Connection refused"),
            PeerState("10.0.0.3", "down", None))
    w.event(NotificationEvent("10.0.0.2", "receive", 2, 2, "Bad Peer AS"))
    assert w.info() == {
        M2: ("start", "Active: Connection refused; last NOTIFICATION received 2/2 OPEN error: bad peer AS; "
                      "the peer does not expect our AS 64512"),
        M3: ("start", "Passive"),
        G9: ("start", "Connect: new session; no OPEN received")}
    w.event(PeerOpen("10.0.0.9", "10.0.0.9", 64512, 90, None, ()))
    w.up(M2, M3, G9)
    assert set(w.info().values()) == {("up", "Established")}
    assert w.r.status().exit_status == 0


def test_bad_snapshot_changes_nothing_and_marks_status_stale() -> None:
    w = started()
    w.receive(M2, P1)
    w.reset_calls()
    error = ConfigError("peers.yaml", 2, "BGPPeer", "tor", "spec.asNumber", "not an AS number", "x")
    w.apply("bad", None, error)
    assert w.speaker.calls == [] and w.fib.calls == 0
    status = w.r.status()
    assert (status.stale, status.revision, w.r.handled) == (True, "a", "bad")  # handled, not applied
    assert status.errors == ("peers.yaml:2 BGPPeer/tor spec.asNumber: not an AS number; got 'x'",)
    assert w.info() == {M2: ("up", "Established"), M3: ("up", "Established")}
    w.apply("good", A)
    assert (w.r.status().stale, w.r.status().errors, w.r.status().revision) == (False, (), "good")
    assert w.r.handled == "good"


def test_resolver_errors_crashes_and_speaker_refusals_are_stale_too() -> None:
    w = started()
    w.apply("e", replace(A, errors=(ConfigError("<resolve>", 0, "Node", "node-1", "", "not found"),)))
    assert w.r.status().stale and w.speaker.calls == []
    w.r.resolve = lambda snap, name: 1 / 0  # type: ignore[assignment,return-value]
    w.apply("z")
    assert w.r.status().errors == ("resolving node node-1 failed: ZeroDivisionError: division by zero",)
    w.r.resolve = lambda snap, name: node(session("10.0.0.2"))
    w.speaker.refuse = True
    w.apply("r")
    assert w.r.status().errors == (
        "speaker configuration refused: ExaBGP rejected the configuration: line 3",)
    assert w.r.current == A and list(w.info()) == [M2, M3]


def gr_peer(restart: int = 120) -> World:
    w = World()
    w.apply("a", A)
    w.event(PeerOpen("10.0.0.2", "10.0.0.2", 64512, 90, restart, (V4,)))
    w.up(M2, M3)
    w.receive(M2, P1, P2)
    return w


def test_graceful_restart_keeps_stale_routes_until_the_deadline() -> None:
    w = gr_peer()
    w.event(PeerState("10.0.0.2", "down", "Connection closed"))
    assert w.fib.routes[P1] == ("10.0.0.2",) and w.fib.routes[P2] == ("10.0.0.2",)
    assert w.r.status().routes_stale == 2
    assert w.info()[M2][1].endswith("; 2 routes kept stale (graceful restart, at most 120 s more)")
    assert w.r.next_deadline() == w.clock.mono + 120
    w.clock.advance(119)
    run(w.r.tick())
    assert P1 in w.fib.routes
    w.clock.advance(1)
    run(w.r.tick())
    assert P1 not in w.fib.routes and P2 not in w.fib.routes
    assert w.r.status().routes_stale == 0


def test_graceful_restart_end_of_rib_sweeps_what_was_not_refreshed() -> None:
    w = gr_peer()
    w.event(PeerState("10.0.0.2", "down", "Connection closed"))
    w.up(M2)
    w.receive(M2, P1)
    w.event(EndOfRib("10.0.0.2", V4))
    assert P1 in w.fib.routes and P2 not in w.fib.routes
    assert w.r.status().routes_stale == 0


def test_peer_without_graceful_restart_loses_its_routes_at_once() -> None:
    w = started()
    w.receive(M2, P1)
    w.event(PeerState("10.0.0.2", "down", "Hold timer expired"))
    assert P1 not in w.fib.routes
    assert w.info()[M2] == ("start", "Active: Hold timer expired")


def test_exabgp_restart_keeps_routes_then_replays_exports_before_eor() -> None:
    w = gr_peer()
    w.speaker.calls.clear()
    w.event(PeerState("10.0.0.2", "down", "exabgp exited (killed by signal SIGKILL)"),
            PeerState("10.0.0.3", "down", "exabgp exited (killed by signal SIGKILL)"),
            SpeakerRestarted(1, "killed by signal SIGKILL"))
    assert w.info()[M2] == ("start", "Active: ExaBGP restarted (killed by signal SIGKILL); 2 routes kept "
                                     "stale (graceful restart, at most 120 s more)")
    assert P1 in w.fib.routes  # M2 restarts gracefully: its routes stay while ExaBGP comes back
    w.speaker.pid = 101
    w.up(M2)
    assert w.speaker.calls == [ANNOUNCE_EXPORT_TO_M2, ("eor", "10.0.0.2")]
    status = w.r.status()
    assert (status.exabgp_pid, status.exabgp_restarts) == (101, 1)
    assert status.exabgp_last_exit == "killed by signal SIGKILL"
    w.receive(M2, P1)
    w.event(EndOfRib("10.0.0.2", V4))
    assert P1 in w.fib.routes and P2 not in w.fib.routes


def test_exabgp_lost_keeps_a_non_gr_peers_routes_until_it_resyncs() -> None:
    """We are the restarting side: the kernel keeps forwarding whatever the peer offered."""
    w = started()
    w.receive(M2, P1, P2)
    w.event(PeerState("10.0.0.2", "down", "exabgp exited (killed by signal SIGKILL)", local=True))
    assert P1 in w.fib.routes and w.r.status().routes_stale == 2
    w.up(M2)
    w.receive(M2, P1)
    w.event(EndOfRib("10.0.0.2", V4))
    assert P1 in w.fib.routes and P2 not in w.fib.routes


def test_a_cease_or_an_unlisted_family_ends_graceful_restart() -> None:
    w = gr_peer()
    w.event(NotificationEvent("10.0.0.2", "receive", 6, 2, "Administrative Shutdown"),
            PeerState("10.0.0.2", "down", "notification received (6,2)"))
    assert P1 not in w.fib.routes  # a Cease: the peer is not coming back
    w.event(PeerOpen("10.0.0.2", "10.0.0.2", 64512, 90, 120, ()))  # GR "aware": no family kept
    w.up(M2)
    w.receive(M2, P1)
    w.event(PeerState("10.0.0.2", "down", "Connection closed"))
    assert P1 not in w.fib.routes


def test_export_changes_go_to_established_sessions_only() -> None:
    w = World()
    w.apply("a", A)
    w.up(M2)
    w.speaker.calls.clear()
    w.apply("b", replace(A, exports=(Export(ip_network("10.244.2.0/26")),)))
    assert w.speaker.calls == [("withdraw", "10.0.0.2", ("10.244.1.0/26",)),
                               ("announce", "10.0.0.2", ("10.244.2.0/26",))]


def test_static_route_changes_go_to_the_kernel() -> None:
    w = started()
    other = StaticRoute(ip_network("10.0.0.8/32"), "10.0.0.254")
    w.apply("b", replace(A, static_routes=(other,)))
    assert w.fib.routes == {"10.0.0.8/32": ("10.0.0.254",)}


def test_adopted_routes_stay_until_every_end_of_rib_then_sweep() -> None:
    w = World()
    w.fib.left_over = {P1: ("10.0.0.2",), "10.99.0.0/16": ("10.0.0.3",)}
    assert run(w.r.adopt()) == 2
    w.apply("a", A)
    w.up(M2, M3)
    w.receive(M2, P1)
    w.event(EndOfRib("10.0.0.2", V4))
    assert "10.99.0.0/16" in w.fib.routes and w.fib.sweeps == []
    w.event(EndOfRib("10.0.0.3", V4))
    assert w.fib.routes == {P1: ("10.0.0.2",), "10.0.0.9/32": ("10.0.0.254",)}
    assert w.fib.sweeps == [{P1, "10.0.0.9/32"}]


@pytest.mark.parametrize("leftovers", [False, True])
def test_a_start_with_nothing_of_ours_in_the_kernel_never_sweeps(leftovers: bool) -> None:
    """Only what a previous run left needs a sweep: without it, every route of ours is the RIB's."""
    w = World()
    w.fib.leftovers = leftovers  # e.g. a blackhole the dump does not return for adoption
    assert run(w.r.adopt()) == 0
    w.apply("a", A)
    w.up(M2, M3)
    w.event(EndOfRib("10.0.0.2", V4))
    w.event(EndOfRib("10.0.0.3", V4))
    assert len(w.fib.sweeps) == int(leftovers)


def test_adopted_routes_are_swept_at_the_deadline_without_end_of_rib() -> None:
    w = World()
    w.fib.left_over = {"10.99.0.0/16": ("10.0.0.3",)}
    run(w.r.adopt())
    w.apply("a", A)
    assert w.r.next_deadline() == w.clock.mono + 300
    w.clock.advance(300)
    run(w.r.tick())
    assert "10.99.0.0/16" not in w.fib.routes and len(w.fib.sweeps) == 1
    run(w.r.tick())
    assert len(w.fib.sweeps) == 1 and w.r.next_deadline() is None


def test_what_was_withdrawn_while_a_peer_was_down_is_withdrawn_when_it_returns() -> None:
    w = started()
    w.event(PeerState("10.0.0.2", "down", "Hold timer expired"))
    w.apply("b", replace(A, exports=()))  # ExaBGP still holds 10.244.1.0/26 for M2 and will replay it
    w.speaker.calls.clear()
    w.up(M2)
    assert w.speaker.calls == [("withdraw", "10.0.0.2", ("10.244.1.0/26",)), ("eor", "10.0.0.2")]
    w.event(PeerState("10.0.0.2", "down", "Hold timer expired"))
    w.speaker.calls.clear()
    w.up(M2)
    assert w.speaker.calls == [("eor", "10.0.0.2")]


def test_after_an_exabgp_restart_nothing_is_thought_to_be_replayed() -> None:
    w = started()
    w.event(PeerState("10.0.0.2", "down", "exabgp exited"), SpeakerRestarted(1, "exit status 1"))
    w.apply("b", replace(A, exports=()))
    w.speaker.calls.clear()
    w.up(M2)
    assert w.speaker.calls == [("eor", "10.0.0.2")]


def test_routes_over_the_prefix_limit_are_dropped_and_said_so() -> None:
    w = started()
    w.r.max_prefixes = 1
    w.apply("b", replace(A, sessions=(session("10.0.0.2", keepalive_time=10), session("10.0.0.3"))))
    w.up(M2)
    w.receive(M2, P1, P2)
    assert P1 in w.fib.routes and P2 not in w.fib.routes
    assert w.info()[M2] == ("up", "Established; 1 routes dropped over the limit of 1")


def test_updates_of_a_session_that_was_just_reset_are_ignored() -> None:
    w = started()
    w.apply("b", replace(A, sessions=(session("10.0.0.2", port=180), session("10.0.0.3"))))
    w.receive(M2, P1)  # still in flight from the old session when the reset happened
    w.event(EndOfRib("10.0.0.2", V4))
    assert P1 not in w.fib.routes
    w.up(M2)
    w.receive(M2, P2)
    assert P2 in w.fib.routes


def test_reset_by_configuration_keeps_a_graceful_peers_routes_until_its_end_of_rib() -> None:
    """An AS change resets the session; with a GR peer its routes keep forwarding meanwhile."""
    w = gr_peer()
    w.apply("b", node(session("10.0.0.2", remote_as=64514, ibgp=False), session("10.0.0.3"),
                      exports=A.exports, static_routes=A.static_routes, export_policy=POLICY))
    assert w.info()[M2][0] == "start"
    assert w.fib.routes[P1] == ("10.0.0.2",) and w.fib.routes[P2] == ("10.0.0.2",)
    w.up(M2)
    w.receive(M2, P1)
    w.event(EndOfRib("10.0.0.2", V4))
    assert P1 in w.fib.routes and P2 not in w.fib.routes


def test_removed_graceful_session_is_retired_its_routes_stay_until_replaced_or_restart_time() -> None:
    """The mesh giving way to route reflectors: the removed session's routes stay (stale) until a
    new session brings the same prefixes, and go at the peer's restart time."""
    w = gr_peer()
    w.apply("b", node(session("10.0.0.3"), exports=A.exports, static_routes=A.static_routes,
                      export_policy=POLICY))
    assert list(w.info()) == [M3]
    assert w.fib.routes[P1] == ("10.0.0.2",) and w.fib.routes[P2] == ("10.0.0.2",)
    w.receive(M3, P1)  # e.g. reflected by a route reflector: the fresh route wins
    assert w.fib.routes[P1] == ("10.0.0.3",)
    assert w.r.next_deadline() == w.clock.mono + 120
    w.clock.advance(120)
    run(w.r.tick())
    assert w.fib.routes[P1] == ("10.0.0.3",) and P2 not in w.fib.routes
