"""The one owner of bgpd's mutable state.

Inputs, each handled to completion before the next (the app feeds them from one queue): snapshots
from the store, events from the speaker, and timer ticks. The reconciler resolves and plans a
snapshot, drives the speaker (session configuration, then routes over the API) and owns the RIB,
whose diffs become kernel changes and per-peer announcements. Time comes from an injected clock, so
every behaviour here is tested with fake ports, the real RIB and a manual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog

from bgpd import diagnosis
from bgpd.bgp import Family, PathAttributes
from bgpd.control.status import SessionStatus, StatusReport
from bgpd.desired import DesiredNode, DesiredSession
from bgpd.diagnosis import Evidence, Observation, ProbeResult, ProbeTarget
from bgpd.model.snapshot import Snapshot
from bgpd.plan import Plan, SessionAction, plan
from bgpd.ports import Clock, FibPort, SpeakerPort
from bgpd.rib import (
    DEFAULT_MAX_PREFIXES,
    Announce,
    FibChange,
    LocalInfo,
    Outbound,
    PeerInfo,
    Rib,
    RibDiff,
    Withdraw,
    fib_size,
)
from bgpd.speaker import codec
from bgpd.speaker.codec import (
    EndOfRib,
    Event,
    NotificationEvent,
    PeerOpen,
    PeerState,
    RoutesReceived,
    RoutesWithdrawn,
    SpeakerRestarted,
)

Resolver = Callable[[Snapshot, str], DesiredNode]
ESTABLISHED = "Established"
FAMILY_OF: dict[int, Family] = {4: "ipv4 unicast", 6: "ipv6 unicast"}
MAX_NLRI_PER_COMMAND = 1000  # keeps API lines short; ExaBGP packs them into UPDATEs itself
PROBE_AFTER = 5.0  # seconds a session may take to come up before bgpd tries a TCP connect itself
PROBE_EVERY = 30.0  # seconds between such probes of one session
PROBE_FAILURES = 2  # connections lost before any OPEN, before bgpd probes
MIN_RETRANSMITS = 2  # a SYN of ours retransmitted this often (~3 s unanswered) is evidence
_LOG_EVENTS = {"add": "session_added", "remove": "session_removed", "reset": "session_reset",
               "update": "session_updated"}

log = structlog.get_logger("bgpd.reconciler")


@dataclass
class _Session:
    """What is known about one configured session at runtime."""

    desired: DesiredSession
    state: str
    since: float
    reason: str | None
    peer_router_id: str | None = None  # from the peer's OPEN
    peer_restart_time: int | None = None  # from the peer's OPEN; None: no graceful restart
    opened: bool = False  # an OPEN was received at least once
    eor_seen: bool = False
    over_limit: bool = False  # said once per session that the max-prefix limit was hit
    notification: str | None = None  # the last NOTIFICATION, as a reason
    peer_as: int | None = None  # the AS in the peer's last OPEN (ExaBGP rejects a wrong one: 2/2)
    observations: dict[str, Observation] = field(default_factory=dict)  # kernel evidence while down
    probe: ProbeResult | None = None  # the last TCP probe's outcome while down
    unanswered: int | None = None  # most retransmissions seen of one of our SYNs to the peer while down
    failures: int = 0  # connections that went down before any OPEN
    created: float = 0.0  # monotonic
    probed: float | None = None  # monotonic
    # Reset while connected: ExaBGP's next "down" is the close of the replaced connection, and its
    # reason must not hide why the session was reset (e.g. a password change).
    closing_previous: bool = False
    # What ExaBGP holds in its adj-rib-out for the peer. ExaBGP replays that on reconnect, so what was
    # withdrawn meanwhile (the RIB tells only established peers) must be withdrawn when it comes back.
    advertised: set[str] = field(default_factory=set)

    @property
    def family(self) -> Family:
        return FAMILY_OF[self.desired.family]

    @property
    def info(self) -> str:
        if self.state == ESTABLISHED:
            return ESTABLISHED
        d, notes = self.desired, []
        if self.peer_as is not None and self.peer_as != d.remote_as:
            notes.append(diagnosis.open_error(self.peer_as, d.remote_as))
        if self.notification:
            notes.append(f"last {self.notification}")
        if not self.opened and (d.password is not None or self.observations or self.probe
                                or self.unanswered is not None):
            notes.append("no OPEN received")
        notes += diagnosis.observations_text(self.observations.values(), d.ttl_security)
        if self.unanswered is not None and not self.opened and self.probe != "timeout":  # else said twice
            password = d.password is not None
            notes.append(diagnosis.unanswered_text(d.peer_ip, d.port, self.unanswered, password))
        if self.probe is not None and not self.opened:
            notes.append(diagnosis.probe_text(self.probe, d.peer_ip, d.port))
        return diagnosis.info(self.state, self.reason, notes)

    def evidence_kinds(self) -> tuple[object, ...]:
        return self.probe, self.unanswered is not None, tuple(self.observations)

    def clear_evidence(self) -> None:
        self.notification, self.peer_as, self.probe, self.probed = None, None, None, None
        self.unanswered, self.failures = None, 0
        self.observations = {}


@dataclass
class Reconciler:
    node_name: str
    store_source: str
    speaker: SpeakerPort
    fib: FibPort
    clock: Clock
    resolve: Resolver
    restart_deadline: float = 120.0  # how long adopted kernel routes wait for every End-of-RIB
    max_prefixes: int | None = DEFAULT_MAX_PREFIXES
    current: DesiredNode | None = None
    sessions: dict[str, _Session] = field(default_factory=dict)
    rib: Rib = field(default_factory=lambda: Rib(LocalInfo(as_number=0)))
    revision: str = ""
    handled: str = ""  # the revision of the last snapshot applied or rejected
    stale_errors: tuple[str, ...] = ()
    stale: bool = False
    exabgp_restarts: int = 0
    exabgp_last_exit: str | None = None
    started: float = 0.0
    reconfigured: float | None = None  # when a snapshot last changed what the node runs (wall clock)
    swept: bool = False
    _sweep_at: float = 0.0
    _by_ip: dict[str, str] = field(default_factory=dict)
    _retired: dict[str, float] = field(default_factory=dict)  # removed sessions whose routes stay stale
    _local: LocalInfo | None = None
    _deadline: float | None = None
    _deadline_known: bool = False
    _evidence: Evidence | None = None  # the previous sample: rises are counted from it

    def __post_init__(self) -> None:
        self.started = self.clock.time()
        self._sweep_at = self.clock.monotonic() + self.restart_deadline

    async def adopt(self) -> int:
        """At start: the routes a previous run left keep forwarding until every session resynced."""
        routes = await self.fib.dump()
        self.rib.adopt(routes, self._sweep_at)
        log.info("kernel_routes_adopted", routes=len(routes))
        # Nothing of ours in the kernel: every route of ours there from now on is one the RIB put
        # there, so there is nothing to sweep (and no full table to dump again at the first resync).
        self.swept = not routes and not self.fib.leftovers
        return len(routes)

    # ---------------------------------------------------------------- snapshots

    async def on_snapshot(self, snapshot: Snapshot) -> Plan | None:
        """Apply a snapshot; a bad one changes nothing that runs and marks the status stale."""
        self._deadline_known = False
        desired, errors = self._resolve(snapshot)
        if desired is None:
            self._reject(snapshot.revision, errors)
            return None
        steps = plan(self.current, desired)
        if steps.needs_speaker_config:
            try:  # first: a configuration the speaker refuses must leave everything as it was
                await self.speaker.reconfigure(desired)
            except ValueError as exc:
                self._reject(snapshot.revision, [f"speaker configuration refused: {exc}"])
                return None
        diff = self._apply_to_rib(steps, desired)
        if desired != self.current:
            self.reconfigured = self.clock.time()
        self.current = desired
        self._by_ip = {s.peer_ip: s.name for s in desired.sessions}
        self.revision, self.stale, self.stale_errors = snapshot.revision, False, ()
        self.handled = snapshot.revision
        _log_route_changes(steps, snapshot.revision)
        await self._emit(diff)
        await self._maybe_sweep()
        return steps

    def _resolve(self, snapshot: Snapshot) -> tuple[DesiredNode | None, list[str]]:
        if snapshot.errors:
            return None, [str(e) for e in snapshot.errors]
        try:
            desired = self.resolve(snapshot, self.node_name)
        except Exception as exc:  # a resolver bug must not stop the sessions that run
            log.exception("resolve_failed", revision=snapshot.revision)
            return None, [f"resolving node {self.node_name} failed: {type(exc).__name__}: {exc}"]
        if desired.errors:
            return None, [str(e) for e in desired.errors]
        return desired, []

    def _reject(self, revision: str, errors: list[str]) -> None:
        self.stale, self.stale_errors, self.handled = True, tuple(errors), revision
        log.warning("config_rejected", revision=revision, errors=errors)

    def _apply_to_rib(self, steps: Plan, desired: DesiredNode) -> RibDiff:
        now = self.clock.monotonic()
        diffs = []
        for action in steps.actions:
            log.info(_LOG_EVENTS[action.kind], peer=action.name, reason=_action_reason(action))
            if action.kind == "remove":
                diffs.append(self._retire(action.name, self.sessions.pop(action.name), now))
            elif action.kind == "reset":
                # A reset by configuration (e.g. an AS change) is a restart to a peer that offered
                # graceful restart: its routes stay, stale, until the new session's End-of-RIB, so
                # traffic keeps flowing while the session comes back (the peer does the same for ours).
                graceful = self.sessions[action.name].peer_restart_time is not None
                diffs.append(self.rib.peer_down(action.name, now, graceful=graceful))
        local = LocalInfo.from_desired(desired)
        if local != self._local:  # a new LocalInfo re-evaluates every prefix: only when it changed
            self._local = local
            diffs.append(self.rib.set_local(local))
        for action in steps.sessions:
            if action.kind != "remove":
                diffs.append(self._set_session(action, desired))
        return _merge(diffs)

    def _retire(self, name: str, old: _Session, now: float) -> RibDiff:
        """A session removed by configuration (e.g. the mesh giving way to route reflectors) ends
        like a graceful restart that does not come back: with a peer that offered graceful restart,
        its routes stay, stale, for the peer's restart time, so traffic keeps flowing until the
        sessions replacing it deliver the same prefixes (fresh routes win over stale ones)."""
        if old.peer_restart_time is None:
            return self.rib.remove_peer(name)
        diff = self.rib.peer_down(name, now, graceful=True)
        deadline = self.rib.status(name).stale_deadline
        if deadline is None:  # nothing kept
            return _merge([diff, self.rib.remove_peer(name)])
        self._retired[name] = deadline
        log.info("session_retired", peer=name, peer_ip=old.desired.peer_ip, stale_until=round(deadline, 1),
                 reason="removed by configuration; the peer's routes stay stale until its restart time")
        return diff

    def _set_session(self, action: SessionAction, desired: DesiredNode) -> RibDiff:
        assert action.session is not None
        self._retired.pop(action.name, None)  # configured again: its stale routes are its own again
        if action.kind in ("add", "reset"):
            why = "new session" if action.kind == "add" else "reset: " + ", ".join(action.changed)
            waiting = "Passive" if action.session.passive else "Connect"
            previous = self.sessions.get(action.name)
            self.sessions[action.name] = _Session(action.session, waiting, self.clock.time(), why,
                                                  created=self.clock.monotonic())
            if previous is not None:
                self.sessions[action.name].advertised = previous.advertised
                self.sessions[action.name].closing_previous = previous.state in (ESTABLISHED, "OpenSent")
        s = self.sessions[action.name]
        s.desired = action.session  # also for no-ops: e.g. which resources produced it
        if action.kind == "noop":  # plan() makes a changed filter an update of the sessions using it
            return RibDiff()
        return self.rib.set_peer(self._peer_info(s, desired))

    def _peer_info(self, s: _Session, node: DesiredNode) -> PeerInfo:
        return PeerInfo.from_session(s.desired, node.filters, router_id=s.peer_router_id,
                                     gr_restart_time=s.peer_restart_time, max_prefixes=self.max_prefixes,
                                     node=node)

    # ---------------------------------------------------------------- speaker events

    async def on_event(self, event: Event | Evidence) -> None:
        if isinstance(event, Evidence):
            self._on_evidence(event)
            return
        if not isinstance(event, RoutesReceived | RoutesWithdrawn):  # the common case moves no deadline
            self._deadline_known = False
        if isinstance(event, SpeakerRestarted):
            self.exabgp_restarts, self.exabgp_last_exit = event.restarts, event.last_exit
            log.warning("exabgp_restarted", restarts=event.restarts, reason=event.last_exit)
            for session in self.sessions.values():  # PeerState(down) came first for those that were up
                session.reason = f"ExaBGP restarted ({event.last_exit})"
                session.advertised = set()  # a new ExaBGP holds no routes
            return
        name = self._by_ip.get(getattr(event, "peer_ip", ""), "")
        s = self.sessions.get(name)
        if s is None:
            return  # an Ack, a Shutdown, or a neighbor that is no longer configured
        if isinstance(event, RoutesReceived | RoutesWithdrawn | EndOfRib) and s.state != ESTABLISHED:
            # e.g. the last UPDATEs of a session we just reset: they belong to a session that is gone
            log.debug("routes_from_session_not_up", peer=name, kind=type(event).__name__)
            return
        if isinstance(event, PeerState):
            await self._peer_state(name, s, event)
        elif isinstance(event, PeerOpen):
            # RFC 4724: a peer keeps forwarding across its restart only for the families its GR
            # capability lists; BIRD's default ("aware") lists none, so its routes go when it does.
            restarts = event.gr_time is not None and s.family in event.gr_families
            s.opened, s.peer_router_id, s.peer_as = True, event.router_id, event.asn
            s.peer_restart_time = event.gr_time if restarts else None
        elif isinstance(event, RoutesReceived):
            await self._emit(self.rib.update(name, event.prefixes, event.attributes))
            if not s.over_limit and self.rib.dropped(name):
                s.over_limit = True
                log.warning("max_prefixes_exceeded", peer=name, peer_ip=s.desired.peer_ip,
                            limit=self.max_prefixes, reason="more routes are dropped until a session reset")
        elif isinstance(event, RoutesWithdrawn):
            await self._emit(self.rib.withdraw(name, event.prefixes))
        elif isinstance(event, EndOfRib):
            s.eor_seen = True
            await self._emit(self.rib.end_of_rib(name, event.family))
            await self._maybe_sweep()
        elif isinstance(event, NotificationEvent):
            s.notification = diagnosis.notification_text(event.direction, event.code, event.subcode,
                                                         event.message, s.desired.local_as)
            log.info("notification", peer=name, peer_ip=event.peer_ip, reason=s.notification)

    async def _peer_state(self, name: str, s: _Session, event: PeerState) -> None:
        was_up = s.state == ESTABLISHED
        waiting = "Passive" if s.desired.passive else "Active"
        state = {"up": ESTABLISHED, "connected": "OpenSent", "down": waiting}[event.state]
        closed_previous, s.closing_previous = s.closing_previous and event.state == "down", False
        if event.state == "down" and not s.opened:
            s.failures += 1
        if state != s.state:
            s.since = self.clock.time()
        s.state = state
        if not closed_previous:
            s.reason = event.reason or ("TCP connected, waiting for OPEN" if state == "OpenSent" else None)
        if state == ESTABLISHED and not was_up:
            s.clear_evidence()
            s.over_limit = False
            if all(other.state == ESTABLISHED for other in self.sessions.values()):
                self._evidence = None  # nothing is sampled while all are up: the next sample is a baseline
            log.info("session_established", peer=name, peer_ip=s.desired.peer_ip,
                     reason=event.reason or "OPEN and KEEPALIVE exchanged")
            # Our whole table first, then End-of-RIB: a restarting peer sweeps what EoR did not cover.
            assert self.current is not None
            diff = self.rib.peer_up(self._peer_info(s, self.current))
            table = {o.prefix for o in diff.out if o.peer == name and isinstance(o, Announce)}
            replayed = sorted(s.advertised - table)
            await self._emit(diff)
            if replayed:
                await self._emit(RibDiff(out=tuple(Withdraw(name, p) for p in replayed)))
            await self.speaker.send([codec.end_of_rib(s.desired.peer_ip, s.family)])
        elif was_up and state != ESTABLISHED:
            # A NOTIFICATION (e.g. a Cease on shutdown) ends the session for good: routes are kept
            # only when it dropped without one (RFC 4724 §4.2).
            # ExaBGP itself went away (it is restarted): we are the restarting side, so every peer's
            # routes keep forwarding, GR or not, until re-learned (End-of-RIB) or the restart deadline.
            graceful = event.local or (s.peer_restart_time is not None and s.notification is None)
            keep_for = self.restart_deadline if event.local else None
            log.info("session_down", peer=name, peer_ip=s.desired.peer_ip, reason=s.reason, graceful=graceful)
            now = self.clock.monotonic()
            await self._emit(self.rib.peer_down(name, now, graceful=graceful, keep_for=keep_for))

    # ---------------------------------------------------------------- evidence (bgpd.diagnosis)

    def evidence_wanted(self) -> tuple[bool, tuple[ProbeTarget, ...]] | None:
        """What the next evidence sample should hold: None while every session is up (nothing to
        explain), else whether to read the GTSM drops and which peers to probe now."""
        down = [s for s in self.sessions.values() if s.state != ESTABLISHED]
        if not down:
            return None
        now = self.clock.monotonic()
        gtsm = any(s.desired.ttl_security is not None for s in down)
        return gtsm, tuple(self._probe_target(s) for s in down if self._probe_due(s, now))

    def _probe_due(self, s: _Session, now: float) -> bool:
        d = s.desired
        quiet = d.passive or d.password is not None or d.ttl_security is not None or s.opened
        # only once our own attempts failed: a probe that a healthy peer answers is a connection it
        # accepts and sees closed, which may delay its next attempt
        failing = s.failures >= PROBE_FAILURES or s.unanswered is not None
        due = s.probed is None or now - s.probed >= PROBE_EVERY
        return not quiet and failing and due and now - s.created >= PROBE_AFTER

    def _probe_target(self, s: _Session) -> ProbeTarget:
        d, node = s.desired, self.current
        own = None if node is None else node.ipv4 if d.family == 4 else node.ipv6
        return ProbeTarget(d.name, d.peer_ip, d.port, d.source_address or own)

    def _on_evidence(self, e: Evidence) -> None:
        """Take a sample; the log hears of a session's evidence when its kind changes, not its counts."""
        before = {name: s.evidence_kinds() for name, s in self.sessions.items()}
        self._take_evidence(e)
        for name, s in self.sessions.items():
            if s.evidence_kinds() != before[name]:
                log.info("session_diagnosed", peer=name, peer_ip=s.desired.peer_ip, reason=s.info)

    def _take_evidence(self, e: Evidence) -> None:
        previous, self._evidence = self._evidence, e
        for name, result in e.probes:
            if name in self.sessions and self.sessions[name].state != ESTABLISHED:
                self.sessions[name].probe, self.sessions[name].probed = result, self.clock.monotonic()
        for s in self.sessions.values():
            unanswered = [n for ip, port, n in e.syn_sent
                          if ip == s.desired.peer_ip and port == s.desired.port and n >= MIN_RETRANSMITS]
            if unanswered and s.state != ESTABLISHED:
                s.unanswered = max(s.unanswered or 0, *unanswered)
        if previous is None:
            return
        down = [diagnosis.Candidate(s.desired.name, s.desired.peer_ip, s.desired.password is not None,
                                    s.desired.ttl_security)
                for s in self.sessions.values() if s.state != ESTABLISHED]
        rise = (e.counters.rise_since(previous.counters) if e.counters and previous.counters
                else diagnosis.TcpCounters())
        drops = (diagnosis.gtsm_rise(e.gtsm_drops, previous.gtsm_drops)
                 if e.gtsm_drops is not None and previous.gtsm_drops is not None else {})
        for name, kind, count, shared in diagnosis.attribute(rise, drops, down):
            s = self.sessions[name]
            old = s.observations.get(kind)
            s.observations[kind] = (old.add(count, shared) if old
                                    else Observation(kind, count, self.clock.time(), shared))

    # ---------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        """When `tick` has something to do (monotonic seconds), or None. Cached: the app asks after
        every input, and only session changes, End-of-RIB, snapshots and ticks move it."""
        if not self._deadline_known:
            stale = (self.rib.status(name).stale_deadline for name in self.sessions)
            deadlines = [d for d in stale if d is not None]
            if not self.swept:
                deadlines.append(self._sweep_at)
            deadlines += self._retired.values()
            self._deadline, self._deadline_known = min(deadlines, default=None), True
        return self._deadline

    async def tick(self) -> None:
        self._deadline_known = False
        now = self.clock.monotonic()
        expired = self.rib.expire(now)
        if expired.fib:
            log.info("stale_routes_expired", routes=fib_size(expired.fib), reason="restart time passed")
        for name in [n for n, deadline in self._retired.items() if deadline <= now]:
            del self._retired[name]
            expired = _merge([expired, self.rib.remove_peer(name)])
        await self._emit(expired)
        await self._maybe_sweep()

    async def _maybe_sweep(self) -> None:
        """Once after start, when every session resynced (or at the deadline): remove what the
        previous run left that the RIB does not know (e.g. routes installed with an older metric)."""
        if self.swept or self.current is None:
            return
        resynced = all(s.eor_seen for s in self.sessions.values())
        if resynced or self.clock.monotonic() >= self._sweep_at:
            self.swept = True
            keep = self.rib.installed_prefixes()
            removed = await self.fib.sweep(keep)
            log.info("kernel_swept", removed=removed, reason="resynced" if resynced else "deadline")

    # ---------------------------------------------------------------- output

    async def _emit(self, diff: RibDiff) -> None:
        if diff.fib:
            await self.fib.apply(diff.fib)
        out = [item for item in diff.out if item.peer in self.sessions]  # never to a removed session
        for item in out:
            adj_out = self.sessions[item.peer].advertised
            if isinstance(item, Announce):
                adj_out.add(item.prefix)
            else:
                adj_out.discard(item.prefix)
        if out:
            await self.speaker.send(encode_outbound(out, self._ip_of))

    def _ip_of(self, session: str) -> str:
        return self.sessions[session].desired.peer_ip

    def counts(self) -> tuple[int, int, int]:
        """(sessions established, sessions configured, routes installed), cheap enough for every input."""
        up = sum(1 for s in self.sessions.values() if s.state == ESTABLISHED)
        return up, len(self.sessions), self.rib.installed

    def status(self) -> StatusReport:
        node = self.current
        configured = node.sessions if node else ()
        return StatusReport(
            node=self.node_name, as_number=node.as_number if node else None,
            router_id=node.router_id if node else None, store_source=self.store_source,
            revision=self.revision, stale=self.stale, errors=self.stale_errors,
            sessions=tuple(self._session_status(self.sessions[d.name]) for d in configured),
            routes_installed=self.rib.installed,
            routes_stale=sum(self.rib.status(d.name).stale for d in configured),
            exabgp_pid=self.speaker.pid, exabgp_restarts=self.exabgp_restarts,
            exabgp_last_exit=self.exabgp_last_exit, started=self.started, now=self.clock.time())

    def _session_status(self, s: _Session) -> SessionStatus:
        d, counts = s.desired, self.rib.status(s.desired.name)
        info = s.info
        if counts.over_limit:
            info += f"; {counts.dropped} routes dropped over the limit of {self.max_prefixes}"
        if counts.stale and counts.stale_deadline is not None:
            left = max(0.0, counts.stale_deadline - self.clock.monotonic())
            info += f"; {counts.stale} routes kept stale (graceful restart, at most {left:.0f} s more)"
        return SessionStatus(
            name=d.name, family=d.family, kind=d.kind, peer_ip=d.peer_ip, port=d.port,
            state="up" if s.state == ESTABLISHED else "start", since=s.since, info=info,
            routes_received=counts.received, routes_installed=counts.installed)


def encode_outbound(out: Iterable[Outbound], ip_of: Callable[[str], str]) -> list[str]:
    """RIB announcements as API commands, withdraws per prefix. Announcements are grouped per
    (peer, attributes), and peers that get the same prefixes with equal attributes (a reflector's
    clients) share each command: ExaBGP's API parses a command once for all its neighbors, and its
    parsing is what bounds how fast routes go out."""
    groups: dict[tuple[str, PathAttributes], list[str]] = {}
    withdraws: dict[str, list[str]] = {}
    for item in out:
        if isinstance(item, Announce):
            groups.setdefault((item.peer, item.attributes), []).append(item.prefix)
        else:
            withdraws.setdefault(item.peer, []).append(item.prefix)
    commands = [cmd for peer, prefixes in withdraws.items() for cmd in codec.withdraw(ip_of(peer), prefixes)]
    shared: dict[tuple[PathAttributes, tuple[str, ...]], list[str]] = {}
    for (peer, attrs), prefixes in groups.items():
        shared.setdefault((attrs, tuple(prefixes)), []).append(ip_of(peer))
    for (attrs, nlri), peers in shared.items():
        for i in range(0, len(nlri), MAX_NLRI_PER_COMMAND):
            commands.append(codec.announce(peers, attrs, nlri[i:i + MAX_NLRI_PER_COMMAND]))
    return commands


def _action_reason(action: SessionAction) -> str:
    """Why a session is added, removed, reset or updated: what changed, else the resources behind it."""
    if action.changed:
        return ", ".join(action.changed)
    if action.kind == "remove":
        return "no longer configured"
    session = action.session or action.previous
    return "configured by " + ", ".join(session.origin) if session and session.origin else "configured"


def _log_route_changes(steps: Plan, revision: str) -> None:
    """What the node originates or installs by configuration, with the reason: the new revision."""
    reason = f"configuration revision {revision[:12]}"
    changes = {
        "export_announced": [str(e.prefix) for e in steps.announce],
        "export_withdrawn": [str(e.prefix) for e in steps.withdraw],
        "static_route_added": [str(r.dst) for r in steps.static_add],
        "static_route_removed": [str(r.dst) for r in steps.static_remove],
        "blackhole_added": [str(p) for p in steps.blackhole_add],
        "blackhole_removed": [str(p) for p in steps.blackhole_remove],
    }
    for event, prefixes in changes.items():
        for prefix in prefixes[:100]:  # the first hundred say enough; the count says the rest
            log.info(event, prefix=prefix, reason=reason)
        if len(prefixes) > 100:
            log.info(event, count=len(prefixes), reason=reason)


def _merge(diffs: Iterable[RibDiff]) -> RibDiff:
    fib: list[FibChange] = []
    out: list[Outbound] = []
    for d in diffs:
        fib += d.fib
        out += d.out
    return RibDiff(tuple(fib), tuple(out))
