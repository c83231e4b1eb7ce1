"""`bgpd drain`: take this node out of routing on purpose.

The running daemon withdraws every route it announced from every peer (explicit UPDATEs, so even
graceful-restart peers drop them at once), closes its sessions, removes its own kernel routes and
exits with status 0 (systemd's Restart=on-failure leaves it stopped). A plain stop (SIGTERM,
`systemctl restart`) is the opposite: peers keep our routes as stale until we come back.

Exit status: 0 when the daemon drained, 3 when it cannot be asked.
"""

from __future__ import annotations

import argparse
import sys

from bgpd.cli.status import EX_UNAVAILABLE, add_socket_options, socket_path
from bgpd.control.client import NotRunning, request
from bgpd.control.protocol import ProtocolError

DRAIN_TIMEOUT = 60.0  # withdraws are flushed and every session closed before the answer


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("drain", help="withdraw every route from every peer, then stop the daemon",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_socket_options(p, DRAIN_TIMEOUT, "how long to wait for the daemon to finish")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = request(socket_path(args), "drain", timeout=args.timeout)
    except (NotRunning, ProtocolError, OSError) as exc:
        print(f"bgpd drain: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    print(f"bgpd on node {result.get('node')} withdrew its routes from {result.get('sessions')} "
          f"established session(s), removed {result.get('kernelRoutesRemoved')} kernel route(s) "
          "and is stopping.")
    return 0
