"""`bgpd label KIND NAME key=value ... key- ... [--overwrite]`, like ``kubectl label node``.

``key=value`` sets a label, ``key-`` removes one. Changing a label that already has another value
needs ``--overwrite``. The change is validated, then written atomically (no concurrent update lost).
"""

from __future__ import annotations

import argparse

from bgpd.cli._store import add_store_options, run_with_writer
from bgpd.store.writer import Writer, label, resolve_kind


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("label", help="set or remove labels (like kubectl label node)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", metavar="KIND", help="usually node")
    p.add_argument("name", metavar="NAME")
    p.add_argument("labels", metavar="LABEL", nargs="+", help="key=value to set, key- to remove")
    p.add_argument("--overwrite", action="store_true", help="allow changing a label's existing value")
    add_store_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    async def work(writer: Writer) -> int:
        info = resolve_kind(args.kind)
        result = await label(writer, info, args.name, args.labels, args.overwrite)
        print(f"{info.kind.lower()}/{result.name} labeled")
        return 0
    return run_with_writer("label", args, work)
