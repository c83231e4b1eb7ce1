"""`bgpd check [--resources PATH]`: validate Calico v3 resources without a daemon.

Prints every problem, one per line (``<file>:<doc> <Kind>/<name> <field>: <problem>; got <value>``),
and exits 78 (EX_CONFIG); otherwise prints one summary line with the count of each kind and exits 0.
PATH is a directory (read recursively) or a single YAML/JSON file.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from bgpd.cli import EX_CONFIG
from bgpd.model.snapshot import Snapshot
from bgpd.store.yamldir import DEFAULT_DIR, load

_KINDS = (("Node", "nodes"), ("BGPConfiguration", "bgp_configurations"), ("BGPPeer", "bgp_peers"),
          ("BGPFilter", "bgp_filters"), ("IPPool", "ip_pools"), ("BlockAffinity", "block_affinities"),
          ("CalicoNodeStatus", "node_statuses"), ("Secret", "secrets"))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("check", help="validate resources: list every error (exit 78) or summarise",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resources", default=DEFAULT_DIR, metavar="PATH",
                   help=f"directory or file of Calico v3 YAML/JSON resources (default {DEFAULT_DIR})")
    p.add_argument("--secret-namespace", default="kube-system", metavar="NS",
                   help="namespace whose Secrets hold BGP passwords (default kube-system)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    snapshot = load(args.resources, secret_namespace=args.secret_namespace)
    if snapshot.errors:
        for error in snapshot.errors:
            print(error, file=out)
        print(f"{len(snapshot.errors)} error(s) in {args.resources}", file=err)
        return EX_CONFIG
    print(summary(snapshot, args.resources), file=out)
    for name in sorted(snapshot.bgp_configurations):
        if name != "default" and not name.startswith("node."):
            print(f"note: BGPConfiguration/{name} is ignored: only 'default' and 'node.<name>' apply",
                  file=err)
    return 0


def summary(snapshot: Snapshot, path: str) -> str:
    counts = [(kind, len(getattr(snapshot, attr))) for kind, attr in _KINDS]
    listed = ", ".join(f"{count} {kind}" for kind, count in counts if count) or "no resources"
    return f"OK {path}: {listed} (revision {snapshot.revision[:12]})"
