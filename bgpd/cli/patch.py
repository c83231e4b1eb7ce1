"""`bgpd patch KIND NAME -p JSON`: apply an RFC 7386 JSON merge patch to one resource.

The patched resource is validated before it is written; a conflicting concurrent change is retried
(etcd compare-and-swap, or the directory lock). When ``bgpconfiguration default`` does not exist
yet, the patch creates it -- fresh clusters run ``calicoctl patch bgpconfiguration default -p
'{"spec": {"nodeToNodeMeshEnabled": false}}'``. Any other missing resource is an error.
"""

from __future__ import annotations

import argparse
import json
import sys

from bgpd.cli._store import add_store_options, run_with_writer
from bgpd.store.writer import WriteError, Writer, patch, resolve_kind


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("patch", help="merge-patch a resource", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-p", "--patch", required=True, metavar="JSON", help="the merge patch, a JSON object")
    add_store_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        merge = json.loads(args.patch)
    except ValueError as exc:
        print(f"bgpd patch: -p: not valid JSON: {exc}; got {args.patch!r}", file=sys.stderr)
        return 1
    if not isinstance(merge, dict):
        print(f"bgpd patch: -p: a merge patch must be a JSON object; got {args.patch!r}", file=sys.stderr)
        return 1

    async def work(writer: Writer) -> int:
        info = resolve_kind(args.kind)
        if info.kind == "BlockAffinity":
            raise WriteError("block affinities are managed by IPAM; apply a whole BlockAffinity instead")
        result = await patch(writer, info, args.name, merge)
        print(f"Successfully patched 1 '{result.kind}' resource ({result.action}): {result.name}")
        return 0
    return run_with_writer("patch", args, work)
