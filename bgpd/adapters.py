"""The concrete ports (bgpd.ports) the daemon runs with: clock, store, ExaBGP and the kernel FIB."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from bgpd.desired import DesiredNode
from bgpd.kernel.fib import ApplyResult, KernelFib
from bgpd.ports import StorePort
from bgpd.rib import FibChange, fib_size
from bgpd.settings import Settings, default_exabgp
from bgpd.speaker import interpreter
from bgpd.speaker.codec import Event
from bgpd.speaker.config import SpeakerSettings
from bgpd.speaker.process import ExaBGPSpeaker, SendResult, default_bridge_command
from bgpd.store.url import FileStoreConfig, parse_store_url
from bgpd.store.yamldir import YamlDirStore

log = structlog.get_logger("bgpd.adapters")
DRAIN_QUEUED = 30.0  # seconds a drain waits for queued commands to reach ExaBGP before withdrawing all


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


def store_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """calicoctl's ETCD_* variables, with the settings file's TLS files taking precedence."""
    env = dict(os.environ if environ is None else environ)
    files = {"ETCD_CA_CERT_FILE": settings.etcd_ca_cert_file, "ETCD_CERT_FILE": settings.etcd_cert_file,
             "ETCD_KEY_FILE": settings.etcd_key_file}
    env.update({key: value for key, value in files.items() if value})
    return env


def open_store(settings: Settings) -> StorePort:
    """The store for ``settings.store``; raises bgpd.store.url.StoreURLError for a bad URL."""
    config = parse_store_url(settings.store, store_env(settings))
    if isinstance(config, FileStoreConfig):
        return YamlDirStore(config.path)
    from bgpd.store.etcd import EtcdStore  # noqa: PLC0415  (grpc is heavy: only when used)

    return EtcdStore(config)


class Outbox:
    """Commands for ExaBGP, sent in order by one task while their sender goes on.

    ExaBGP takes a bounded number of routes per pass of its reactor (50 of its own, 1,000 with
    bgpd.speaker.fastupdate), so acknowledging a reflector's UPDATE worth of announcements to ten
    clients takes it tens of milliseconds. Waiting for that before the next
    event held the node's own kernel routes back behind its exports (a reflector's FIB filled no
    faster than its clients'). Order is kept (one queue, one task); past LIMIT unsent commands `put`
    waits, so a slow ExaBGP bounds what queues here.
    """

    LIMIT = 20_000

    def __init__(self, send: Callable[[list[str]], Awaitable[object]]) -> None:
        self._send = send
        self._queue: asyncio.Queue[list[str]] = asyncio.Queue()
        self._waiting = 0  # commands queued or being sent
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def put(self, commands: Sequence[str]) -> None:
        if not commands:
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="exabgp-outbox")
        self._queue.put_nowait(list(commands))
        self._waiting += len(commands)
        while self._waiting > self.LIMIT:
            self._progress.clear()
            await self._progress.wait()

    async def flush(self) -> None:
        """Until every command queued so far has been answered (or failed)."""
        await self._queue.join()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                await self._send(batch)
            except ConnectionError as exc:  # ExaBGP went away: it restarts, and every session replays
                log.warning("speaker_send_failed", commands=len(batch), reason=str(exc))
            finally:
                self._waiting -= len(batch)
                self._progress.set()
                self._queue.task_done()


class ExaBGPPort:
    """SpeakerPort over bgpd.speaker.process.ExaBGPSpeaker, started on the first configuration
    (ExaBGP needs a router id and the node's addresses, which the first good snapshot gives)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # its own 0700 directory: the run dir itself must stay 0750 for the control socket's group
        self._run_dir = Path(settings.run_dir) / "exabgp"
        self._speaker: ExaBGPSpeaker | None = None
        self._started = asyncio.Event()
        self._outbox = Outbox(self._send_now)

    @property
    def pid(self) -> int | None:
        return None if self._speaker is None else self._speaker.pid

    async def reconfigure(self, desired: DesiredNode) -> None:
        if self._speaker is None:
            self._speaker = ExaBGPSpeaker(await self._speaker_settings(desired), self._run_dir)
            self._started.set()
        await self._speaker.reconfigure(desired)  # the first call starts ExaBGP

    async def _speaker_settings(self, desired: DesiredNode) -> SpeakerSettings:
        exabgp = self._settings.exabgp
        launcher, reason = await interpreter.choose(
            self._settings.exabgp_interpreter, exabgp, self._run_dir,
            exabgp_is_default=exabgp == default_exabgp(), fast_updates=self._settings.exabgp_fast_updates,
            reflector=desired.rr_cluster_id is not None)
        fell_back = self._settings.exabgp_interpreter == "pypy" != launcher.interpreter
        (log.warning if fell_back else log.info)("exabgp_interpreter", interpreter=launcher.interpreter,
                                                 setting=self._settings.exabgp_interpreter, reason=reason)
        return SpeakerSettings(
            bridge_command=default_bridge_command(), api_socket=str(self._run_dir / "api.sock"),
            exabgp=exabgp, router_id=desired.router_id,
            node_ipv4=desired.ipv4, node_ipv6=desired.ipv6, launcher=launcher,
        )

    async def _running(self) -> ExaBGPSpeaker:
        await self._started.wait()
        assert self._speaker is not None
        return self._speaker

    async def send(self, commands: Sequence[str]) -> None:
        """Queue ``commands`` for ExaBGP (see Outbox); failures are logged there."""
        await self._outbox.put(commands)

    async def _send_now(self, commands: list[str]) -> SendResult:
        return await (await self._running()).send(commands)

    async def events(self) -> AsyncIterator[Event]:
        async for event in (await self._running()).events():
            yield event

    async def stop(self) -> None:
        """SIGTERM to ExaBGP: sessions close without a NOTIFICATION, GR peers keep our routes."""
        self._outbox.close()  # what is still queued does not matter: the peers keep our routes
        if self._speaker is not None:
            await self._speaker.stop(graceful=True)

    async def drain(self) -> None:
        """Withdraw every route from every peer, close the sessions and stop ExaBGP (no GR)."""
        with contextlib.suppress(TimeoutError):  # queued announcements first, or they would follow
            await asyncio.wait_for(self._outbox.flush(), DRAIN_QUEUED)
        self._outbox.close()
        if self._speaker is not None:
            await self._speaker.drain()



class KernelFibPort:
    """FibPort over bgpd.kernel.fib.KernelFib: its calls are synchronous and not thread-safe, so
    they run on one worker thread (sendto() releases the GIL: the loop keeps running meanwhile).

    apply() does not wait for the kernel: changes join a pending batch and one flush job per batch
    is queued on the worker, so the reconciler decodes the next UPDATEs while the kernel installs
    the last ones (on the second core), and whatever arrives meanwhile goes in one bigger batch.
    Everything runs on that one worker in submission order, so dump() and sweep() see every change
    applied before them. Failures are logged and counted when their batch completes. A backlog of
    MAX_PENDING routes makes apply() wait for its batch: when UPDATEs arrive faster than the kernel
    takes routes they wait as received (the bytes ExaBGP sent), not as routes held twice.
    """

    MAX_PENDING = 65536

    def __init__(self, table: int, protocol: int) -> None:
        self._fib = KernelFib(table, protocol)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bgpd-fib")
        self._lock = threading.Lock()
        self._pending: list[FibChange] = []
        self._pending_routes = 0
        self._queued = False  # a flush job is queued that has not taken the pending batch yet
        self._last: asyncio.Future[tuple[ApplyResult, int]] | None = None  # the latest flush job
        self.errors = 0
        self.leftovers = True  # until dump() has looked

    async def apply(self, changes: Sequence[FibChange]) -> None:
        with self._lock:
            self._pending.extend(changes)
            self._pending_routes += fib_size(changes)
            if not self._pending:
                return
            backlog, submit, self._queued = self._pending_routes, not self._queued, True
        if submit:
            self._last = asyncio.get_running_loop().run_in_executor(self._pool, self._flush)
            self._last.add_done_callback(self._flushed)
        if backlog >= self.MAX_PENDING and self._last is not None:
            await asyncio.wait([self._last])  # the job that takes this backlog; _flushed reports

    def _flush(self) -> tuple[ApplyResult, int]:
        with self._lock:
            batch, count, self._pending, self._pending_routes, self._queued = (
                self._pending, self._pending_routes, [], 0, False)
        return self._fib.apply(batch), count  # the RIB's FibChange is the kernel's: no copy

    def _flushed(self, future: asyncio.Future[tuple[ApplyResult, int]]) -> None:
        if future.cancelled():
            return
        failure = future.exception()
        if failure is not None:
            self.errors += 1
            log.error("route_install_batch_failed", reason=repr(failure))
            return
        self._report(*future.result())

    def _report(self, result: ApplyResult, count: int) -> None:
        self.errors += len(result.errors)
        for prefix, reason in list(result.errors.items())[:20]:  # the first few say enough
            log.warning("route_install_failed", prefix=prefix, reason=reason)
        if result.overrun:
            log.error("route_install_errors_lost", changes=count, reason="netlink receive buffer overrun")

    async def dump(self) -> dict[str, tuple[str, ...]]:
        routes = await asyncio.get_running_loop().run_in_executor(self._pool, self._fib.routes)
        # Blackholes are not adopted: the RIB re-derives them from the node's own blocks.
        adopted = {p: r.nexthops for p, r in self._fib.by_prefix(routes).items() if r.kind == "unicast"}
        self.leftovers = len(adopted) < len(routes)
        return adopted

    async def sweep(self, keep: set[str]) -> int:
        result = await asyncio.get_running_loop().run_in_executor(self._pool, self._fib.sweep, keep)
        self._report(result, result.sent)
        return result.sent

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._fib.close()
