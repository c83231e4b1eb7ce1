"""Benchmark (not a test): load and validate a synthetic cluster of 5,000 Nodes and 500 BGPPeers.

Run: ``.venv/bin/python tests/bench_core_load.py [--nodes 5000] [--peers 500] [--repeat 3]``.
Target (issue 2): loading and validating these resources takes < 2 s on the 2-core lab machine.
Wall time suffers when other work shares the two cores; the CPU time shows the cost itself.
It times the YAML directory store end to end (read files, parse YAML, validate, build the Snapshot)
and, separately, validation alone on already-decoded documents.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from bgpd.model.loader import SourceDoc, build_snapshot
from bgpd.store.yamldir import load

RACKS = 50


def node(i: int) -> dict[str, Any]:
    labels = {"rack": f"rack-{i % RACKS}", "zone": f"zone-{i % 3}", "kubernetes.io/hostname": f"node-{i}"}
    if i % 100 == 0:
        labels["route-reflector"] = "true"
    bgp: dict[str, Any] = {"ipv4Address": f"10.{i // 250}.{i % 250}.1/16", "ipv6Address": f"fd00::{i:x}/64"}
    if i % 100 == 0:
        bgp["routeReflectorClusterID"] = "224.0.0.1"
    if i % 7 == 0:
        bgp["asNumber"] = 64600 + i % 50
    return {"apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": f"node-{i}", "labels": labels}, "spec": {"bgp": bgp}}


def peer(i: int, rng: random.Random) -> dict[str, Any]:
    """A mix of the shapes real clusters use: ToR per rack, global, RR selectors, per-node."""
    shape = i % 4
    spec: dict[str, Any]
    if shape == 0:
        spec = {"nodeSelector": f"rack == 'rack-{i % RACKS}'", "peerIP": f"172.16.{i % RACKS}.254",
                "asNumber": 65000 + i % RACKS}
    elif shape == 1:
        spec = {"nodeSelector": "!has(route-reflector)", "peerSelector": "has(route-reflector)"}
    elif shape == 2:
        spec = {"node": f"node-{rng.randrange(5000)}", "peerIP": f"[fd00:1::{i:x}]:1179", "asNumber": "1.10",
                "maxRestartTime": "2m", "ttlSecurity": 1}
    else:
        spec = {"nodeSelector": f"zone in {{'zone-{i % 3}', 'zone-9'}} && rack != 'rack-{i % RACKS}'",
                "peerIP": f"192.0.2.{i % 250}", "asNumber": 64512, "keepOriginalNextHop": True}
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": f"peer-{i}"},
            "spec": spec}


def cluster(nodes: int, peers: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [node(i) for i in range(nodes)] + [peer(i, rng) for i in range(peers)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--peers", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bodies = cluster(args.nodes, args.peers)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "nodes.yaml").write_text(yaml.safe_dump_all(bodies[:args.nodes], sort_keys=False))
        (root / "peers.yaml").write_text(yaml.safe_dump_all(bodies[args.nodes:], sort_keys=False))
        store_times, store_cpu, validate_times = [], [], []
        for _ in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            snapshot = load(root)
            store_times.append(time.perf_counter() - start)
            store_cpu.append(time.process_time() - cpu)
            docs = [SourceDoc("mem", n + 1, body) for n, body in enumerate(bodies)]
            start = time.perf_counter()
            build_snapshot(docs)
            validate_times.append(time.perf_counter() - start)
    assert not snapshot.errors, snapshot.errors[:3]
    assert (len(snapshot.nodes), len(snapshot.bgp_peers)) == (args.nodes, args.peers)
    best = min(store_times)
    print(f"{args.nodes} Nodes + {args.peers} BGPPeers: directory load (read+YAML+validate) "
          f"best {best:.3f} s of {args.repeat} (CPU {min(store_cpu):.3f} s); "
          f"validation alone best {min(validate_times):.3f} s; "
          f"target < 2 s: {'PASS' if best < 2 else 'FAIL'}")
    return 0 if best < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
