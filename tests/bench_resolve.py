"""Benchmark (not a test): load a synthetic 5,000-node cluster with 500 BGPPeers and resolve nodes.

    .venv/bin/python tests/bench_resolve.py [--nodes 5000] [--peers 500] [--runs 20]

Prints the time to parse and validate the resources, and the median time to resolve one ordinary
node and one route reflector (which gets a reverse peering to every node). Mesh is off, as in any
cluster of this size; the BGPPeers mix rack ToR peers (nodeSelector), per-node peers (node),
global peers, set/negation selectors, and route-reflector peerSelector peers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from bgpd.model.loader import build_snapshot, parse_text
from bgpd.resolve import resolve

RACKS = 100
ZONES = 5
REFLECTORS = 10


def _node(i: int) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": f"node-{i}", "rack": f"rack-{i % RACKS}", "zone": f"zone-{i % ZONES}"}
    bgp: dict[str, Any] = {"ipv4Address": f"10.{i // 250}.{i % 250}.10/16",
                           "ipv6Address": f"fd00::{i:x}/64"}
    if i < REFLECTORS:
        labels["route-reflector"] = "true"
        bgp["routeReflectorClusterID"] = "244.0.0.1"
    return {"apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": f"node-{i}", "labels": labels}, "spec": {"bgp": bgp}}


def _peer(j: int, nodes: int) -> dict[str, Any]:
    kind = j % 5
    spec: dict[str, Any]
    if kind == 0:    # a ToR per rack
        spec = {"nodeSelector": f"rack == 'rack-{j % RACKS}'", "peerIP": f"172.16.{j % 250}.{j // 250 + 1}",
                "asNumber": 65000 + j % RACKS}
    elif kind == 1:  # one node
        spec = {"node": f"node-{(j * 37) % nodes}", "peerIP": f"172.17.{j % 250}.{j // 250 + 1}",
                "asNumber": 65100}
    elif kind == 2:  # set and negation selectors
        racks = ", ".join(f"'rack-{(j + k) % RACKS}'" for k in range(5))
        spec = {"nodeSelector": f"rack in {{{racks}}} && zone != 'zone-{j % ZONES}'",
                "peerIP": f"172.18.{j % 250}.{j // 250 + 1}", "asNumber": 65200}
    elif kind == 3:  # route reflectors of a zone
        spec = {"nodeSelector": f"zone == 'zone-{j % ZONES}' && !has(route-reflector)",
                "peerSelector": "route-reflector == 'true'"}
    else:            # global external peers
        spec = {"peerIP": f"172.19.{j % 250}.{j // 250 + 1}", "asNumber": 65300, "ttlSecurity": 1}
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": f"peer-{j:04d}"},
            "spec": spec}


def _time(fn: Callable[[], object], runs: int) -> tuple[float, float, float]:
    """Median wall time, minimum wall time and median CPU time of this process, in seconds.

    On a busy machine the wall times include waiting for a core; the CPU time does not."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--peers", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    docs = [_node(i) for i in range(args.nodes)] + [_peer(j, args.nodes) for j in range(args.peers)]
    docs.append({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                 "metadata": {"name": "default"}, "spec": {"nodeToNodeMeshEnabled": False}})
    text = "\n---\n".join(json.dumps(d) for d in docs)

    start = time.perf_counter()
    parsed, errors = parse_text(text, "bench.yaml")
    snapshot = build_snapshot(parsed)
    load_s = time.perf_counter() - start
    assert not errors and not snapshot.errors, (errors, snapshot.errors[:3])

    ordinary, reflector = f"node-{args.nodes // 2 + 3}", "node-0"
    sessions = {name: len(resolve(snapshot, name).sessions) for name in (ordinary, reflector)}
    print(f"cluster: {args.nodes} nodes, {args.peers} BGPPeers; load+validate {load_s:.2f} s")
    for name in (ordinary, reflector):
        median, best, cpu = _time(lambda n=name: resolve(snapshot, n), args.runs)  # type: ignore[misc]
        print(f"resolve {name}: {sessions[name]} sessions; over {args.runs} runs: "
              f"median {median * 1000:.1f} ms, min {best * 1000:.1f} ms, median CPU {cpu * 1000:.1f} ms")


if __name__ == "__main__":
    main()
