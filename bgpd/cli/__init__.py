"""The `bgpd` command line. Each sub-command lives in its own module with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bgpd import __version__

# Sub-command modules, in the order `bgpd --help` lists them.
COMMANDS = ("check", "peers", "run", "status", "drain", "apply", "create", "get", "patch", "label", "delete")

EX_CONFIG = 78  # sysexits EX_CONFIG: systemd's RestartPreventExitStatus stops a restart loop on it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bgpd",
        description="Per-node BGP speaker for Calico v3 resources (ExaBGP sessions, Linux kernel routes).",
    )
    parser.add_argument("--version", action="version", version=f"bgpd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"bgpd.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
