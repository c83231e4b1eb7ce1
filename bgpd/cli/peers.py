"""`bgpd peers --node NAME`: the sessions a node must run, computed from the resources offline.

``--json`` prints DesiredNode.to_json (DESIGN.md §4); the default is a table with the resource
that made each session; ``--why IP`` explains why a session to IP exists or is absent.
Passwords never print: only whether one is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import TextIO

from bgpd.desired import DesiredNode, DesiredSession
from bgpd.model.snapshot import Snapshot
from bgpd.resolve import ROUTER_ID_ENV, resolve
from bgpd.resolve.explain import why

DEFAULT_RESOURCES = "/etc/bgpd/resources.d"
EX_CONFIG = 78


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("peers", help="show the BGP sessions a node must run (no daemon needed)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", required=True, help="the node's name (Node metadata.name)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--resources", metavar="DIR",
                        help=f"directory of Calico v3 YAML/JSON resources (default {DEFAULT_RESOURCES})")
    source.add_argument("--store", metavar="URL",
                        help="file:///path/to/dir or etcd://host:2379[,host:2379] (ETCD_* TLS options apply)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")
    out.add_argument("--why", metavar="IP", help="explain why a session to IP exists or is absent")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace) -> Snapshot:
    """One snapshot from ``--resources`` or ``--store``; no daemon and no watch needed."""
    # Imported on use: `bgpd --help` and the other sub-commands need not load the stores.
    from bgpd.store import yamldir  # noqa: PLC0415
    from bgpd.store.url import FileStoreConfig, parse_store_url  # noqa: PLC0415

    if args.store is None:
        snapshot: Snapshot = yamldir.load(args.resources or DEFAULT_RESOURCES)
        return snapshot
    config = parse_store_url(args.store, os.environ)
    if isinstance(config, FileStoreConfig):
        snapshot = yamldir.load(config.path)
        return snapshot
    from bgpd.store import etcd  # noqa: PLC0415

    snapshot = asyncio.run(etcd.load(config))
    return snapshot


def _session_row(s: DesiredSession) -> list[str]:
    flavour = "iBGP" if s.ibgp else "eBGP"
    rr = " rr-client" if s.rr_client else ""
    return [s.name, s.peer_ip, str(s.port), str(s.remote_as), str(s.local_as), f"{s.kind} {flavour}{rr}",
            "yes" if s.passive else "no", ", ".join(s.origin)]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_table(desired: DesiredNode) -> str:
    lines = [f"node {desired.node}  AS {desired.as_number}  router id {desired.router_id or '-'}  "
             f"listen port {desired.listen_port or 179}", ""]
    header = ["NAME", "PEER", "PORT", "AS", "LOCAL AS", "TYPE", "PASSIVE", "ORIGIN"]
    if desired.sessions:
        lines += _table([header, *(_session_row(s) for s in desired.sessions)])
    else:
        lines.append("no sessions")
    lines += ["", "exports: " + (", ".join(str(e.prefix) for e in desired.exports) or "none")]
    if desired.static_routes:
        lines.append("static routes: " + ", ".join(f"{r.dst} via {r.via}" for r in desired.static_routes))
    lines += [f"error: {e}" for e in desired.errors]
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        snapshot = _load(args)
    except Exception as exc:  # a bad URL, an unreachable etcd: say which and stop
        print(f"bgpd peers: cannot load resources from {args.store or args.resources or DEFAULT_RESOURCES}: "
              f"{exc}", file=err)
        return EX_CONFIG
    for problem in snapshot.errors:
        print(f"warning: {problem}", file=err)
    if args.why:
        for reason in why(snapshot, args.node, args.why):
            print(reason, file=out)
        return 0
    desired = resolve(snapshot, args.node, {k: v for k, v in os.environ.items() if k == ROUTER_ID_ENV})
    if args.json:
        print(json.dumps(desired.to_json(), indent=1), file=out)
    else:
        print(render_table(desired), file=out)
    return 0 if args.node in snapshot.nodes else 1
