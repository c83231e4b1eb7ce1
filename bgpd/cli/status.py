"""`bgpd status [--json]`: ask the running daemon how its sessions are.

Exit status: 0 when every configured session is Established (usable as a readiness probe),
1 when one is not, 3 when the daemon cannot be asked (not running, no permission, no answer).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bgpd.control.client import DEFAULT_TIMEOUT, NotRunning, request
from bgpd.control.protocol import ProtocolError
from bgpd.control.status import StatusReport, format_report
from bgpd.settings import DEFAULT_CONFIG, DEFAULT_SOCKET, SettingsError, load

EX_UNAVAILABLE = 3  # as `systemctl status` says "not running"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("status", help="show the running daemon's sessions (exit 0: all Established)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the JSON of DESIGN.md §4")
    add_socket_options(p, DEFAULT_TIMEOUT, "how long to wait for the answer")
    p.set_defaults(func=run)


def add_socket_options(p: argparse.ArgumentParser, timeout: float, timeout_help: str) -> None:
    """The options of every command that talks to the running daemon."""
    p.add_argument("--socket", metavar="PATH",
                   help=f"control socket (default: control_socket of --config, else {DEFAULT_SOCKET})")
    p.add_argument("--config", type=Path, metavar="FILE", help=f"settings file (default {DEFAULT_CONFIG})")
    p.add_argument("--timeout", type=float, default=timeout, metavar="SECONDS",
                   help=f"{timeout_help} (default {timeout:g})")


def socket_path(args: argparse.Namespace) -> str:
    """--socket, else the settings file's control_socket, else the default (a broken file is the
    daemon's problem to report: status still asks the default socket)."""
    if args.socket:
        return str(args.socket)
    try:
        return load(args.config).control_socket
    except SettingsError:
        return DEFAULT_SOCKET


def run(args: argparse.Namespace) -> int:
    try:
        result = request(socket_path(args), "status", timeout=args.timeout)
        report = StatusReport.from_json(result)
    except (NotRunning, ProtocolError, OSError) as exc:
        print(f"bgpd status: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except (KeyError, TypeError, ValueError) as exc:
        print(f"bgpd status: unexpected answer from bgpd: {exc!r}", file=sys.stderr)
        return EX_UNAVAILABLE
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(format_report(report))
    return report.exit_status
