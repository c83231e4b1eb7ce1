"""The one owner of bgpd's mutable state.

Inputs, each handled to completion before the next (the app feeds them from one queue):
snapshots from the store, events from the speaker, and timer ticks. Outputs go through the ports:
session configuration and routes to the speaker, route changes to the kernel. Time comes from an
injected clock, so every behaviour here is tested with fakes and a manual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from bgpd.bgp import Family
from bgpd.control.status import SessionStatus, StatusReport
from bgpd.desired import DesiredNode, DesiredSession, Export
from bgpd.model.snapshot import Snapshot
from bgpd.plan import Plan, plan
from bgpd.ports import (
    Clock,
    EndOfRib,
    FibChange,
    FibPort,
    PeerOpen,
    PeerState,
    RibPort,
    RoutesReceived,
    RoutesWithdrawn,
    SpeakerEvent,
    SpeakerPort,
    SpeakerRestarted,
)

Resolver = Callable[[Snapshot, str], DesiredNode]
ESTABLISHED = "Established"
# ExaBGP's API speaks of up/down/connected; the status speaks BGP FSM states, as BIRD does.
_STATE_NAMES = {"up": ESTABLISHED, "down": "Idle", "connected": "Connect", "idle": "Idle"}
_LOG_EVENTS = {"add": "session_added", "remove": "session_removed", "reset": "session_reset",
               "update": "session_updated"}
FAMILY_OF: dict[int, Family] = {4: "ipv4 unicast", 6: "ipv6 unicast"}

log = structlog.get_logger("bgpd.reconciler")


@dataclass
class _Session:
    """What is known about one configured session at runtime."""

    desired: DesiredSession
    state: str
    since: float
    reason: str | None
    peer_restart_time: int | None = None  # from the peer's OPEN; None: no graceful restart
    opened: bool = False  # an OPEN was ever received
    stale_until: float | None = None  # graceful-restart deadline (monotonic) for the peer's stale routes
    eor_seen: bool = False

    @property
    def family(self) -> Family:
        return FAMILY_OF[self.desired.family]

    @property
    def info(self) -> str:
        if self.state == ESTABLISHED:
            return ESTABLISHED
        info = f"{self.state}: {self.reason}" if self.reason else self.state
        if self.desired.password is not None and not self.opened:
            info += " (no OPEN received; MD5 password mismatch suspected)"
        return info


@dataclass
class _Speaker:
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None


@dataclass
class _Store:
    revision: str = ""
    stale: bool = False
    errors: tuple[str, ...] = ()


@dataclass
class Reconciler:
    node_name: str
    store_source: str
    speaker: SpeakerPort
    fib: FibPort
    rib: RibPort
    clock: Clock
    resolve: Resolver
    restart_deadline: float = 120.0  # seconds: our own restart's stale retention and first-sweep wait
    current: DesiredNode | None = None
    sessions: dict[str, _Session] = field(default_factory=dict)
    store: _Store = field(default_factory=_Store)
    exabgp: _Speaker = field(default_factory=_Speaker)
    started: float = 0.0
    swept: bool = False
    _sweep_at: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.clock.time()
        self._sweep_at = self.clock.monotonic() + self.restart_deadline

    # ---------------------------------------------------------------- snapshots

    async def on_snapshot(self, snapshot: Snapshot) -> Plan | None:
        """Apply a snapshot; a bad one changes nothing that runs and marks the status stale."""
        errors = [str(e) for e in snapshot.errors]
        desired = None
        if not errors:
            try:
                desired = self.resolve(snapshot, self.node_name)
            except Exception as exc:  # a resolver bug must not stop the sessions that run
                log.exception("resolve_failed", revision=snapshot.revision)
                errors = [f"resolving node {self.node_name} failed: {type(exc).__name__}: {exc}"]
            else:
                errors = [str(e) for e in desired.errors]
        if desired is None or errors:
            self.store = _Store(self.store.revision, stale=True, errors=tuple(errors))
            log.warning("config_rejected", revision=snapshot.revision, errors=errors)
            return None
        steps = plan(self.current, desired)
        await self._apply(steps, desired)
        self.store = _Store(snapshot.revision)
        return steps

    async def _apply(self, steps: Plan, desired: DesiredNode) -> None:
        changes: list[FibChange] = []
        for action in steps.actions:
            if action.kind in ("remove", "reset"):
                changes += self.rib.peer_down(action.name, graceful=False)
            if action.kind == "remove":
                del self.sessions[action.name]
            elif action.kind in ("add", "reset") and action.session is not None:
                why = "new session" if action.kind == "add" else "reset: " + ", ".join(action.changed)
                self.sessions[action.name] = _Session(action.session, "Idle", self.clock.time(), why)
            elif action.kind == "update" and action.session is not None:
                self.sessions[action.name].desired = action.session
            log.info(_LOG_EVENTS[action.kind], peer=action.name,
                     reason=", ".join(action.changed) or action.kind)
        for noop in steps.of_kind("noop"):  # keep e.g. the origin up to date
            self.sessions[noop].desired = next(s for s in desired.sessions if s.name == noop)
        if steps.needs_speaker_config or steps.actions:
            await self.speaker.configure(desired)
        changes += self.rib.configure(desired)
        await self._fib(changes)
        if steps.static_changed or self.current is None:
            await self.fib.set_static(desired.static_routes, desired.blackholes)
        self.current = desired
        await self._send_exports(steps)
        await self._maybe_sweep()

    async def _send_exports(self, steps: Plan) -> None:
        """New and withdrawn exports to running sessions; all of them where the next hop changed."""
        renext = {a.name for a in steps.actions if a.kind == "update" and "next_hop" in a.changed}
        for name, s in self.sessions.items():
            if s.state != ESTABLISHED:
                continue  # sessions get everything when they come up
            withdraw = _of_family(steps.withdraw, s.desired.family)
            if withdraw:
                await self.speaker.withdraw(name, withdraw)
            announce = self._exports(s) if name in renext else _of_family(steps.announce, s.desired.family)
            if announce:
                await self.speaker.announce(name, announce)

    def _exports(self, s: _Session) -> tuple[Export, ...]:
        return _of_family(self.current.exports if self.current else (), s.desired.family)

    # ---------------------------------------------------------------- speaker events

    async def on_event(self, event: SpeakerEvent) -> None:
        if isinstance(event, SpeakerRestarted):
            await self._speaker_restarted(event)
            return
        s = self.sessions.get(event.session)
        if s is None:
            log.debug("event_for_unknown_session", peer=event.session, kind=type(event).__name__)
            return
        if isinstance(event, PeerState):
            await self._peer_state(event.session, s, _STATE_NAMES.get(event.state, event.state), event.reason)
        elif isinstance(event, PeerOpen):
            s.opened, s.peer_restart_time = True, event.restart_time
        elif isinstance(event, RoutesReceived):
            await self._fib(self.rib.update(event.session, event.family, event.routes))
        elif isinstance(event, RoutesWithdrawn):
            await self._fib(self.rib.withdraw(event.session, event.family, event.prefixes))
        elif isinstance(event, EndOfRib):
            await self._end_of_rib(event.session, s, event.family)

    async def _peer_state(self, name: str, s: _Session, state: str, reason: str | None) -> None:
        was_up = s.state == ESTABLISHED
        if state != s.state:
            s.since = self.clock.time()
        s.state, s.reason = state, reason
        if state == ESTABLISHED and not was_up:
            log.info("session_established", peer=name, peer_ip=s.desired.peer_ip)
            await self._announce_all(name, s)
        elif was_up and state != ESTABLISHED:
            graceful = s.peer_restart_time is not None
            log.info("session_down", peer=name, peer_ip=s.desired.peer_ip, reason=reason, graceful=graceful)
            if graceful:
                s.stale_until = self.clock.monotonic() + (s.peer_restart_time or 0)
            await self._fib(self.rib.peer_down(name, graceful=graceful))

    async def _announce_all(self, name: str, s: _Session) -> None:
        """Our routes first, then End-of-RIB: a restarting peer must not sweep before it has them."""
        exports = self._exports(s)
        if exports:
            await self.speaker.announce(name, exports)
        await self.speaker.send_eor(name, s.family)

    async def _end_of_rib(self, name: str, s: _Session, family: Family) -> None:
        s.eor_seen = True
        if family == s.family:
            s.stale_until = None
        await self._fib(self.rib.end_of_rib(name, family))
        await self._maybe_sweep()

    async def _speaker_restarted(self, event: SpeakerRestarted) -> None:
        """Every session starts over; keep what the peers gave us as stale until they send it again."""
        self.exabgp = _Speaker(event.pid, event.restarts, event.last_exit)
        log.warning("exabgp_restarted", pid=event.pid, restarts=event.restarts, reason=event.last_exit)
        changes: list[FibChange] = []
        deadline = self.clock.monotonic() + self.restart_deadline
        for name, s in self.sessions.items():
            if s.state == ESTABLISHED:
                s.stale_until = deadline
                changes += self.rib.peer_down(name, graceful=True)
            if s.state != "Idle":
                s.since = self.clock.time()
            s.state, s.reason = "Idle", f"ExaBGP restarted ({event.last_exit})"
        await self._fib(changes)

    # ---------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        """When `tick` has something to do (monotonic seconds), or None."""
        deadlines = [s.stale_until for s in self.sessions.values() if s.stale_until is not None]
        if not self.swept and self.current is not None:
            deadlines.append(self._sweep_at)
        return min(deadlines, default=None)

    async def tick(self) -> None:
        now = self.clock.monotonic()
        for name, s in self.sessions.items():
            if s.stale_until is not None and s.stale_until <= now:
                s.stale_until = None
                log.info("stale_routes_expired", peer=name, reason="graceful restart time passed")
                await self._fib(self.rib.expire(name))
        await self._maybe_sweep()

    async def _maybe_sweep(self) -> None:
        """Remove routes a previous run left once every session resynced, or at the deadline."""
        if self.swept or self.current is None:
            return
        resynced = all(s.eor_seen for s in self.sessions.values())
        if resynced or self.clock.monotonic() >= self._sweep_at:
            self.swept = True
            removed = await self.fib.sweep()
            log.info("kernel_swept", removed=removed, reason="resynced" if resynced else "deadline")

    # ---------------------------------------------------------------- output

    async def _fib(self, changes: Sequence[FibChange]) -> None:
        if changes:
            await self.fib.apply(changes)

    def status(self) -> StatusReport:
        node = self.current
        configured = node.sessions if node else ()
        installed, stale = self.rib.totals()
        return StatusReport(
            node=self.node_name, as_number=node.as_number if node else None,
            router_id=node.router_id if node else None, store_source=self.store_source,
            revision=self.store.revision, stale=self.store.stale, errors=self.store.errors,
            sessions=tuple(self._session_status(self.sessions[d.name]) for d in configured),
            routes_installed=installed, routes_stale=stale,
            exabgp_pid=self.speaker.pid, exabgp_restarts=self.exabgp.restarts,
            exabgp_last_exit=self.exabgp.last_exit, started=self.started, now=self.clock.time())

    def _session_status(self, s: _Session) -> SessionStatus:
        received, installed = self.rib.counts(s.desired.name)
        d = s.desired
        return SessionStatus(
            name=d.name, family=d.family, kind=d.kind, peer_ip=d.peer_ip, port=d.port,
            state="up" if s.state == ESTABLISHED else "start", since=s.since, info=s.info,
            routes_received=received, routes_installed=installed)


def _of_family(exports: Sequence[Export], family: int) -> tuple[Export, ...]:
    return tuple(e for e in exports if e.prefix.version == family)
