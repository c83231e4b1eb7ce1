"""The decision process, one step at a time: each case differs from the tie only in that step."""

from __future__ import annotations

from typing import Any

import pytest

from bgpd.bgp import ORIGIN_EGP, ORIGIN_IGP, ORIGIN_INCOMPLETE
from bgpd.rib.decision import Candidate, select
from tests.unit.test_rib_support import attrs, peer

A = peer("a", "10.0.0.2", asn=65001)
B = peer("b", "10.0.0.3", asn=65002)
IA = peer("ia", "10.0.0.4")
IB = peer("ib", "10.0.0.5")


def cand(p: Any, stale: bool = False, **kw: Any) -> Candidate:
    kw.setdefault("as_path", (p.remote_as,) if not p.ibgp else ())
    return Candidate(p, attrs(p.peer_ip, **kw), stale)


def names(cands: list[Candidate]) -> list[str]:
    return sorted(c.peer.name for c in cands)


CASES = [
    # (what, candidates, best, ECMP set)
    ("higher local_pref", [cand(IA, local_pref=200), cand(IB, local_pref=100)], "ia", ["ia"]),
    ("missing local_pref is 100", [cand(IA, local_pref=99), cand(IB)], "ib", ["ib"]),
    ("shorter AS path", [cand(A, as_path=(65001, 1)), cand(B, as_path=(65002,))], "b", ["b"]),
    ("AS_SET counts one hop", [cand(A, as_path=(65001,), as_set=(1, 2, 3)), cand(B, as_path=(65002, 7))],
     "a", ["a", "b"]),
    ("lower origin", [cand(A, origin=ORIGIN_INCOMPLETE), cand(B, origin=ORIGIN_EGP)], "b", ["b"]),
    ("origin IGP beats EGP", [cand(A, origin=ORIGIN_IGP), cand(B, origin=ORIGIN_EGP)], "a", ["a"]),
    ("lower MED, same neighbour AS", [cand(A, as_path=(7,), med=20), cand(B, as_path=(7,), med=10)],
     "b", ["b"]),
    ("missing MED is 0", [cand(A, as_path=(7,)), cand(B, as_path=(7,), med=1)], "a", ["a"]),
    ("MED ignored across neighbour ASes", [cand(A, med=20), cand(B, med=10)], "a", ["a", "b"]),
    ("eBGP over iBGP", [cand(IA, as_path=(65001,)), cand(B)], "b", ["b"]),
    ("equal eBGP routes: ECMP, lowest router id best", [cand(B), cand(A)], "a", ["a", "b"]),
    ("ORIGINATOR_ID stands in for the router id",
     [cand(IA, originator_id="10.9.9.9"), cand(IB, originator_id="10.1.1.1")], "ib", ["ia", "ib"]),
    ("shorter CLUSTER_LIST",
     [cand(IA, originator_id="10.1.1.1", cluster_list=("1.1.1.1", "2.2.2.2")),
      cand(IB, originator_id="10.1.1.1", cluster_list=("1.1.1.1",))], "ib", ["ia", "ib"]),
    ("lowest peer address",
     [cand(peer("x", "10.0.0.9", router_id="1.1.1.1")), cand(peer("y", "10.0.0.10", router_id="1.1.1.1"))],
     "x", ["x", "y"]),
    ("fresh beats stale", [cand(A, stale=True), cand(B, as_path=(65002, 1, 2))], "b", ["b"]),
    ("stale routes still count when all are stale", [cand(A, stale=True), cand(B, stale=True)], "a",
     ["a", "b"]),
]


@pytest.mark.parametrize(("what", "cands", "best", "group"), CASES, ids=[c[0] for c in CASES])
def test_decision_step(what: str, cands: list[Candidate], best: str, group: list[str]) -> None:
    chosen, ecmp = select(cands)
    assert (chosen.peer.name, names(ecmp)) == (best, group)
    chosen_rev, ecmp_rev = select(list(reversed(cands)))
    assert (chosen_rev.peer.name, names(ecmp_rev)) == (best, group), "order of candidates must not matter"


def test_med_is_deterministic_across_groups() -> None:
    # Neighbour 7 sends MED 5 and 1; neighbour 8 MED 0. The worse MED from 7 goes; 7/1 and 8/0 tie.
    c = peer("c", "10.0.0.6", asn=65003)
    cands = [cand(A, as_path=(7,), med=5), cand(B, as_path=(7,), med=1), cand(c, as_path=(8,), med=0)]
    for order in (cands, cands[::-1], [cands[1], cands[0], cands[2]]):
        best, group = select(order)
        assert (best.peer.name, names(group)) == ("b", ["b", "c"])
