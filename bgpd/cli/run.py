"""`bgpd run`: the daemon, in the foreground (systemd runs it so).

Settings come from --config (default /etc/bgpd/bgpd.yaml when it exists), flags override them.
A configuration error exits with status 78 after printing every problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bgpd.settings import Settings, SettingsError, load, resources_url

EX_CONFIG = 78


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("run", help="run the daemon in the foreground",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, metavar="FILE", help="settings file (default /etc/bgpd/bgpd.yaml)")
    p.add_argument("--node", metavar="NAME", help="this node's name (default: the host name)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--resources", metavar="DIR", help="directory of Calico resources (= --store file://DIR)")
    where.add_argument("--store", metavar="URL", help="file:///DIR or etcd://HOST:PORT[,HOST:PORT]")
    p.add_argument("--socket", metavar="PATH", help="control socket path")
    p.add_argument("--table", type=int, metavar="N", help="kernel routing table")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Settings:
    store = resources_url(args.resources) if args.resources else args.store
    return load(args.config, {"node": args.node, "store": store, "control_socket": args.socket,
                              "kernel_table": args.table})


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        _check_store(settings)
    except SettingsError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    from bgpd import app  # noqa: PLC0415  (the daemon's imports are heavy; `bgpd --help` stays fast)
    from bgpd.logging import configure  # noqa: PLC0415

    configure(settings.log_level, settings.log_format)
    return app.run(settings)


def _check_store(settings: Settings) -> None:
    from bgpd.adapters import store_env  # noqa: PLC0415
    from bgpd.store.url import StoreURLError, parse_store_url  # noqa: PLC0415

    try:
        parse_store_url(settings.store, store_env(settings))
    except StoreURLError as exc:
        raise SettingsError([f"store: {exc}"]) from None
