"""`bgpd create -f FILE`: create every resource in FILE; fails on one that already exists.

Every document is validated first; if any has a problem, nothing is written. Resources before the
first one that exists are created (as ``calicoctl create`` does).
"""

from __future__ import annotations

import argparse

from bgpd.cli.apply import add_file_command


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_file_command(subparsers, "create", "create the resources in a file (fail if one exists)", __doc__)
