"""conf/resources/<topology>: every example validates cleanly and resolves to the documented peers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpd.desired import DesiredNode
from bgpd.model.loader import build_snapshot, parse_text
from bgpd.model.snapshot import Snapshot
from bgpd.resolve import resolve
from tests.conftest import ROOT

EXAMPLES = ROOT / "conf" / "resources"
TOPOLOGIES = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())


def load(directory: Path) -> Snapshot:
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        found, errors = parse_text(path.read_text(), str(path))
        assert errors == []
        docs += found
    return build_snapshot(docs)


def peers(desired: DesiredNode) -> dict[str, tuple[int, bool]]:
    """name -> (remote AS, iBGP)"""
    return {s.name: (s.remote_as, s.ibgp) for s in desired.sessions}


def test_every_topology_of_the_how_to_has_an_example() -> None:
    assert TOPOLOGIES == ["default-as", "full-mesh", "global-peer", "node-as", "rack1-tor",
                          "route-reflectors", "tor-ebgp", "tor-ibgp"]


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_example_is_valid_and_every_node_exports_its_block(topology: str) -> None:
    snapshot = load(EXAMPLES / topology)
    assert [str(e) for e in snapshot.errors] == []
    assert 3 <= len(snapshot.nodes) <= 5
    for i, name in enumerate(sorted(snapshot.nodes), 1):
        desired = resolve(snapshot, name)
        assert desired.errors == ()
        assert [str(e.prefix) for e in desired.exports] == [f"10.244.{i}.0/26"]
        assert [str(b) for b in desired.blackholes] == [f"10.244.{i}.0/26"]
        assert desired.sessions, f"{topology}: {name} has no sessions"


def test_full_mesh() -> None:
    snapshot = load(EXAMPLES / "full-mesh")
    assert peers(resolve(snapshot, "node-2")) == {"Mesh_192_168_0_11": (64512, True),
                                                  "Mesh_192_168_0_13": (64512, True)}


def test_global_peer() -> None:
    snapshot = load(EXAMPLES / "global-peer")
    for name in snapshot.nodes:
        got = peers(resolve(snapshot, name))
        assert got["Global_192_20_30_40"] == (64567, False)
        assert len([n for n in got if n.startswith("Mesh_")]) == 2


def test_rack1_tor_only_on_rack_1() -> None:
    snapshot = load(EXAMPLES / "rack1-tor")
    with_tor = {n for n in snapshot.nodes if "Node_192_20_30_40" in peers(resolve(snapshot, n))}
    assert with_tor == {"node-1", "node-2"}


def test_route_reflectors() -> None:
    snapshot = load(EXAMPLES / "route-reflectors")
    for client in ("node-3", "node-4", "node-5"):
        sessions = resolve(snapshot, client).sessions
        assert [(s.name, s.rr_client) for s in sessions] == [("Node_192_168_0_11", False),
                                                              ("Node_192_168_0_12", False)]
    rr = {s.name: (s.rr_client, s.rr_cluster_id) for s in resolve(snapshot, "node-1").sessions}
    assert rr == {"Node_192_168_0_12": (False, None),  # the other RR of the same cluster
                  "Node_192_168_0_13": (True, "244.0.0.1"), "Node_192_168_0_14": (True, "244.0.0.1"),
                  "Node_192_168_0_15": (True, "244.0.0.1")}


@pytest.mark.parametrize(("topology", "tor_as", "ibgp"), [("tor-ibgp", (64512, 64512), True),
                                                          ("tor-ebgp", (65001, 65002), False)])
def test_tor_peering(topology: str, tor_as: tuple[int, int], ibgp: bool) -> None:
    snapshot = load(EXAMPLES / topology)
    assert peers(resolve(snapshot, "node-1")) == {"Node_192_168_1_1": (tor_as[0], ibgp)}
    assert peers(resolve(snapshot, "node-4")) == {"Node_192_168_2_1": (tor_as[1], ibgp)}


def test_default_as_changed() -> None:
    snapshot = load(EXAMPLES / "default-as")
    desired = resolve(snapshot, "node-1")
    assert desired.as_number == 64513
    assert set(peers(desired).values()) == {(64513, True)}


def test_node_in_its_own_as() -> None:
    snapshot = load(EXAMPLES / "node-as")
    node1 = resolve(snapshot, "node-1")
    assert node1.as_number == 64514
    assert peers(node1) == {"Mesh_192_168_0_12": (64512, False), "Mesh_192_168_0_13": (64512, False)}
    # The peer node's own AS (DESIGN.md §3), so both ends agree and the session comes up.
    assert peers(resolve(snapshot, "node-2")) == {"Mesh_192_168_0_11": (64514, False),
                                                  "Mesh_192_168_0_13": (64512, True)}
