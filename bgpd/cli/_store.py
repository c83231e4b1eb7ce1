"""Store options every command shares: ``--resources DIR`` | ``--store URL`` (default: the settings'
``store``), plus ``--config FILE`` for the settings. The etcd TLS files of the settings take
precedence over ``ETCD_CA_CERT_FILE``/``ETCD_CERT_FILE``/``ETCD_KEY_FILE``, as for the daemon
(`bgpd.adapters.store_env`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bgpd.model.snapshot import Snapshot
from bgpd.settings import DEFAULT_CONFIG, SettingsError, read_file, resources_url
from bgpd.store.url import FileStoreConfig, StoreConfig, StoreURLError, parse_store_url
from bgpd.store.writer import Invalid, WriteError, Writer, open_writer

DEFAULT_STORE = "file:///etc/bgpd/resources.d"
_SETTINGS_ENV = {"etcd_ca_cert_file": "ETCD_CA_CERT_FILE", "etcd_cert_file": "ETCD_CERT_FILE",
                 "etcd_key_file": "ETCD_KEY_FILE"}


class StoreOptionError(Exception):
    """Options that name no usable store; the message says which option and why."""


def add_store_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--resources", metavar="DIR", help="directory of Calico v3 YAML/JSON resources")
    where.add_argument("--store", metavar="URL",
                       help="file:///DIR or etcd://HOST:PORT[,HOST:PORT] (TLS/auth: calicoctl's ETCD_* "
                            "environment variables)")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help=f"settings file for the default store (default {DEFAULT_CONFIG} when present)")


def store_config(args: argparse.Namespace, env: dict[str, str] | None = None) -> StoreConfig:
    """The store the options name: ``--resources``, else ``--store``, else the settings' ``store``."""
    env = dict(os.environ if env is None else env)
    config_path: Path | None = getattr(args, "config", None)
    if config_path is not None and not config_path.exists():
        raise StoreOptionError(f"{config_path}: no such file")
    try:
        settings = read_file(config_path or DEFAULT_CONFIG)
    except SettingsError as exc:
        raise StoreOptionError(str(exc)) from exc
    for key, variable in _SETTINGS_ENV.items():
        if settings.get(key):
            env[variable] = str(settings[key])
    if getattr(args, "resources", None):
        url = resources_url(args.resources)
    else:
        url = getattr(args, "store", None) or settings.get("store") or DEFAULT_STORE
    try:
        return parse_store_url(str(url), env)
    except StoreURLError as exc:
        raise StoreOptionError(str(exc)) from exc


def load_snapshot(config: StoreConfig) -> Snapshot:
    """One snapshot of the store, without a daemon (``bgpd peers``, ``bgpd check``)."""
    # Imported on use: each store loads only its own dependencies.
    if isinstance(config, FileStoreConfig):
        from bgpd.store.yamldir import load  # noqa: PLC0415

        return load(config.path)
    from bgpd.store.etcd import load as etcd_load  # noqa: PLC0415

    return asyncio.run(etcd_load(config))


def run_with_writer(command: str, args: argparse.Namespace, work: Callable[[Writer], Awaitable[int]]) -> int:
    """Open the store's writer, run ``work``, and turn every failure into a clear message, exit 1."""
    try:
        writer = open_writer(store_config(args))
    except StoreOptionError as exc:
        print(f"bgpd {command}: {exc}", file=sys.stderr)
        return 1

    async def go() -> int:
        try:
            return await work(writer)
        finally:
            await writer.close()
    try:
        return asyncio.run(go())
    except Invalid as exc:
        for error in exc.errors:
            print(f"bgpd {command}: {error}", file=sys.stderr)
        return 1
    except WriteError as exc:
        print(f"bgpd {command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"bgpd {command}: {writer.source}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the etcd client's errors (unreachable, auth): say so, no traceback
        if type(exc).__module__.startswith(("aetcd", "grpc", "bgpd.store.etcd")):
            from bgpd.store.etcd import describe  # noqa: PLC0415

            print(f"bgpd {command}: {writer.source}: {describe(exc)}", file=sys.stderr)
            return 1
        raise
