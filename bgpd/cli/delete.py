"""`bgpd delete KIND NAME`: delete one resource (KIND as calicoctl spells it: bgppeer, node, ...)."""

from __future__ import annotations

import argparse

from bgpd.cli._store import add_store_options, run_with_writer
from bgpd.store.writer import Writer, resolve_kind


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("delete", help="delete a resource", description=__doc__)
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", metavar="NAME")
    add_store_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def work(writer: Writer) -> int:
        info = resolve_kind(args.kind)
        result = await writer.delete(info, args.name)
        print(f"Successfully deleted 1 '{result.kind}' resource(s): {result.name}")
        return 0
    return run_with_writer("delete", args, work)
