"""Prometheus metrics on the opt-in ``metrics_listen`` address (`GET /metrics`).

Everything that is state (sessions, routes, store, ExaBGP) is read from the reconciler when scraped,
by a custom collector: no second copy of the daemon's state to keep in step. Only what the
reconciler does not keep is counted here, after each input the app hands it (`Metrics.observe`):
how long the input took (a histogram) and the session state changes it caused.

The HTTP server runs on the daemon's own event loop (asyncio.start_server), so a scrape reads the
state between two inputs, never half-way through one, and needs no locks and no thread.

Names follow MetalLB and frr-k8s where one fits (``bgp_session_up``, ``bgp_announced_prefixes_total``,
a gauge despite its suffix, as theirs), with the ``bgpd_`` prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import structlog
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from bgpd import __version__
from bgpd.reconciler import Reconciler

log = structlog.get_logger("bgpd.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PEER_LABELS = ("peer", "peer_ip", "type")
MAX_REQUEST = 8192  # request line and headers: a scraper sends a few hundred bytes
REQUEST_TIMEOUT = 10.0
# Reconciling one input takes microseconds (an UPDATE) to seconds (100k routes after a restart).
DURATION_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ReconcilerCollector(Collector):
    """The reconciler's state as metrics, read at scrape time."""

    def __init__(self, reconciler: Reconciler, kernel_errors: Callable[[], int],
                 transitions: Callable[[], dict[str, int]]) -> None:
        self._r = reconciler
        self._kernel_errors = kernel_errors
        self._transitions = transitions

    def collect(self) -> Iterator[Metric]:
        yield from self._sessions()
        yield from self._store()
        yield from self._daemon()

    def _sessions(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bgpd_bgp_session_up", "1 when the BGP session is Established",
                               labels=PEER_LABELS)
        state = GaugeMetricFamily("bgpd_session_state", "The session's FSM state (the series with value 1)",
                                  labels=(*PEER_LABELS, "state"))
        changes = CounterMetricFamily("bgpd_session_transitions",
                                      "Session FSM state changes since bgpd started", labels=PEER_LABELS)
        routes = {key: GaugeMetricFamily(f"bgpd_routes_{key}", text, labels=PEER_LABELS) for key, text in (
            ("received", "Prefixes held from the current session (adj-RIB-in)"),
            ("accepted", "Received prefixes the import policy accepted"),
            ("installed", "Prefixes whose kernel route is this session's best path"),
            ("stale", "Prefixes kept from the previous session (graceful restart)"),
            ("dropped", "New prefixes refused by the max-prefix limit in this session"))}
        announced = GaugeMetricFamily("bgpd_bgp_announced_prefixes_total", "Prefixes announced to the peer",
                                      labels=PEER_LABELS)
        transitions = self._transitions()
        for name, s in sorted(self._r.sessions.items()):
            labels = [name, s.desired.peer_ip, s.desired.kind.lower()]
            up.add_metric(labels, 1.0 if s.state == "Established" else 0.0)
            state.add_metric([*labels, s.state], 1.0)
            changes.add_metric(labels, transitions.get(name, 0))
            counts = self._r.rib.status(name)
            for key, family in routes.items():
                family.add_metric(labels, getattr(counts, key))
            announced.add_metric(labels, len(s.advertised))
        yield from (up, state, changes, *routes.values(), announced)

    def _store(self) -> Iterator[Metric]:
        r = self._r
        info = InfoMetricFamily("bgpd_store", "The store and the revision bgpd runs")
        info.add_metric(["source", "revision"], {"source": r.store_source, "revision": r.revision})
        yield info
        yield GaugeMetricFamily("bgpd_store_stale",
                                "1 when the newest configuration was rejected and the last good one runs",
                                value=1.0 if r.stale else 0.0)
        yield GaugeMetricFamily("bgpd_store_errors", "Errors in the newest configuration (0 when it runs)",
                                value=len(r.stale_errors))
        yield GaugeMetricFamily("bgpd_configured", "1 once a configuration has been applied",
                                value=0.0 if r.current is None else 1.0)

    def _daemon(self) -> Iterator[Metric]:
        r = self._r
        yield CounterMetricFamily("bgpd_exabgp_restarts", "ExaBGP restarts since bgpd started",
                                  value=r.exabgp_restarts)
        yield GaugeMetricFamily("bgpd_exabgp_up", "1 when the ExaBGP child runs",
                                value=0.0 if r.speaker.pid is None else 1.0)
        yield GaugeMetricFamily("bgpd_kernel_routes", "Routes bgpd has in the kernel (any kind)",
                                value=r.rib.installed)
        yield GaugeMetricFamily("bgpd_kernel_routes_stale", "Kernel routes kept from sessions that went down "
                                "gracefully", value=r.rib.stale)
        yield CounterMetricFamily("bgpd_kernel_install_errors", "Kernel route changes the kernel refused",
                                  value=self._kernel_errors())
        info = InfoMetricFamily("bgpd_build", "bgpd's version and node")
        info.add_metric(["version", "node"], {"version": __version__, "node": r.node_name})
        yield info
        yield GaugeMetricFamily("bgpd_start_time_seconds", "When bgpd started (Unix time)", value=r.started)


class Metrics:
    """The registry, the per-input observations and the HTTP endpoint of one daemon."""

    def __init__(self, reconciler: Reconciler, kernel_errors: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry()
        self._reconciler = reconciler
        self._states: dict[str, str] = {}
        self._transitions: dict[str, int] = {}
        self.registry.register(ReconcilerCollector(reconciler, kernel_errors, lambda: self._transitions))
        self.duration = Histogram("bgpd_reconcile_duration_seconds", "Time the reconciler took for one input",
                                  ["input"], buckets=DURATION_BUCKETS, registry=self.registry)
        self._server: asyncio.AbstractServer | None = None

    def observe(self, kind: str, seconds: float) -> None:
        """After each input (``snapshot``, ``event`` or ``tick``): its duration and the state changes."""
        self.duration.labels(kind).observe(seconds)
        states = {name: s.state for name, s in self._reconciler.sessions.items()}
        for name, state in states.items():
            if name in self._states and self._states[name] != state:
                self._transitions[name] = self._transitions.get(name, 0) + 1
        for gone in self._transitions.keys() - states.keys():  # a removed session's series goes too
            del self._transitions[gone]
        self._states = states

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def start(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._server = await asyncio.start_server(self._serve, host.strip("[]") or None, int(port),
                                                  limit=MAX_REQUEST)
        log.info("metrics_listening", address=listen)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                request = await reader.readuntil(b"\r\n\r\n")
            method, path = _request_line(request)
            if not method:
                writer.write(_response(400, b"not an HTTP request\n"))
            elif method not in ("GET", "HEAD"):
                writer.write(_response(405, b"only GET\n"))
            elif path.split("?")[0] != "/metrics":
                writer.write(_response(404, b"see /metrics\n"))
            else:
                body = self.render()
                writer.write(_response(200, body, head_only=method == "HEAD"))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a scraper that went away or sent junk gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _request_line(request: bytes) -> tuple[str, str]:
    parts = request.split(b"\r\n", 1)[0].decode("latin-1").split()
    return (parts[0], parts[1]) if len(parts) == 3 else ("", "")


def _response(status: int, body: bytes, head_only: bool = False) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
    kind = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    return head if head_only else head + body

