"""The etcd v3 store: Calico's etcdv3 layout, listed once, then watched (aetcd, an asyncio client).

`EtcdStore.watch()` has yamldir's shape: an async iterator of Snapshots, ``revision`` being etcd's
revision as a string. It lists the prefixes at one revision, yields, then watches from that
revision + 1 and yields after each batch of events. A compacted watch re-lists. A lost connection
keeps the last snapshot's resources: the store turns ``stale`` (with ``stale_reason``) and yields
that same snapshot once with the reason as its only error -- the reconciler then changes nothing
and shows the store stale -- and reconnects with exponential backoff, rotating endpoints, resuming
the watch where it stopped. Once connected again it yields the current snapshot without errors.
A bad document follows yamldir's last-good rule (`yamldir.keep_last_good`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# gRPC's C core would print TLS and connection errors to stderr itself; bgpd reports each failure
# once, in its own words (status, log, command error). Read when gRPC initialises.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import aetcd
import aetcd.rpc
import aetcd.utils
import aetcd.watcher
import grpc
import grpc.aio
import structlog

from bgpd.model.errors import ConfigError
from bgpd.model.loader import SourceDoc, build_snapshot
from bgpd.model.snapshot import DEFAULT_SECRET_NAMESPACE, Snapshot
from bgpd.store import etcd_layout as layout
from bgpd.store.url import EtcdEndpoint, EtcdStoreConfig
from bgpd.store.yamldir import keep_last_good

log = structlog.get_logger(__name__)

# A dead peer behind a silent network must not leave the watch hanging: gRPC keepalive probes the
# connection (etcd permits pings every 5 s or more while a stream is open).
_CHANNEL_OPTIONS = {"grpc.keepalive_time_ms": 10_000, "grpc.keepalive_timeout_ms": 5_000}
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aetcd.ClientError, grpc.aio.AioRpcError, OSError, TimeoutError, ConnectionError)


class EtcdConfigError(Exception):
    """A TLS file that cannot be read: a configuration error, not an outage."""


class _Client(aetcd.Client):  # type: ignore[misc]
    """aetcd 1.0 opens only plaintext channels (martyanov/aetcd issue #37): with TLS credentials
    this opens a secure channel and sets up the same stubs and watcher as `aetcd.Client.connect`."""

    def __init__(self, credentials: grpc.ChannelCredentials | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._credentials is None or self._connected.is_set():
            await super().connect()
            return
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.channel = grpc.aio.secure_channel(f"{host}:{self._port}", self._credentials,
                                               options=list(self._options.items()))
        if self._username is not None:
            self.auth_stub = aetcd.rpc.AuthStub(self.channel)
            request = aetcd.rpc.AuthenticateRequest(name=self._username, password=self._password)
            response = await self.auth_stub.Authenticate(request, timeout=self._timeout)
            self.metadata = (("token", response.token),)
        self.kvstub = aetcd.rpc.KVStub(self.channel)
        self.clusterstub = aetcd.rpc.ClusterStub(self.channel)
        self.leasestub = aetcd.rpc.LeaseStub(self.channel)
        self.maintenancestub = aetcd.rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd.watcher.Watcher(aetcd.rpc.WatchStub(self.channel), timeout=self._timeout,
                                              metadata=self.metadata)
        self._connected.set()


def _credentials(config: EtcdStoreConfig) -> grpc.ChannelCredentials | None:
    if not config.tls:
        return None

    def read(path: str | None, variable: str) -> bytes | None:
        try:
            return Path(path).read_bytes() if path else None
        except OSError as exc:
            raise EtcdConfigError(f"{variable}={path}: cannot read: {exc.strerror}") from exc
    return grpc.ssl_channel_credentials(read(config.ca_cert_file, "ETCD_CA_CERT_FILE"),
                                        read(config.key_file, "ETCD_KEY_FILE"),
                                        read(config.cert_file, "ETCD_CERT_FILE"))


async def connect(config: EtcdStoreConfig, endpoint: EtcdEndpoint, timeout: float = 5.0) -> aetcd.Client:
    """A connected client for one endpoint; a cheap request proves the server answers."""
    client = _Client(_credentials(config), host=endpoint.host, port=endpoint.port, username=config.username,
                     password=config.password, timeout=timeout, options=_CHANNEL_OPTIONS)
    try:
        await client.connect()
        await client.get(b"/calico/")
    except BaseException:
        await client.close()
        raise
    return client


async def connect_any(config: EtcdStoreConfig, first: int = 0, timeout: float = 5.0) -> aetcd.Client:
    """The first endpoint that answers, trying them in turn from ``first``; raises the last error."""
    count = len(config.endpoints)
    error: BaseException | None = None
    for i in range(count):
        try:
            return await connect(config, config.endpoints[(first + i) % count], timeout)
        except CONNECTION_ERRORS as exc:
            error = exc
    assert error is not None
    raise error


def describe(exc: BaseException) -> str:
    """A one-line reason for status output (never a password: aetcd errors carry none)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, EtcdConfigError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def list_prefixes(client: aetcd.Client) -> tuple[dict[str, tuple[bytes, int]], int]:
    """Every key bgpd reads, at one revision: ``{key: (value, mod_revision)}`` and that revision."""
    kvs: dict[str, tuple[bytes, int]] = {}
    revision = 0
    for prefix in layout.PREFIXES:
        start = prefix.encode()
        request = aetcd.rpc.RangeRequest(key=start, range_end=aetcd.utils.prefix_range_end(start),
                                         revision=revision)
        response = await client.kvstub.Range(request, timeout=client._timeout, metadata=client.metadata)
        revision = revision or response.header.revision
        for kv in response.kvs:
            kvs[kv.key.decode()] = (kv.value, kv.mod_revision)
    return kvs, revision


def to_snapshot(kvs: dict[str, tuple[bytes, int]], revision: int, secret_namespace: str,
                ignore_kinds: frozenset[str]) -> Snapshot:
    docs: list[SourceDoc] = []
    errors: list[ConfigError] = []
    for key in sorted(kvs):
        value, mod_revision = kvs[key]
        decoded = layout.decode(key, value, mod_revision)
        if isinstance(decoded, SourceDoc):
            docs.append(decoded)
        elif decoded is not None:
            errors.append(decoded)
    snapshot = build_snapshot(docs, str(revision), secret_namespace, ignore_kinds)
    return dataclasses.replace(snapshot, errors=(*errors, *snapshot.errors)) if errors else snapshot


async def load(config: EtcdStoreConfig, secret_namespace: str = DEFAULT_SECRET_NAMESPACE,
               ignore_kinds: frozenset[str] = frozenset()) -> Snapshot:
    """One Snapshot of the store (for `bgpd peers`, `bgpd check`)."""
    client = await connect_any(config)
    try:
        kvs, revision = await list_prefixes(client)
    finally:
        await client.close()
    return to_snapshot(kvs, revision, secret_namespace, ignore_kinds)


@dataclass
class _State:
    kvs: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    revision: int = 0
    listed: bool = False
    last_good: Snapshot | None = None
    published: Snapshot | None = None


@dataclass
class EtcdStore:
    """The StorePort adapter for etcd. ``stale``/``stale_reason`` describe the connection now."""

    config: EtcdStoreConfig
    secret_namespace: str = DEFAULT_SECRET_NAMESPACE
    ignore_kinds: frozenset[str] = frozenset()
    timeout: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 10.0  # a store back from an outage is seen within seconds
    stale: bool = False
    stale_reason: str = ""
    lists: int = 0  # full listings so far: 1, plus one per compacted watch

    @property
    def source(self) -> str:
        return self.config.url

    def watch(self) -> AsyncIterator[Snapshot]:
        return self._watch()

    async def _watch(self) -> AsyncIterator[Snapshot]:
        state = _State()
        delay = self.backoff_initial
        endpoint = 0
        while True:
            client: aetcd.Client | None = None
            try:
                client = await connect_any(self.config, endpoint, self.timeout)
                delay = self.backoff_initial
                if not state.listed:
                    state.kvs, state.revision = await list_prefixes(client)
                    state.listed = True
                    self.lists += 1
                    log.info("store_listed", store=self.source, revision=state.revision, keys=len(state.kvs))
                    yield self._publish(state)
                async for snapshot in self._follow(client, state):
                    yield snapshot
            except aetcd.RevisionCompactedError as exc:
                log.warning("store_relist", store=self.source, reason=describe(exc), revision=state.revision)
                state.listed = False
            except CONNECTION_ERRORS as exc:
                reason = f"etcd unreachable: {describe(exc)}"
                endpoint += 1
                if (self.stale, self.stale_reason) != (True, reason):
                    self.stale, self.stale_reason = True, reason
                    log.warning("store_stale", store=self.source, reason=reason, retry_in=delay)
                    yield self._stale_snapshot(state, reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            finally:
                if client is not None:
                    with contextlib.suppress(*CONNECTION_ERRORS, asyncio.CancelledError):
                        await client.close()

    async def _follow(self, client: aetcd.Client, state: _State) -> AsyncIterator[Snapshot]:
        """Watch every prefix from the listed revision + 1; yield after each batch of events."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        pumps: list[asyncio.Task[None]] = []
        try:
            for prefix in layout.PREFIXES:
                watch = await client.watch_prefix(prefix.encode(), start_revision=state.revision + 1)
                pumps.append(asyncio.create_task(_pump(watch, queue)))
            if self.stale:
                log.info("store_fresh", store=self.source, revision=state.revision)
                self.stale, self.stale_reason = False, ""
                yield self._publish(state)
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                for item in batch:
                    if isinstance(item, BaseException):
                        raise item
                    _apply_event(state, item)
                yield self._publish(state)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    def _publish(self, state: _State) -> Snapshot:
        snapshot = to_snapshot(state.kvs, state.revision, self.secret_namespace, self.ignore_kinds)
        published = keep_last_good(state.last_good, snapshot)
        if not snapshot.errors:
            state.last_good = snapshot
        state.published = published
        return published

    def _stale_snapshot(self, state: _State, reason: str) -> Snapshot:
        base = state.published or Snapshot(revision="")
        return dataclasses.replace(base, errors=(ConfigError(self.source, 0, "", "", "", reason),))


async def _pump(watch: Any, queue: asyncio.Queue[Any]) -> None:
    try:
        async for event in watch:
            queue.put_nowait(event)
        queue.put_nowait(ConnectionError("watch ended"))
    except asyncio.CancelledError:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await watch.cancel()
        raise
    except Exception as exc:  # handed to the consumer, which decides: re-list or reconnect
        queue.put_nowait(exc)


def _apply_event(state: _State, event: Any) -> None:
    key = event.kv.key.decode()
    if event.kind == aetcd.EventKind.DELETE:
        state.kvs.pop(key, None)
    else:
        state.kvs[key] = (event.kv.value, event.kv.mod_revision)
    state.revision = max(state.revision, event.kv.mod_revision)
