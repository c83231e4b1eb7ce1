"""CalicoNodeStatus ``status`` from a StatusReport and the RIB, exactly (reference §1.8)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bgpd.control.status import SessionStatus, StatusReport
from bgpd.nodestatus import RouteView, bgp_state, build_status, route_views, same_status
from tests.unit.test_rib_support import attrs, exports, peer, rib_with

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC).timestamp()


def sess(name: str, ip: str, kind: Any, *, state: str = "up", info: str = "Established",
         since: float | None = NOW - 60) -> SessionStatus:
    return SessionStatus(name=name, family=6 if ":" in ip else 4, kind=kind, peer_ip=ip, port=179,
                         state=state, since=since, info=info)


def report(*sessions: SessionStatus, **kw: Any) -> StatusReport:
    base: dict[str, Any] = dict(
        node="node-1", as_number=64512, router_id="10.0.0.1", store_source="etcd://10.0.0.9:2379",
        revision="42", stale=False, errors=(), sessions=sessions, routes_installed=1, routes_stale=0,
        exabgp_pid=4242, exabgp_restarts=0, exabgp_last_exit=None, started=NOW - 3600, now=NOW)
    base.update(kw)
    return StatusReport(**base)


SESSIONS = (
    sess("Mesh_10_0_0_2", "10.0.0.2", "Mesh"),
    sess("Node_10_0_0_254", "10.0.0.254", "Node", state="start", info="Active: Connection refused"),
    sess("Global_fd00__254", "fd00::254", "Global", state="start", info="Passive", since=None),
    sess("Local_Workload_10_244_1_5", "10.244.1.5", "Local_Workload"),  # never reported, as in Calico
)
ROUTES = [RouteView(4, "FIB", "10.244.2.0/26", "10.0.0.2", "", "NodeMesh", "10.0.0.2"),
          RouteView(6, "RIB", "fd10::/64", "fd00::254", "", "BGPPeer", "fd00::254")]


def test_every_class() -> None:
    status = build_status(report(*SESSIONS), ROUTES, ["Agent", "BGP", "Routes"], version="0.1.0",
                          reconfigured=NOW - 30)
    agent = {"state": "Ready", "version": "0.1.0", "routerID": "10.0.0.1",
             "lastBootTime": "2026-11-22T11:00:00Z", "lastReconfigurationTime": "2026-11-22T11:59:30Z"}
    assert status == {
        "lastUpdated": "2026-11-22T12:00:00Z",
        "agent": {"birdV4": agent, "birdV6": agent},
        "bgp": {
            "numberEstablishedV4": 1, "numberNotEstablishedV4": 1,
            "numberEstablishedV6": 0, "numberNotEstablishedV6": 1,
            "peersV4": [
                {"peerIP": "10.0.0.2", "type": "NodeMesh", "state": "Established",
                 "since": "2026-11-22T11:59:00Z"},
                {"peerIP": "10.0.0.254", "type": "NodePeer", "state": "Active",
                 "since": "2026-11-22T11:59:00Z"}],
            "peersV6": [{"peerIP": "fd00::254", "type": "GlobalPeer", "state": "Active", "since": ""}],
        },
        "routes": {
            "routesV4": [{"type": "FIB", "destination": "10.244.2.0/26", "gateway": "10.0.0.2",
                          "interface": "", "learnedFrom": {"sourceType": "NodeMesh", "peerIP": "10.0.0.2"}}],
            "routesV6": [{"type": "RIB", "destination": "fd10::/64", "gateway": "fd00::254",
                          "interface": "", "learnedFrom": {"sourceType": "BGPPeer", "peerIP": "fd00::254"}}],
        },
    }


def test_only_the_requested_classes() -> None:
    assert set(build_status(report(*SESSIONS), ROUTES, ["BGP"], version="v", reconfigured=None)) == \
        {"lastUpdated", "bgp"}
    assert build_status(report(), [], [], version="v", reconfigured=None) == \
        {"lastUpdated": "2026-11-22T12:00:00Z"}


def test_agent_not_ready_before_a_configuration_runs() -> None:
    status = build_status(report(revision="", as_number=None, exabgp_pid=None, router_id=None), [],
                          ["Agent"], version="v", reconfigured=None)
    assert status["agent"] == {"birdV4": {
        "state": "NotReady", "version": "v", "routerID": "", "lastBootTime": "2026-11-22T11:00:00Z",
        "lastReconfigurationTime": ""}}


@pytest.mark.parametrize(("info", "state"), [
    ("Connect", "Connect"), ("Active: Connection refused", "Active"), ("OpenSent: TCP connected", "OpenSent"),
    ("Passive", "Active"), ("Passive: reset: remoteAS", "Active"), ("", "Idle"), ("weird", "Idle"),
])
def test_state_names(info: str, state: str) -> None:
    assert bgp_state(sess("Mesh_10_0_0_2", "10.0.0.2", "Mesh", state="start", info=info)) == state


def test_unchanged_apart_from_last_updated() -> None:
    a = build_status(report(*SESSIONS), ROUTES, ["BGP"], version="v", reconfigured=None)
    b = build_status(report(*SESSIONS, now=NOW + 10), ROUTES, ["BGP"], version="v", reconfigured=None)
    assert a != b and same_status(a, b)
    c = build_status(report(SESSIONS[0], now=NOW + 10), ROUTES, ["BGP"], version="v", reconfigured=None)
    assert not same_status(a, c)
    assert not same_status(None, a) and same_status(None, None)


def test_route_views_from_the_rib() -> None:
    """Installed best paths (one entry per ECMP next hop, each from the session that sent it), our
    blocks as Static blackholes, the losing alternatives as RIB entries; routes import refused (an
    AS path with our AS) are not listed."""
    mesh2, mesh3 = peer("Mesh_10_0_0_2", "10.0.0.2"), peer("Mesh_10_0_0_3", "10.0.0.3")
    tor = peer("Global_10_0_0_254", "10.0.0.254", asn=65000)
    rib = rib_with(mesh2, mesh3, tor, exports=exports("10.244.1.0/26"),
                   blackholes=frozenset({"10.244.1.0/26"}))
    rib.update("Mesh_10_0_0_2", ["10.244.2.0/26"], attrs("10.0.0.2"))
    rib.update("Global_10_0_0_254", ["10.244.2.0/26"], attrs("10.0.0.254", as_path=(65000, 64999)))
    rib.update("Mesh_10_0_0_2", ["10.99.0.0/16"], attrs("10.0.0.2", as_path=(65000,)))
    rib.update("Mesh_10_0_0_3", ["10.99.0.0/16"], attrs("10.0.0.3", as_path=(65000,)))
    rib.update("Global_10_0_0_254", ["10.77.0.0/16"], attrs("10.0.0.254", as_path=(65000, 64512)))
    sessions: dict[str, Any] = {"Mesh_10_0_0_2": ("Mesh", "10.0.0.2"), "Mesh_10_0_0_3": ("Mesh", "10.0.0.3"),
                                "Global_10_0_0_254": ("Global", "10.0.0.254")}
    views = route_views(rib, sessions)
    assert [(v.type, v.destination, v.gateway, v.source_type, v.peer_ip) for v in views] == [
        ("FIB", "10.244.1.0/26", "", "Static", None),
        ("FIB", "10.244.2.0/26", "10.0.0.2", "NodeMesh", "10.0.0.2"),
        ("FIB", "10.99.0.0/16", "10.0.0.2", "NodeMesh", "10.0.0.2"),
        ("FIB", "10.99.0.0/16", "10.0.0.3", "NodeMesh", "10.0.0.3"),
        ("RIB", "10.244.2.0/26", "10.0.0.254", "BGPPeer", "10.0.0.254"),
    ]


# ---------------------------------------------------------------- the reporter task (fake writer)


class FakeWriter:
    def __init__(self, body: Any) -> None:
        self.body: Any = body
        self.writes = 0
        self.fail: Exception | None = None

    @property
    def source(self) -> str:
        return "fake://"

    async def modify(self, info: Any, name: str, change: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        self.body = change(self.body)
        self.writes += 1


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return NOW


def reporter(writer: FakeWriter, reports: list[StatusReport]) -> Any:
    from bgpd.nodestatus_task import NodeStatusReporter  # noqa: PLC0415

    fake: Any = writer  # the writer protocol's other verbs are not used
    return NodeStatusReporter("node-1", fake, Clock(), "v", report=lambda: reports[-1], routes=list,
                              reconfigured=lambda: None, handled=lambda: "7")


def cns(name: str, node: str, period: int = 10) -> Any:
    from bgpd.model.resources import CalicoNodeStatus, Meta  # noqa: PLC0415

    return CalicoNodeStatus(Meta(name), node, ("BGP",), period)


def test_reporter_writes_this_nodes_statuses_only_when_changed() -> None:
    import asyncio  # noqa: PLC0415

    from bgpd.model.snapshot import Snapshot  # noqa: PLC0415
    from bgpd.store.writer import NotFound  # noqa: PLC0415

    writer = FakeWriter({"apiVersion": "projectcalico.org/v3", "kind": "CalicoNodeStatus",
                         "metadata": {"name": "mine"}, "spec": {}})
    reports = [report(SESSIONS[0])]
    r = reporter(writer, reports)
    r.observe(Snapshot(node_statuses={"mine": cns("mine", "node-1"), "other": cns("other", "node-2")},
                       revision="7"))
    assert list(r.reporters) == ["mine"] and r.reporters["mine"].due == 100.0
    asyncio.run(r._report_one("mine", r.reporters["mine"]))
    assert writer.writes == 1 and writer.body["status"]["bgp"]["numberEstablishedV4"] == 1
    assert r.reporters["mine"].due == 110.0
    reports.append(report(SESSIONS[0], now=NOW + 10))  # only lastUpdated differs: not rewritten
    asyncio.run(r._report_one("mine", r.reporters["mine"]))
    assert writer.writes == 1
    reports.append(report(now=NOW + 20))
    writer.fail = ConnectionError("etcd unreachable")
    asyncio.run(r._report_one("mine", r.reporters["mine"]))
    assert writer.writes == 1 and r.reporters["mine"].due == 105.0  # retried soon
    writer.fail = None
    asyncio.run(r._report_one("mine", r.reporters["mine"]))
    assert writer.writes == 2 and writer.body["status"]["bgp"]["numberEstablishedV4"] == 0
    writer.fail = NotFound("gone")
    reports.append(report(SESSIONS[0], now=NOW + 30))
    asyncio.run(r._report_one("mine", r.reporters["mine"]))
    assert r.reporters == {}


def test_reporter_period_zero_writes_once_and_a_spec_change_reports_again() -> None:
    from bgpd.model.snapshot import Snapshot  # noqa: PLC0415

    r = reporter(FakeWriter({}), [report()])
    r.observe(Snapshot(node_statuses={"mine": cns("mine", "node-1", period=0)}, revision="7"))
    r.reporters["mine"].due = float("inf")  # as after its one report
    r.observe(Snapshot(node_statuses={"mine": cns("mine", "node-1", period=0)}, revision="8"))
    assert r.reporters["mine"].due == float("inf")  # its own status write changes no spec
    r.observe(Snapshot(node_statuses={"mine": cns("mine", "node-1", period=5)}, revision="9"))
    assert r.reporters["mine"].due == 100.0
    r.observe(Snapshot(node_statuses={}, revision="10"))
    assert r.reporters == {}


def test_reporter_waits_until_the_reconciler_has_handled_the_snapshot_it_saw() -> None:
    """Applied or rejected: either ends the wait, however long ExaBGP's first start takes."""
    import asyncio  # noqa: PLC0415

    from bgpd.model.snapshot import Snapshot  # noqa: PLC0415
    from bgpd.nodestatus_task import NodeStatusReporter  # noqa: PLC0415

    handled = ["7"]
    fake: Any = FakeWriter({})
    r = NodeStatusReporter("node-1", fake, Clock(), "v", report=report, routes=list,
                           reconfigured=lambda: None, handled=lambda: handled[0])

    async def main() -> None:
        r.observe(Snapshot(node_statuses={"mine": cns("mine", "node-1")}, revision="8"))
        settling = asyncio.ensure_future(r._settle())
        await asyncio.sleep(0.2)  # the (fake) clock stands still: only the reconciler can end it
        assert not settling.done()
        handled[0] = "8"  # e.g. rejected: what runs is still revision 7's, and the status says so
        await asyncio.wait_for(settling, 5)

    asyncio.run(main())
