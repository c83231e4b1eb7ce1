"""The CalicoNodeStatus reporter: the app task that writes this node's status into the store.

As calico-node does (reference §1.8): one reporter per CalicoNodeStatus whose ``spec.node`` is this
node; a status is built when the resource appears (or its spec changes) and then every
``updatePeriodSeconds`` (0: no periodic refresh); it is written only when it changed, through the
store's writer (an etcd compare-and-swap or the directory lock, retried on conflict). A write that
fails (the store is down) is retried at the next period, or after `RETRY` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from bgpd.control.status import StatusReport
from bgpd.model.resources import CalicoNodeStatus
from bgpd.model.snapshot import Snapshot
from bgpd.nodestatus import RouteView, Status, build_status, route_views, same_status
from bgpd.ports import Clock
from bgpd.reconciler import Reconciler
from bgpd.store.writer import BY_KIND, Body, NotFound, Writer

log = structlog.get_logger("bgpd.nodestatus")
RETRY = 5.0  # seconds before retrying a failed write when the period is longer (or 0)
# At most this long, a status waits for the reconciler to handle the snapshot that asked for it: only a
# safety net, since a rejected snapshot ends the wait too. The first snapshot starts ExaBGP (a PyPy probe
# and ExaBGP's own start), which took 5 s and more on a loaded 2-core machine.
SETTLE = 60.0
INFO = BY_KIND["CalicoNodeStatus"]


@dataclass
class _Reporter:
    spec: CalicoNodeStatus
    due: float  # monotonic; inf: nothing scheduled
    written: Status | None = None


class NodeStatusReporter:
    """``observe`` every snapshot (a tap on the store's stream); ``run`` writes the statuses."""

    def __init__(self, node: str, writer: Writer, clock: Clock, version: str, *,
                 report: Callable[[], StatusReport], routes: Callable[[], list[RouteView]],
                 reconfigured: Callable[[], float | None], handled: Callable[[], str]) -> None:
        self.node, self.writer, self.clock, self.version = node, writer, clock, version
        self._report, self._routes, self._reconfigured = report, routes, reconfigured
        self._handled = handled  # the revision the reconciler last applied or rejected
        self._seen = ""  # the revision of the last snapshot observed
        self.reporters: dict[str, _Reporter] = {}
        self._wake = asyncio.Event()

    async def tap(self, snapshots: AsyncIterator[Snapshot]) -> AsyncIterator[Snapshot]:
        async for snapshot in snapshots:
            self.observe(snapshot)
            yield snapshot

    def observe(self, snapshot: Snapshot) -> None:
        """Start, change or stop reporters for this node's CalicoNodeStatus resources."""
        if snapshot.errors:
            return  # a stale or partly bad snapshot: keep reporting what was known
        self._seen = snapshot.revision
        mine = {n: s for n, s in snapshot.node_statuses.items() if s.node == self.node}
        for name in self.reporters.keys() - mine.keys():
            del self.reporters[name]
        for name, spec in mine.items():
            old = self.reporters.get(name)
            if old is None or (old.spec.classes, old.spec.update_period_seconds) != \
                    (spec.classes, spec.update_period_seconds):
                self.reporters[name] = _Reporter(spec, self.clock.monotonic(),
                                                 old.written if old else None)
                self._wake.set()
            else:
                old.spec = spec

    async def run(self) -> None:
        while True:
            await self._settle()
            now = self.clock.monotonic()
            for name, reporter in list(self.reporters.items()):
                if reporter.due <= now:
                    await self._report_one(name, reporter)
            due = min((r.due for r in self.reporters.values()), default=float("inf"))
            self._wake.clear()
            timeout = None if due == float("inf") else max(0.0, due - self.clock.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _settle(self) -> None:
        """The snapshot passes this tap before the reconciler applies it: a status built at once would
        describe the previous configuration (at start, none). Wait until the reconciler has handled
        the revision last seen: applied it, or rejected it (then what runs is what the status says)."""
        deadline = self.clock.monotonic() + SETTLE
        while self._handled() != self._seen and self.clock.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _report_one(self, name: str, reporter: _Reporter) -> None:
        period = reporter.spec.update_period_seconds
        now = self.clock.monotonic()
        reporter.due = now + period if period > 0 else float("inf")
        status = build_status(self._report(), self._routes(), reporter.spec.classes,
                              version=self.version, reconfigured=self._reconfigured())
        if same_status(reporter.written, status):
            return
        try:
            await self.writer.modify(INFO, name, _with_status(status))
        except NotFound:
            self.reporters.pop(name, None)  # deleted meanwhile: the next snapshot agrees
            return
        except Exception as exc:  # the store is down or refused: try again soon, nothing else stops
            log.warning("node_status_write_failed", resource=name, reason=str(exc))
            reporter.due = min(reporter.due, now + RETRY)
            return
        reporter.written = status
        log.info("node_status_written", resource=name)


def _with_status(status: Status) -> Callable[[Body | None], Body]:
    def change(current: Body | None) -> Body:
        if current is None:
            raise NotFound("CalicoNodeStatus was deleted")
        return {**current, "status": status}
    return change


def for_reconciler(node: str, writer: Writer, clock: Clock, version: str,
                   reconciler: Reconciler) -> NodeStatusReporter:
    """The reporter of a running daemon: its status, its RIB and its last reconfiguration."""
    def routes() -> list[RouteView]:
        sessions = {n: (s.desired.kind, s.desired.peer_ip) for n, s in reconciler.sessions.items()}
        return route_views(reconciler.rib, sessions)

    return NodeStatusReporter(node, writer, clock, version, report=reconciler.status, routes=routes,
                              reconfigured=lambda: reconciler.reconfigured,
                              handled=lambda: reconciler.handled)
