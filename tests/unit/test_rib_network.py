"""Several RIBs wired together as the issue's route-reflector lab: 2 RRs in one cluster, 4 clients,
no mesh. Messages are passed between the RIBs until nothing is left to send."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from ipaddress import ip_network

from bgpd.desired import Export, ExportPolicy
from bgpd.rib import Announce, FibChange, LocalInfo, Outbound, PeerInfo, Rib, RibDiff

AS = 64512
CLUSTER = "244.0.0.1"
RRS = {"rr1": "10.0.0.1", "rr2": "10.0.0.2"}
CLIENTS = {f"c{i}": f"10.0.0.{10 + i}" for i in range(1, 5)}
ADDRESS = RRS | CLIENTS


def block(name: str) -> str:
    return f"10.244.{list(ADDRESS).index(name)}.0/26"


@dataclass
class Node:
    name: str
    rib: Rib
    fib: dict[str, FibChange] = field(default_factory=dict)


class Lab:
    def __init__(self) -> None:
        self.nodes = {name: self._node(name) for name in ADDRESS}
        self.queue: deque[tuple[str, Outbound]] = deque()
        self.changes: list[tuple[str, FibChange]] = []
        for rr in RRS:
            for other in ADDRESS:
                if other != rr and not (other in RRS and other < rr):
                    self.connect(rr, other)

    @staticmethod
    def _node(name: str) -> Node:
        own = ip_network(block(name))
        local = LocalInfo(
            as_number=AS, router_id=ADDRESS[name], cluster_id=CLUSTER if name in RRS else None,
            exports=(Export(own),), blackholes=frozenset({str(own)}),
            export_policy=ExportPolicy(pools=(ip_network("10.244.0.0/16"),), blocks=(own,)),
        )
        rib = Rib(local)
        return Node(name, rib, rib.fib())  # the first full apply; diffs follow

    def info(self, me: str, other: str) -> PeerInfo:
        return PeerInfo(name=other, peer_ip=ADDRESS[other], remote_as=AS, local_as=AS, ibgp=True,
                        router_id=ADDRESS[other], rr_client=me in RRS and other in CLIENTS,
                        gr_restart_time=120.0, families=("ipv4 unicast",), local_address=ADDRESS[me])

    def apply(self, node: str, diff: RibDiff) -> None:
        fib = self.nodes[node].fib
        self.changes.extend((node, c) for c in diff.fib)
        for grouped in diff.fib:
            for change in grouped.routes():
                if change.nexthops is None:
                    del fib[change.prefixes[0]]
                else:
                    fib[change.prefixes[0]] = change
        self.queue.extend((node, o) for o in diff.out)

    def connect(self, a: str, b: str) -> None:
        self.apply(a, self.nodes[a].rib.peer_up(self.info(a, b)))
        self.apply(b, self.nodes[b].rib.peer_up(self.info(b, a)))

    def run(self) -> None:
        for _ in range(10_000):
            if not self.queue:
                return
            sender, message = self.queue.popleft()
            rib = self.nodes[message.peer].rib
            if isinstance(message, Announce):
                self.apply(message.peer, rib.update(sender, [message.prefix], message.attributes))
            else:
                self.apply(message.peer, rib.withdraw(sender, [message.prefix]))
        raise AssertionError("route exchange does not converge")

    def kill(self, name: str) -> None:
        for other, node in self.nodes.items():
            if other != name:
                self.apply(other, node.rib.peer_down(name, 0.0, graceful=False))
        self.queue = deque((s, o) for s, o in self.queue if name not in (s, o.peer))


def routes(lab: Lab, name: str) -> dict[str, tuple[str, ...] | None]:
    return {p: c.nexthops for p, c in lab.nodes[name].fib.items()}


def expected(name: str) -> dict[str, tuple[str, ...] | None]:
    # Every other node's block via that node itself (the reflectors keep the next hop); our own
    # block is a blackhole.
    result: dict[str, tuple[str, ...] | None] = {block(o): (ADDRESS[o],) for o in ADDRESS if o != name}
    result[block(name)] = ()
    return result


def test_every_node_learns_every_block_through_the_reflectors() -> None:
    lab = Lab()
    lab.run()
    for name in ADDRESS:
        assert routes(lab, name) == expected(name), name


def test_clients_keep_every_route_when_one_reflector_dies() -> None:
    lab = Lab()
    lab.run()
    lab.changes.clear()
    lab.kill("rr1")
    lab.run()
    # Only the dead node's own block goes; nothing else in any kernel changes, not even briefly.
    assert sorted(lab.changes) == [(n, FibChange((block("rr1"),), None)) for n in sorted([*CLIENTS, "rr2"])]
    for name in [*CLIENTS, "rr2"]:
        want = {p: nh for p, nh in expected(name).items() if p != block("rr1")}
        assert routes(lab, name) == want, name
    # The surviving reflector's view of c1's block came from c1 itself, not via the dead one.
    best = lab.nodes["c2"].rib.best(block("c1"))
    assert best is not None and best[0] is not None and best[0].name == "rr2"
