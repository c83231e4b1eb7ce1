"""`bgpd get KIND [NAME] [-o yaml|json|wide]`: show resources as calicoctl does.

KIND takes calicoctl's spellings (bgppeer(s), bgpconfig(uration)(s), node(s), ippool(s),
bgpfilter(s), blockaffinit(y|ies), caliconodestatus(es)). The default output is a table; ``wide``
adds columns; ``yaml``/``json`` print the resource (a ``List`` when several). Secret values never
print.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import yaml

from bgpd.cli._store import add_store_options, run_with_writer
from bgpd.store.writer import Body, KindInfo, Writer, resolve_kind

Column = tuple[str, Callable[[Body], Any], bool]  # header, value, shown only with -o wide


def _at(*path: str) -> Callable[[Body], Any]:
    def get(body: Body) -> Any:
        value: Any = body
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value
    return get


_NAME: Column = ("NAME", _at("metadata", "name"), False)
COLUMNS: dict[str, list[Column]] = {
    "BGPPeer": [_NAME, ("PEERIP", _at("spec", "peerIP"), False), ("NODE", _at("spec", "node"), False),
                ("ASN", _at("spec", "asNumber"), False),
                ("SELECTOR", _at("spec", "peerSelector"), True),
                ("NODESELECTOR", _at("spec", "nodeSelector"), True)],
    "Node": [_NAME, ("ASN", _at("spec", "bgp", "asNumber"), True),
             ("IPV4", _at("spec", "bgp", "ipv4Address"), True),
             ("IPV6", _at("spec", "bgp", "ipv6Address"), True)],
    "IPPool": [_NAME, ("CIDR", _at("spec", "cidr"), False), ("SELECTOR", _at("spec", "nodeSelector"), False),
               ("NAT", _at("spec", "natOutgoing"), True), ("IPIPMODE", _at("spec", "ipipMode"), True),
               ("VXLANMODE", _at("spec", "vxlanMode"), True), ("DISABLED", _at("spec", "disabled"), True),
               ("DISABLEBGPEXPORT", _at("spec", "disableBGPExport"), True)],
    "BGPConfiguration": [_NAME, ("LOGSEVERITY", _at("spec", "logSeverityScreen"), False),
                         ("MESHENABLED", _at("spec", "nodeToNodeMeshEnabled"), False),
                         ("ASNUMBER", _at("spec", "asNumber"), False)],
    "BlockAffinity": [_NAME, ("NODE", _at("spec", "node"), False), ("CIDR", _at("spec", "cidr"), False),
                      ("STATE", _at("spec", "state"), False), ("TYPE", _at("spec", "type"), True)],
    "CalicoNodeStatus": [_NAME, ("NODE", _at("spec", "node"), False),
                         ("CLASSES", _at("spec", "classes"), True),
                         ("PERIOD", _at("spec", "updatePeriodSeconds"), True)],
    "Secret": [_NAME, ("NAMESPACE", _at("metadata", "namespace"), False)],
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("get", help="show resources", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("-o", "--output", choices=("ps", "wide", "yaml", "json"), default="ps",
                   help="table (default), wide table, yaml or json")
    add_store_options(p)
    p.set_defaults(func=run)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def render_table(info: KindInfo, bodies: list[Body], wide: bool) -> str:
    columns = [c for c in COLUMNS.get(info.kind, [_NAME]) if wide or not c[2]]
    rows = [[c[0] for c in columns], *([_cell(c[1](b)) for c in columns] for b in bodies)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def redact(body: Body) -> Body:
    """Secrets show their keys, never their values."""
    if body.get("kind") != "Secret":
        return body
    return {**body, **{f: dict.fromkeys(body[f], "<redacted>") for f in ("data", "stringData")
                       if isinstance(body.get(f), dict)}}


def render(info: KindInfo, bodies: list[Body], output: str, single: bool) -> str:
    bodies = [redact(b) for b in bodies]
    if output in ("ps", "wide"):
        return render_table(info, bodies, output == "wide")
    value: Any = bodies[0] if single else {"apiVersion": "projectcalico.org/v3", "kind": f"{info.kind}List",
                                           "items": bodies}
    if output == "json":
        return json.dumps(value, indent=2)
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip("\n")


def run(args: argparse.Namespace) -> int:
    async def work(writer: Writer) -> int:
        info = resolve_kind(args.kind)
        bodies = await writer.get(info, args.name)
        print(render(info, bodies, args.output, single=args.name is not None))
        return 0
    return run_with_writer("get", args, work)
