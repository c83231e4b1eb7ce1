"""`bgpd apply -f FILE`: create or update every resource in FILE (``-`` reads standard input).

Every document is validated first; if any has a problem, every problem is printed and nothing is
written. Works on both stores (``--resources DIR``, ``--store URL``), like ``calicoctl apply``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from bgpd.cli._store import add_store_options, run_with_writer
from bgpd.model.errors import ConfigError
from bgpd.model.loader import SourceDoc, parse_text
from bgpd.store.writer import Invalid, Writer, WriteResult, validate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_file_command(subparsers, "apply", "create or update the resources in a file", __doc__)


def add_file_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                     help_text: str, doc: str | None) -> None:
    p = subparsers.add_parser(name, help=help_text, description=doc,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-f", "--filename", required=True, metavar="FILE",
                   help="YAML or JSON file of Calico v3 resources ('-' for standard input)")
    add_store_options(p)
    p.set_defaults(func=lambda args: run_file(name, args))


def read_documents(filename: str) -> tuple[list[SourceDoc], list[ConfigError]]:
    """Every document of the file, and every problem any of them has (syntax and validation)."""
    if filename == "-":
        docs, errors = parse_text(sys.stdin.read(), "<stdin>")
    else:
        with open(filename, encoding="utf-8") as handle:
            docs, errors = parse_text(handle.read(), filename)
    for doc in docs:
        try:
            validate(doc.body, doc.source, doc.doc)
        except Invalid as exc:
            errors.extend(exc.errors)
    return docs, errors


def run_file(command: str, args: argparse.Namespace) -> int:
    try:
        docs, errors = read_documents(args.filename)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"bgpd {command}: {args.filename}: cannot read: {exc}", file=sys.stderr)
        return 1
    if errors:
        for error in errors:
            print(f"bgpd {command}: {error}", file=sys.stderr)
        print(f"bgpd {command}: nothing written ({len(errors)} problem(s))", file=sys.stderr)
        return 1
    if not docs:
        print(f"bgpd {command}: {args.filename}: no resources found", file=sys.stderr)
        return 1

    async def work(writer: Writer) -> int:
        results: list[WriteResult] = []
        for doc in docs:
            write = writer.create if command == "create" else writer.apply
            result = await write(doc.body, doc.source, doc.doc)
            print(f"{result.kind}/{result.name} {result.action}")
            results.append(result)
        counts = Counter(r.kind for r in results)
        verb = "created" if command == "create" else "applied"
        kinds = ", ".join(f"'{kind}'" for kind in counts)
        print(f"Successfully {verb} {len(results)} {kinds} resource(s)")
        return 0
    return run_with_writer(command, args, work)


def run(args: argparse.Namespace) -> int:
    return run_file("apply", args)
