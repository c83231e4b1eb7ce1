"""`bgpd run`: wire the store, the speaker, the kernel and the control socket around the reconciler.

One asyncio TaskGroup on uvloop. Every input (snapshots, speaker events, timer deadlines) goes
through one queue to one task, so the reconciler is the only writer of state; the control server
only reads the reconciler's StatusReport.

Shutdown (SIGTERM, SIGINT) is the graceful-restart kind: ExaBGP gets SIGTERM (its sessions close
without a NOTIFICATION, so GR peers keep our routes as stale) and the kernel routes stay (they keep
forwarding until the next run adopts them). A deliberate withdraw-everything stop is another action:
`bgpd drain` asks over the control socket, and the daemon withdraws every route, removes its kernel
routes and exits 0 (which systemd's Restart=on-failure leaves stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from bgpd import __version__, nodestatus_task, tcpstats
from bgpd.control.server import AlreadyRunning, ControlServer
from bgpd.diagnosis import Evidence
from bgpd.metrics import Metrics
from bgpd.model.snapshot import Snapshot
from bgpd.ports import Clock
from bgpd.reconciler import Reconciler
from bgpd.settings import Settings
from bgpd.speaker.codec import Event
from bgpd.store.url import parse_store_url
from bgpd.store.writer import open_writer

log = structlog.get_logger("bgpd")

Inbox = asyncio.Queue[Snapshot | Event | Evidence]
EVIDENCE_EVERY = 2.0  # seconds between evidence samples while a session is down (bgpd.diagnosis)
# Calico's logSeverityScreen values -> our levels.
_SEVERITY = {"debug": "debug", "info": "info", "warning": "warning", "error": "error", "fatal": "error"}


def run(settings: Settings) -> int:
    import uvloop  # noqa: PLC0415  (only the daemon needs it)

    try:
        return uvloop.run(main(settings))
    except AlreadyRunning as exc:
        log.error("bgpd_not_started", reason=str(exc))
    except Exception:  # an ExceptionGroup from the TaskGroup: say what failed, exit for systemd to restart
        log.exception("bgpd_failed")
    return 1


async def main(settings: Settings) -> int:
    from bgpd import adapters  # noqa: PLC0415  (pyroute2, ExaBGP: only the daemon needs them)
    from bgpd.resolve import resolve  # noqa: PLC0415

    store = adapters.open_store(settings)
    writer = open_writer(parse_store_url(settings.store, adapters.store_env(settings)))
    speaker = adapters.ExaBGPPort(settings)
    fib = adapters.KernelFibPort(settings.kernel_table, settings.route_protocol)
    clock = adapters.SystemClock()
    reconciler = Reconciler(settings.node, store.source, speaker, fib, clock,
                            lambda snapshot, node: resolve(snapshot, node, os.environ),
                            restart_deadline=settings.graceful_restart_deadline,
                            max_prefixes=settings.max_prefixes)
    log.info("bgpd_starting", version=__version__, node=settings.node, store=store.source,
             table=settings.kernel_table, protocol=settings.route_protocol)
    stop = _stop_event()
    drained: list[int] = []  # set by `bgpd drain`: the stop is not the graceful kind

    async def drain() -> dict[str, Any]:
        """`bgpd drain`: withdraw every route from every peer, remove our kernel routes, then stop."""
        sessions = reconciler.counts()[0]
        log.warning("bgpd_draining", sessions=sessions, reason="bgpd drain")
        await speaker.drain()
        removed = await fib.sweep(set())
        drained.append(removed)
        stop.set()
        return {"node": settings.node, "sessions": sessions, "kernelRoutesRemoved": removed}

    server = ControlServer(settings.control_socket, handlers(reconciler, drain))
    node_status = nodestatus_task.for_reconciler(settings.node, writer, clock, __version__, reconciler)
    await server.start()  # first: a second bgpd on the same socket stops here, before touching anything
    metrics = Metrics(reconciler, lambda: fib.errors) if settings.metrics_listen else None
    try:
        await reconciler.adopt()
        if metrics is not None and settings.metrics_listen:
            await metrics.start(settings.metrics_listen)
        async with asyncio.TaskGroup() as group:
            inbox: Inbox = asyncio.Queue()
            notify = SystemdNotifier()
            tasks = [group.create_task(_pump(node_status.tap(store.watch()), inbox), name="store"),
                     group.create_task(node_status.run(), name="node-status"),
                     group.create_task(_pump(speaker.events(), inbox), name="speaker-events"),
                     group.create_task(_drive(reconciler, inbox, clock, notify, settings.log_level,
                                              observe=metrics.observe if metrics else None),
                                       name="reconciler"),
                     group.create_task(notify.watchdog(), name="watchdog"),
                     group.create_task(_gather_evidence(reconciler, inbox), name="evidence")]
            await stop.wait()
            log.info("bgpd_stopping", reason="bgpd drain" if drained else "signal", graceful=not drained)
            notify.send("STOPPING=1")
            for task in tasks:
                task.cancel()
    finally:
        if metrics is not None:
            await metrics.close()
        await server.close()
        await writer.close()
        await speaker.stop()  # SIGTERM: no NOTIFICATION goes out
        fib.close()  # kernel routes stay: the next run adopts them
    log.info("bgpd_stopped")
    return 0


def handlers(reconciler: Reconciler, drain: Callable[[], Awaitable[dict[str, Any]]] | None = None,
             ) -> dict[str, Callable[[dict[str, Any]], Any]]:
    async def status(args: dict[str, Any]) -> Any:
        return reconciler.status().to_json()

    async def version(args: dict[str, Any]) -> Any:
        return {"version": __version__}

    found: dict[str, Callable[[dict[str, Any]], Any]] = {"status": status, "version": version}
    if drain is not None:
        async def drain_handler(args: dict[str, Any]) -> Any:
            return await drain()

        found["drain"] = drain_handler
    return found


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _pump(source: AsyncIterator[Snapshot] | AsyncIterator[Event], inbox: Inbox) -> None:
    async for item in source:
        inbox.put_nowait(item)


async def _gather_evidence(reconciler: Reconciler, inbox: Inbox) -> None:
    """While a session is down, sample why (bgpd.tcpstats) and hand it to the reconciler in order."""
    while True:
        await asyncio.sleep(EVIDENCE_EVERY)
        wanted = reconciler.evidence_wanted()
        if wanted is None:
            continue
        gtsm, targets = wanted
        try:
            drops = await tcpstats.read_gtsm_drops() if gtsm else None
            probes = await tcpstats.probe_all(targets)
            sample = Evidence(tcpstats.read_counters(), drops, tcpstats.read_syn_sent(), probes)
        except Exception as exc:  # e.g. out of file descriptors: a diagnostic aid never stops the daemon
            log.warning("evidence_failed", reason=f"{type(exc).__name__}: {exc}")
            continue
        inbox.put_nowait(sample)


async def _drive(reconciler: Reconciler, inbox: Inbox, clock: Clock, notify: SystemdNotifier,
                 log_level: str = "info", *, observe: Callable[[str, float], None] | None = None) -> None:
    """The single consumer: one input at a time, and the reconciler's timers in between.
    ``observe(input kind, seconds)`` is told how long each took (bgpd.metrics)."""
    severity = None
    while True:
        deadline = reconciler.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - clock.monotonic())
        try:  # no timer per input while inputs are queued (a burst of events)
            item = inbox.get_nowait()
            await asyncio.sleep(0)  # but the readers (ExaBGP's channel above all) still run between
        except asyncio.QueueEmpty:
            try:
                item = await asyncio.wait_for(inbox.get(), timeout)
            except TimeoutError:
                item = None
        started = time.perf_counter()
        if isinstance(item, Snapshot):
            await reconciler.on_snapshot(item)
            if reconciler.current is not None and reconciler.current.log_severity != severity:
                severity = reconciler.current.log_severity
                _set_log_level(severity, log_level)
        elif item is not None:
            await reconciler.on_event(item)
        if deadline is not None and clock.monotonic() >= deadline:  # also when inputs keep coming
            await reconciler.tick()
        if observe is not None:
            kind = "tick" if item is None else "snapshot" if isinstance(item, Snapshot) else "event"
            observe(kind, time.perf_counter() - started)
        notify.state(reconciler)


def _set_log_level(severity: str | None, default: str) -> None:
    """BGPConfiguration ``logSeverityScreen`` overrides the settings' level while it is set."""
    from bgpd.logging import set_level  # noqa: PLC0415

    level = _SEVERITY.get((severity or "").lower(), default)
    set_level(level)
    log.info("log_level_changed", level=level,
             reason="BGPConfiguration logSeverityScreen" if severity else "settings log_level")


class SystemdNotifier:
    """sd_notify(3) without libsystemd: READY after the first applied snapshot, STATUS, WATCHDOG."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = os.environ.get("WATCHDOG_USEC", "")
        self._watchdog = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._ready = False
        self._status = ""

    def send(self, message: str) -> None:
        if not self._address:
            return
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), self._address)

    def state(self, reconciler: Reconciler) -> None:
        up, configured, installed = reconciler.counts()
        stale = f" (STALE: {len(reconciler.stale_errors)} error(s))" if reconciler.stale else ""
        status = (f"{up}/{configured} sessions established, {installed} routes, "
                  f"revision {reconciler.revision[:12]}{stale}" if reconciler.current is not None
                  else f"waiting for a valid configuration{stale}")
        if not self._ready and reconciler.current is not None:
            self._ready = True
            self.send(f"READY=1\nSTATUS={status}")
        elif status != self._status:
            self.send(f"STATUS={status}")
        self._status = status

    async def watchdog(self) -> None:
        """Pinged from the event loop itself: a stalled loop misses pings and systemd restarts us."""
        while self._watchdog is not None:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self._watchdog)
