"""Property: after any sequence of events, the FIB and Adj-RIB-Outs built by applying the RIB's
incremental diffs equal the ones recomputed from scratch.

The events reach the RIB's batch lanes as well as its per-prefix path: a peer re-sends its whole table
after a (graceful) restart, End-of-RIB sweeps what it did not, and routes adopted from the kernel are
learned again with the same next hops, others, or where they may not be installed. BGPD_FUZZ=long runs
many more examples.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import replace
from ipaddress import ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from bgpd.bgp import PathAttributes
from bgpd.model.resources import FilterOperation, FilterRule
from bgpd.rib import Announce, FibChange, LocalInfo, PeerInfo, Rib, RibDiff
from tests.unit.test_rib_support import bgp_filter, exports, local, peer

PREFIXES = ["10.244.1.0/26", "10.244.2.0/26", "10.244.3.0/26", "192.168.0.0/24", "0.0.0.0/0", "127.0.0.0/8"]
COMMON = PREFIXES[:2]  # most events touch these, so paths from several peers meet
FILTER = bgp_filter("f", import_v4=(
    FilterRule(action="Reject", match_operator="Equal", cidr=ip_network("10.244.2.0/26")),
    FilterRule(action="Accept", operations=(FilterOperation(set_priority=2147483547 - 50),)),
), export_v4=(FilterRule(action="Accept", match_operator="Equal", cidr=ip_network("192.168.0.0/24")),))
PEERS = {
    "e1": peer("e1", "10.0.1.1", asn=65001),
    "e2": peer("e2", "10.0.2.1", asn=65002),
    "c1": peer("c1", "10.0.0.11", rr_client=True),
    "n1": peer("n1", "10.0.0.12", gr_restart_time=None),
}
ATTRS = [
    PathAttributes("10.0.9.1", as_path=(65001,)),
    PathAttributes("10.0.9.2", as_path=(65002,), med=5),
    PathAttributes("10.0.9.3", as_path=(65001, 7), local_pref=300),
    PathAttributes("10.0.9.4", originator_id="10.0.0.50", cluster_list=("10.0.0.60",)),
    PathAttributes("10.0.9.5", as_path=(65001, 64512)),
]
LOCALS = [
    local(cluster_id="10.0.0.100"),
    local(exports=exports("10.244.1.0/26"), blackholes=frozenset({"10.244.1.0/26"}), install_default=True),
    local(cluster_id="10.0.0.100", kernel_reject=(ip_network("10.244.3.0/24"),)),
]

name = st.sampled_from(sorted(PEERS))
prefix = st.one_of(st.sampled_from(COMMON), st.sampled_from(PREFIXES))
some = st.sampled_from(PREFIXES)  # fewer shared prefixes: one that a session alone holds takes the lanes
update = st.tuples(st.just("update"), name, st.lists(prefix, max_size=3), st.sampled_from(ATTRS))
first = st.tuples(st.just("update"), name, st.lists(some, min_size=1, max_size=3), st.sampled_from(ATTRS))
event = st.one_of(
    update,
    update,
    st.tuples(st.just("withdraw"), name, st.lists(prefix, max_size=3)),
    st.tuples(st.just("down"), name, st.booleans()),
    st.tuples(st.just("up"), name, st.booleans()),
    st.tuples(st.just("eor"), name),
    st.tuples(st.just("resend"), name, st.booleans()),
    st.tuples(st.just("restart"), name, st.booleans(), st.lists(prefix, max_size=2),
              st.lists(some, max_size=2), st.booleans()),
    # graceful restarts more often, and ones after which everything is re-sent as it was
    st.tuples(st.just("restart"), name, st.just(True), st.lists(prefix, max_size=2),
              st.lists(some, max_size=2), st.booleans()),
    st.tuples(st.just("restart"), name, st.just(True), st.just([]), st.just([]), st.booleans()),
    st.tuples(st.just("expire"), st.integers(0, 200)),
    st.tuples(st.just("local"), st.sampled_from(LOCALS)),
    st.tuples(st.just("filters"), name, st.booleans()),
)


def info(peer_name: str, filtered: bool) -> PeerInfo:
    base = PEERS[peer_name]
    if not filtered:
        return base
    return PeerInfo(**{**{f: getattr(base, f) for f in PeerInfo.__slots__}, "filters": (FILTER,)})


# Adopted at the start: next hops a peer sends (10.0.9.1, 10.0.9.2 with 10.0.9.3 for ECMP), others, a
# default route that LOCALS[0] may not install, and a prefix no peer sends.
ADOPTED = {"10.244.2.0/26": ("10.0.9.9",), "10.244.1.0/26": ("10.0.9.1",), "10.244.3.0/26": ("10.0.9.2",),
           "192.168.0.0/24": ("10.0.9.2", "10.0.9.3"), "0.0.0.0/0": ("10.0.9.1",),
           "172.16.0.0/16": ("10.0.9.9",)}


class Model:
    def __init__(self, rib: Rib) -> None:
        self.rib = rib
        self.fib = rib.fib()
        self.out: dict[str, dict[str, PathAttributes]] = {}
        self.now = 0.0
        self.table: dict[str, dict[str, PathAttributes]] = defaultdict(dict)  # what each peer announced

    def apply(self, diff: RibDiff) -> None:
        for grouped in diff.fib:
            assert len(set(grouped.prefixes)) == len(grouped.prefixes), grouped  # each prefix once
            for change in grouped.routes():
                prefix = change.prefixes[0]
                if change.nexthops is None:
                    assert self.fib.pop(prefix, None) is not None, change
                else:
                    assert self.fib.get(prefix) != change, change
                    self.fib[prefix] = change
        for o in diff.out:
            sent = self.out[o.peer]
            if isinstance(o, Announce):
                assert sent.get(o.prefix) != o.attributes, o
                sent[o.prefix] = o.attributes
            else:
                assert sent.pop(o.prefix, None) is not None, o

    def step(self, ev: tuple[object, ...]) -> None:
        rib = self.rib
        match ev:
            case ("update", str(name), list(prefixes), PathAttributes() as attrs):
                self.table[name].update(dict.fromkeys(prefixes, attrs))
                self.apply(rib.update(name, [str(p) for p in prefixes], attrs))
            case ("withdraw", str(name), list(prefixes)):
                for p in prefixes:
                    self.table[name].pop(p, None)
                self.apply(rib.withdraw(name, [str(p) for p in prefixes]))
            case ("resend", str(name), bool(singly)):
                self.resend(name, singly)
            case ("restart", str(name), bool(graceful), list(lost), list(renew), bool(singly)):
                # The peer restarts; it comes back without ``lost``, sends ``renew`` with the same next
                # hop and a longer AS path, the rest as before, and ends with End-of-RIB.
                for sub in (("down", name, graceful), ("up", name, False)):
                    self.step(sub)
                    self.check()
                table = self.table[name]
                for p in lost:
                    table.pop(p, None)
                table.update({p: replace(table[p], as_path=(*table[p].as_path, 65003))
                              for p in renew if p in table})
                self.resend(name, singly)
                self.check()
                self.step(("eor", name))
            case ("down", str(name), bool(graceful)) if name in self.out:
                del self.out[name]
                self.apply(rib.peer_down(name, self.now, graceful))
            case ("up", str(name), bool(filtered)) if name not in self.out:
                self.out[name] = {}
                self.apply(rib.peer_up(info(name, filtered)))
            case ("eor", str(name)):
                self.apply(rib.end_of_rib(name, "ipv4 unicast"))
            case ("expire", int(seconds)):
                self.now += seconds
                self.apply(rib.expire(self.now))
            case ("local", LocalInfo() as new_local):
                self.apply(rib.set_local(new_local))
            case ("filters", str(name), bool(filtered)):
                self.apply(rib.set_peer(info(name, filtered)))

    def resend(self, name: str, singly: bool) -> None:
        """The peer's whole table again, as after its restart: one UPDATE per attribute set, or
        (``singly``) per prefix."""
        by_attrs: dict[PathAttributes, list[str]] = defaultdict(list)
        for p, attrs in self.table[name].items():
            by_attrs[attrs].append(p)
        for attrs, prefixes in by_attrs.items():
            for batch in ([p] for p in prefixes) if singly else [prefixes]:
                self.apply(self.rib.update(name, batch, attrs))

    def check(self) -> None:
        assert self.fib == self.rib.fib()
        assert self.rib.installed_prefixes() == set(self.fib)
        assert self.rib.installed == len(self.fib)
        for peer_name, sent in self.out.items():
            assert sent == self.rib.adj_out(peer_name), peer_name
        for peer_name in PEERS:
            best = [self.rib.best(p) for p in self.fib]
            count = sum(1 for b in best if b is not None and b[0] is not None and b[0].name == peer_name)
            assert self.rib.status(peer_name).installed == count, peer_name


@settings(max_examples=10_000 if os.environ.get("BGPD_FUZZ") == "long" else 400, deadline=None)
@given(st.lists(first, max_size=8), st.lists(event, max_size=25), st.booleans())
def test_incremental_diffs_equal_recomputation(
    tables: list[tuple[object, ...]], events: list[tuple[object, ...]], adopt: bool,
) -> None:
    """``tables``: what the peers send first (after our own restart, when ``adopt``), so that the
    later events, restarts above all, find routes to act on."""
    rib = Rib(LOCALS[0])
    for p in PEERS.values():
        rib.set_peer(p)
    if adopt:
        rib.adopt(ADOPTED, 100.0)
    model = Model(rib)
    for peer_name in PEERS:
        model.step(("up", peer_name, False))
    for ev in [*tables, *events]:
        model.step(ev)
        model.check()


def test_fib_change_for_an_adopted_prefix_is_checked_too() -> None:
    rib = Rib(LOCALS[0])
    rib.set_peer(PEERS["e1"])
    rib.adopt({"172.16.0.0/16": ("10.0.9.9",)}, 100.0)
    assert rib.fib() == {"172.16.0.0/16": FibChange(("172.16.0.0/16",), ("10.0.9.9",))}
