"""The RIB: per-session Adj-RIB-In, best path and ECMP per prefix, graceful-restart marks, adopted
kernel routes, and the incremental FIB diff and per-peer announcements each event causes.

Memory: a session's routes are one ``prefix -> PathAttributes`` dict; attribute objects are shared
between prefixes. Import-policy results are kept only where they differ from what was received.
Nothing per prefix is stored for the Loc-RIB: a prefix's best path is recomputed from the few
Adj-RIB-Ins when an event touches it (before and after the change), which is what the diff needs.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import chain, groupby, repeat
from operator import is_, itemgetter
from typing import TypeVar

from bgpd.bgp import Family, PathAttributes
from bgpd.rib.adjin import AdjRibIn, Importer, PeerStatus
from bgpd.rib.decision import select
from bgpd.rib.export import Path, export_chain, may_advertise, outbound, rewrite
from bgpd.rib.fib import Announce, FibChange, FibKind, Outbound, RibDiff, Withdraw, fib_grouped
from bgpd.rib.peer import LocalInfo, PeerInfo, local_attributes
from bgpd.rib.policy import calico_exports
from bgpd.rib.prefix import DEFAULT_ROUTES, covered_by, family_of, none_martian

Installed = tuple[FibKind, tuple[str, ...]]
FibEntry = Installed | None
State = tuple[Path | None, FibEntry]
FibDecision = tuple[str, tuple[str, ...] | None, FibKind]  # one prefix's kernel change, before grouping
_BLACKHOLE: FibEntry = ("blackhole", ())
V = TypeVar("V")
_attrs_of = itemgetter(1)


def _drop(table: dict[str, V], prefixes: Sequence[str]) -> None:
    """Remove ``prefixes`` from ``table`` where present: the loop runs in C (``deque`` consumes the map)."""
    deque(map(table.pop, prefixes, repeat(None)), maxlen=0)


def _installed_by(state: State) -> str | None:
    """The session whose route is the best one of an installed prefix (for its status count)."""
    path, entry = state
    return path[0].name if entry is not None and path is not None and path[0] is not None else None


class Rib:
    """All routing state of one node. Every mutating call returns the `RibDiff` it caused."""

    def __init__(self, local: LocalInfo) -> None:
        self._local = local
        self._local_paths = self._paths_of(local)
        self._static = dict(local.static_routes)
        self._own = self._local_paths.keys() | local.blackholes | self._static.keys()
        self._rewrites: dict[tuple[int, ...], tuple[object, ...]] = {}
        self._gates: dict[tuple[int, ...], tuple[object, ...]] = {}
        self._entries: dict[str, Installed] = {}
        self._attributes: dict[PathAttributes, PathAttributes] = {}
        self._adj: dict[str, AdjRibIn] = {}
        self._adopted: dict[str, tuple[str, ...]] = {}
        self._adopted_deadline: float | None = None
        self._installed = 0

    # ------------------------------------------------------------------ configuration

    def set_local(self, local: LocalInfo) -> RibDiff:
        if local == self._local:
            return RibDiff()
        old = self._local
        loop_checks_changed = (old.as_number, old.router_id, old.cluster_id) != (
            local.as_number, local.router_id, local.cluster_id)

        def mutate() -> None:
            self._local = local
            self._local_paths = self._paths_of(local)
            self._static = dict(local.static_routes)
            self._own = self._local_paths.keys() | local.blackholes | self._static.keys()
            if loop_checks_changed:
                for adj in self._adj.values():
                    adj.reimport(Importer(adj.info, self._local))

        return self._change_all(mutate)

    def set_peer(self, info: PeerInfo) -> RibDiff:
        """Add a session or change one (filters, router id, ...): its routes are re-imported."""
        adj = self._adj.get(info.name)
        if adj is None:
            self._adj[info.name] = AdjRibIn(info)
            return RibDiff()
        if adj.info == info:
            return RibDiff()

        def mutate() -> None:
            assert adj is not None
            adj.info = info
            adj.reimport(Importer(adj.info, self._local))

        return self._change_all(mutate)

    def remove_peer(self, name: str) -> RibDiff:
        def mutate() -> None:
            del self._adj[name]

        diff = self._change(self._adj[name].prefixes(), mutate, targets_changed=True)
        return self._merge(diff, self._check_adopted())

    # ------------------------------------------------------------------ session events

    def peer_up(self, info: PeerInfo) -> RibDiff:
        """Session established (``info`` carries the OPEN's router id and GR time): it gets our table."""
        old = self._adj.get(info.name)
        if old is None:
            self._adj[info.name] = old = AdjRibIn(info)
        if not old.established and not old.routes and not old.stale:
            # Nothing of this session is in the RIB, so it changes no decision: just send it the table.
            old.info, old.established, old.eor, old.dropped = info, True, set(), 0
            return self._dump(info)

        def mutate() -> None:
            assert old is not None
            old.info = info
            old.established = True
            old.eor = set()
            old.dropped = 0
            old.reimport(Importer(old.info, self._local))

        return self._change_all(mutate)

    def peer_down(self, name: str, now: float, graceful: bool, keep_for: float | None = None) -> RibDiff:
        """Session lost. With graceful restart its routes stay, stale, until End-of-RIB or the deadline:
        the peer's restart time, or ``keep_for`` seconds when given (our own speaker restarting)."""
        adj = self._adj[name]
        restart = adj.info.gr_restart_time if keep_for is None else keep_for
        keep = graceful and restart is not None

        def mutate() -> None:
            adj.established = False
            if keep:
                assert restart is not None
                adj.stale.update(adj.routes)
                adj.stale_deadline = now + restart
            else:
                adj.stale.clear()
                adj.changed.clear()
                adj.stale_deadline = None
            adj.routes = {}

        if keep and not any(a.routes or a.stale for a in self._adj.values() if a is not adj):
            # Its routes, now stale, are still the only ones: no best path or next hop changes.
            mutate()
            return RibDiff()
        prefixes = adj.prefixes()
        if not keep and self._alone(adj, prefixes):
            held = self._held(adj, prefixes, replaced=True)
            old_targets, old_local = self._targets(), self._local
            mutate()
            return self._unlearn(adj, held, old_targets, self._targets(), old_local)
        return self._change(prefixes, mutate, targets_changed=True, source=adj)

    def update(self, peer: str, prefixes: Iterable[str], attrs: PathAttributes) -> RibDiff:
        """Routes received: ``prefixes`` (one UPDATE's NLRI) with shared ``attrs``."""
        adj = self._adj[peer]
        attrs = self._shared_attributes(attrs)
        imported = Importer(adj.info, self._local)
        batch = prefixes if isinstance(prefixes, tuple | list) else list(prefixes)
        if self._fresh(adj, batch):
            return self._learn(adj, batch, attrs, imported)
        if self._refreshed(adj, batch, attrs, imported):
            adj.routes.update(dict.fromkeys(batch, attrs))
            _drop(adj.stale, batch)
            return RibDiff()
        limit = adj.info.max_prefixes
        fib: list[FibDecision] = []
        out: list[Outbound] = []
        targets = self._targets()
        state, others = self._state_from, self._others(adj)
        routes, stale = adj.routes, adj.stale
        for prefix in batch:
            if limit is not None and len(routes) >= limit and prefix not in routes:
                adj.dropped += 1
                continue
            before = state(adj, others, prefix)
            routes[prefix] = attrs
            if stale:
                stale.pop(prefix, None)
            result = imported(prefix, attrs)
            if self._adopted and result is not None:
                # Re-learned: the adopted kernel route has done its job and must not come back later.
                # A copy import rejects (e.g. a peer's block sent back by a ToR, an AS loop) is none.
                self._adopted.pop(prefix, None)
            adj.record(prefix, attrs, result)
            self._diff(
                prefix, before, state(adj, others, prefix), old_targets=targets, new_targets=targets,
                old_local=self._local, fib=fib, out=out,
            )
        return RibDiff(fib_grouped(fib), tuple(out))

    def _alone(self, adj: AdjRibIn, batch: Sequence[str], *, replacing_adopted: bool = False) -> bool:
        """Whether ``adj`` is the only possible source of every prefix in ``batch``: no other session
        holds one, the node owns none, none is an adopted kernel route (``replacing_adopted``: unless
        the caller replaces those itself, as `_learn` does). (Set operations on a whole UPDATE or
        session: the common case costs no per-prefix test.)"""
        return (self._own.isdisjoint(batch)
                and (replacing_adopted or self._adopted.keys().isdisjoint(batch))
                and all(o.routes.keys().isdisjoint(batch) and o.stale.keys().isdisjoint(batch)
                        for o in self._others(adj)))

    def _shared_attributes(self, attrs: PathAttributes) -> PathAttributes:
        """One object per distinct attribute set: a table sent one prefix per UPDATE brings a new
        (equal) object per prefix, which would cost memory per route and miss every per-attributes
        cache. Bounded: when full it starts over (held objects stay valid, only sharing restarts)."""
        shared = self._attributes.get(attrs)
        if shared is not None:
            return shared
        if len(self._attributes) >= 65536:
            self._attributes.clear()
        self._attributes[attrs] = attrs
        return attrs

    @staticmethod
    def _fits(adj: AdjRibIn, batch: Sequence[str]) -> bool:
        """Whether ``batch`` holds each prefix once and all of it fits in the session's limit (else
        the per-prefix path decides which prefix is no news and which one is dropped)."""
        limit = adj.info.max_prefixes
        if limit is not None and len(adj.routes) + len(batch) > limit:
            return False
        return len(set(batch)) == len(batch)

    def _fresh(self, adj: AdjRibIn, batch: Sequence[str]) -> bool:
        """Whether every prefix of ``batch`` is new to the RIB: unknown to ``adj`` itself, `_fits`,
        and `_alone` but for adopted kernel routes (after our own restart the peers' routes replace
        those: `_learn` writes the kernel only where the next hops differ)."""
        return (self._fits(adj, batch)
                and adj.routes.keys().isdisjoint(batch) and adj.stale.keys().isdisjoint(batch)
                and self._alone(adj, batch, replacing_adopted=True))

    def _refreshed(self, adj: AdjRibIn, batch: Sequence[str], attrs: PathAttributes, imported: Importer
                   ) -> bool:
        """Whether ``batch`` re-sends, as they were, routes ``adj`` holds stale from before its graceful
        restart: each one stale with these very attributes, imported unchanged (no filters, no
        martians, BGP's rules keep ``attrs``: so nothing of them in ``adj.changed``), `_fits`, and
        `_alone`. Then no prefix's `State` changes (stale or not is no part of it; a lone candidate
        needs no decision), nor its import result or an adopted route: only the stale mark goes."""
        stale, changed = adj.stale, adj.changed
        return (bool(stale) and all(map(is_, map(stale.get, batch), repeat(attrs)))
                and self._fits(adj, batch) and adj.routes.keys().isdisjoint(batch)
                and (not changed or changed.keys().isdisjoint(batch))
                and not imported.filtered and imported.checked(attrs) is attrs and none_martian(batch)
                and self._alone(adj, batch))

    @staticmethod
    def _held(adj: AdjRibIn, batch: Sequence[str], *, replaced: bool = False) -> Mapping[str, PathAttributes]:
        """The routes of ``batch`` that ``adj`` holds and imported (its candidates). ``replaced``: the
        caller then replaces ``adj.routes`` with a new dict (a session's loss) rather than edit it, so
        when ``batch`` is the whole table, nothing rejected, the answer is that table, not a copy of
        a million routes."""
        if not adj.stale and not adj.changed:
            if replaced and len(batch) == len(adj.routes):
                return adj.routes
            return {p: a for p, a in zip(batch, map(adj.routes.get, batch), strict=True) if a is not None}
        held = {}
        for prefix in batch:
            attrs = adj.routes.get(prefix)
            if attrs is None:
                attrs = adj.stale.get(prefix)
            if attrs is not None and adj.changed:
                attrs = adj.changed.get(prefix, attrs)
            if attrs is not None:
                held[prefix] = attrs
        return held

    def _unlearn(self, adj: AdjRibIn, held: Mapping[str, PathAttributes],
                 old_targets: Mapping[str, PeerInfo], new_targets: Mapping[str, PeerInfo],
                 old_local: LocalInfo) -> RibDiff:
        """The diff of `_held` routes of an `_alone` session that are gone (no route is left for those
        prefixes): one kernel delete for all, and withdrawals where the route had been sent;
        per-attributes work once, as in `_learn`."""
        source = adj.info
        gone = tuple(self._installable_of(tuple(held)))
        out: list[Outbound] = []
        targets = [(n, t) for n in new_targets if (t := old_targets.get(n)) is not None]
        for attrs, run in groupby(held.items() if targets else (), _attrs_of):
            prefixes = [prefix for prefix, _ in run]
            out += (Withdraw(name, prefix) for name, prefix, _ in
                    self._sent((source, attrs), prefixes, targets, old_local))
        self._installed -= len(gone)
        adj.installed -= len(gone)
        return RibDiff((FibChange(gone, None),) if gone else (), tuple(out))

    def _learn(self, adj: AdjRibIn, batch: Sequence[str], attrs: PathAttributes, imported: Importer
               ) -> RibDiff:
        """`update` for a `_fresh` batch: each prefix goes from no route at all (or an adopted kernel
        route, never announced) to ``adj``'s, so its diff is the kernel install and the announcements
        of that route alone, and the work that depends only on the shared attributes (next hops, who
        may be sent the route) is done once: one FibChange per import result (one per UPDATE unless
        filters rewrite some prefixes)."""
        adj.routes.update(dict.fromkeys(batch, attrs))
        local, source = self._local, adj.info
        groups = self._imported_groups(adj, batch, attrs, imported)
        targets = list(self._targets().items())
        fib: list[FibChange] = []
        out: list[Outbound] = []
        for result, prefixes in groups:
            fib += self._install(adj, prefixes, self._unicast(result.next_hop)[1])
            out += (Announce(name, prefix, new) for name, prefix, new in
                    self._sent((source, result), prefixes, targets, local))
        return RibDiff(tuple(fib), tuple(out))

    def _install(self, adj: AdjRibIn, prefixes: Sequence[str], nexthops: tuple[str, ...]) -> list[FibChange]:
        """The kernel changes (counts kept) of accepted ``prefixes`` that ``adj`` alone now routes via
        ``nexthops``. An adopted route they replace leaves `_adopted` (it must not come back when they
        are withdrawn); as in `_diff`, its kernel entry is rewritten only where the next hops differ,
        and deleted where the prefix may not be installed (adopted routes are kept regardless)."""
        installed = self._installable_of(prefixes)
        adopted = self._adopted
        replaced: dict[str, tuple[str, ...]] = {}
        if adopted and not adopted.keys().isdisjoint(prefixes):
            replaced = {p: hops for p in prefixes if (hops := adopted.pop(p, None)) is not None}
        adj.installed += len(installed)
        self._installed += len(installed) - len(replaced)
        if not replaced:
            return [FibChange(tuple(installed), nexthops)] if installed else []
        kept = set(installed)
        written = tuple(p for p in installed if replaced.get(p) != nexthops)
        gone = tuple(p for p in replaced if p not in kept)
        return [FibChange(group, hops) for group, hops in ((written, nexthops), (gone, None)) if group]

    @staticmethod
    def _imported_groups(adj: AdjRibIn, batch: Sequence[str], attrs: PathAttributes, imported: Importer
                         ) -> list[tuple[PathAttributes, Sequence[str]]]:
        """The accepted prefixes of ``batch`` by import result, in runs; results that differ from
        ``attrs`` are recorded in ``adj.changed``. Without filters and martians, which the common
        UPDATE has, the whole batch shares one result, decided without a per-prefix call."""
        checked = imported.checked(attrs)
        if checked is None or (not imported.filtered and none_martian(batch)):
            if checked is not attrs:
                adj.changed.update(dict.fromkeys(batch, checked))
            return [] if checked is None else [(checked, batch)]
        groups: list[tuple[PathAttributes, Sequence[str]]] = []
        run: list[str] = []
        last: PathAttributes | None = None
        for prefix in batch:
            result = imported(prefix, attrs)
            if result is not attrs:
                adj.changed[prefix] = result
                if result is None:
                    continue
            if result is not last:
                last, run = result, []
                groups.append((result, run))
            run.append(prefix)
        return groups

    def withdraw(self, peer: str, prefixes: Iterable[str]) -> RibDiff:
        adj = self._adj[peer]
        batch = prefixes if isinstance(prefixes, tuple | list) else list(prefixes)
        if self._alone(adj, batch):
            return self._forget(adj, batch)
        fib: list[FibDecision] = []
        out: list[Outbound] = []
        targets = self._targets()
        state, others = self._state_from, self._others(adj)
        for prefix in batch:
            if prefix not in adj.routes and prefix not in adj.stale:
                continue
            before = state(adj, others, prefix)
            adj.routes.pop(prefix, None)
            adj.stale.pop(prefix, None)
            adj.changed.pop(prefix, None)
            self._diff(
                prefix, before, state(adj, others, prefix), old_targets=targets, new_targets=targets,
                old_local=self._local, fib=fib, out=out,
            )
        return RibDiff(fib_grouped(fib), tuple(out))

    def _forget(self, adj: AdjRibIn, batch: Sequence[str]) -> RibDiff:
        """Remove every route of ``batch`` from ``adj``, an `_alone` source of it (a withdrawal, or the
        sweep of stale routes): no route is left for those prefixes, so the diff is `_unlearn`'s."""
        held = self._held(adj, batch)
        _drop(adj.routes, batch)
        if adj.stale:
            _drop(adj.stale, batch)
        if adj.changed:
            _drop(adj.changed, batch)
        targets = self._targets()
        return self._unlearn(adj, held, targets, targets, self._local)

    def end_of_rib(self, peer: str, family: Family) -> RibDiff:
        """The peer finished sending ``family``: what is still stale of it was not re-announced."""
        adj = self._adj[peer]
        adj.eor.add(family)
        gone = [p for p in adj.stale if family_of(p) == family]
        diff = self._sweep(adj, gone)
        if not adj.stale:
            adj.stale_deadline = None
        return self._merge(diff, self._check_adopted())

    def expire(self, now: float) -> RibDiff:
        """Sweep stale routes and adopted kernel routes whose deadline has passed."""
        diff = RibDiff()
        for adj in self._adj.values():
            if adj.stale_deadline is not None and now >= adj.stale_deadline:
                diff = self._merge(diff, self._sweep(adj, list(adj.stale)))
                adj.stale_deadline = None
        if self._adopted_deadline is not None and now >= self._adopted_deadline:
            diff = self._merge(diff, self._drop_adopted())
        return diff

    def next_deadline(self) -> float | None:
        """When `expire` next has work to do (the reconciler's timer), or None."""
        deadlines = [a.stale_deadline for a in self._adj.values() if a.stale_deadline is not None]
        if self._adopted_deadline is not None:
            deadlines.append(self._adopted_deadline)
        return min(deadlines, default=None)

    def adopt(self, routes: Mapping[str, tuple[str, ...]], deadline: float) -> None:
        """Restarter: routes found in the kernel (ours) are taken as the FIB until every configured
        session has sent End-of-RIB for its families, or ``deadline``. They are never announced."""
        self._adopted = {p: tuple(sorted(set(nh))) for p, nh in routes.items()}
        self._adopted_deadline = deadline
        self._installed = len(self.fib())

    # ------------------------------------------------------------------ queries

    def fib(self) -> dict[str, FibChange]:
        """The whole FIB recomputed from scratch (for a full resync and for checking the diffs)."""
        result: dict[str, FibChange] = {}
        for prefix in self._all_prefixes():
            entry = self._state(prefix)[1]
            if entry is not None:
                result[prefix] = FibChange((prefix,), entry[1], entry[0])
        return result

    def installed_prefixes(self) -> set[str]:
        """The prefixes of `fib()`, without building it (the start-up sweep keeps these). A prefix that
        one session alone holds, the bulk of any table, is decided from that session's route alone:
        `_state` per prefix would take seconds at 1M routes, on the loop that feeds the kernel."""
        sources = [a for a in self._adj.values() if a.routes or a.stale]
        shared = Counter(chain.from_iterable(a.prefixes() for a in sources)) if len(sources) > 1 else None
        check = bool(self._local.kernel_reject)
        keep: set[str] = set()
        rest = set(self._own) | self._adopted.keys()  # the general decision for these
        for adj in sources:
            changed = adj.changed
            for prefix in adj.prefixes():
                if prefix in rest or (shared is not None and shared[prefix] > 1):
                    rest.add(prefix)
                elif changed and changed.get(prefix, prefix) is None:
                    continue  # import rejected it
                elif (check or prefix in DEFAULT_ROUTES) and not self._installable(prefix):
                    continue
                else:
                    keep.add(prefix)
        keep.update(p for p in rest if self._state(p)[1] is not None)
        return keep

    def adj_out(self, peer: str) -> dict[str, PathAttributes]:
        """What ``peer`` should have received from us, recomputed from scratch."""
        target = self._adj[peer].info
        result: dict[str, PathAttributes] = {}
        for prefix in self._all_prefixes():
            path = self._state(prefix)[0]
            attrs = None if path is None else outbound(path, prefix, target, self._local)
            if attrs is not None:
                result[prefix] = attrs
        return result

    def best(self, prefix: str) -> Path | None:
        return self._state(prefix)[0]

    def received(self) -> Iterator[tuple[str, str, PathAttributes]]:
        """(session, prefix, attributes after import) of every route held, stale ones included;
        routes import policy rejected are left out (for CalicoNodeStatus' RIB entries)."""
        for name, adj in self._adj.items():
            for prefix in adj.prefixes():
                candidate = adj.candidate(prefix)
                if candidate is not None:
                    yield name, prefix, candidate.attrs

    def status(self, peer: str) -> PeerStatus:
        return self._adj[peer].status()

    def dropped(self, peer: str) -> int:
        """New prefixes the session's max-prefix limit refused (cheap enough to ask per UPDATE)."""
        return self._adj[peer].dropped

    @property
    def stale(self) -> int:
        """Routes kept from sessions that went down gracefully."""
        return sum(len(adj.stale) for adj in self._adj.values())

    @property
    def installed(self) -> int:
        """Prefixes with a kernel route (kept up to date by the diffs)."""
        return self._installed

    # ------------------------------------------------------------------ selection

    @staticmethod
    def _paths_of(local: LocalInfo) -> dict[str, PathAttributes]:
        return {str(e.prefix): local_attributes(e) for e in local.exports}

    def _state(self, prefix: str) -> State:
        """The best path (for announcements) and the kernel entry (for the FIB) of one prefix."""
        if prefix in self._own:
            # The node's own prefixes win over anything learned, and a learned copy is never installed;
            # so do `reachableBy` routes (static, not announced): a learned copy waits in the RIB.
            own = self._local_paths.get(prefix)
            via = self._static.get(prefix)
            kernel: FibEntry = None if via is None else ("unicast", (via,))
            if prefix in self._local.blackholes:
                kernel = _BLACKHOLE
            return (None if own is None else (None, own)), kernel
        cands = []
        for adj in self._adj.values():
            c = adj.candidate(prefix)
            if c is not None:
                cands.append(c)
        if not cands:
            adopted = self._adopted.get(prefix)
            return None, (None if adopted is None else ("unicast", adopted))
        if len(cands) == 1:
            best = cands[0]
            entry = self._unicast(best.attrs.next_hop)
        else:
            best, group = select(cands)
            entry = ("unicast", tuple(sorted({c.attrs.next_hop for c in group})))
        return (best.peer, best.attrs), (entry if self._installable(prefix) else None)

    def _unicast(self, next_hop: str) -> Installed:
        """One shared entry per next hop: diffs compare it by identity first, and the kernel encoder
        reuses a message template while consecutive routes carry the same next-hop object."""
        entry = self._entries.get(next_hop)
        if entry is None:
            if len(self._entries) > 4096:
                self._entries.clear()
            entry = self._entries[next_hop] = ("unicast", (next_hop,))
        return entry

    def _others(self, adj: AdjRibIn) -> list[AdjRibIn]:
        """The sessions besides ``adj`` that hold any route (the only ones that can compete)."""
        return [a for a in self._adj.values() if a is not adj and (a.routes or a.stale)]

    def _state_from(self, adj: AdjRibIn, others: list[AdjRibIn], prefix: str) -> State:
        """`_state(prefix)` for an event of session ``adj``; ``others`` = `_others(adj)` now.

        The hot path of a session's UPDATEs: when no other session holds the prefix and it is not
        the node's own, the answer comes from ``adj`` alone, without candidates and the decision
        process (the property test checks it against `_state` through `fib()` and `adj_out()`).
        """
        if prefix in self._own:
            return self._state(prefix)
        for other in others:
            if prefix in other.routes or prefix in other.stale:
                return self._state(prefix)
        attrs = adj.routes.get(prefix)
        if attrs is None:
            attrs = adj.stale.get(prefix)
        if attrs is not None and adj.changed:
            attrs = adj.changed.get(prefix, attrs)  # the import result where it differs
        if attrs is None:
            adopted = self._adopted.get(prefix) if self._adopted else None
            return None, (None if adopted is None else ("unicast", adopted))
        return (adj.info, attrs), (self._unicast(attrs.next_hop) if self._installable(prefix) else None)

    def _installable_of(self, prefixes: Sequence[str]) -> Sequence[str]:
        """The prefixes that may be installed: all, without a check each, unless the node rejects
        some CIDRs or one of them is a default route."""
        if not self._local.kernel_reject and DEFAULT_ROUTES.isdisjoint(prefixes):
            return prefixes
        return [prefix for prefix in prefixes if self._installable(prefix)]

    def _installable(self, prefix: str) -> bool:
        if prefix in DEFAULT_ROUTES:
            return self._local.install_default
        return not covered_by(prefix, self._local.kernel_reject)

    def _all_prefixes(self) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(self._local_paths)
        seen.update(dict.fromkeys(self._local.blackholes))
        seen.update(dict.fromkeys(self._static))
        for adj in self._adj.values():
            seen.update(dict.fromkeys(adj.routes))
            seen.update(dict.fromkeys(adj.stale))
        seen.update(dict.fromkeys(self._adopted))
        return list(seen)

    # ------------------------------------------------------------------ diffs

    def _targets(self) -> dict[str, PeerInfo]:
        return {name: adj.info for name, adj in self._adj.items() if adj.established}

    def _change(
        self, prefixes: Iterable[str], mutate: Callable[[], None], targets_changed: bool = False,
        source: AdjRibIn | None = None,
    ) -> RibDiff:
        """Run ``mutate`` and diff every prefix in ``prefixes`` (taken before the mutation).

        ``source``: the one session whose routes ``mutate`` changes (it stays in the RIB), so states
        come from `_state_from` (a session going down with 1M routes must not run the decision
        process 2M times)."""
        old_local, old_targets = self._local, self._targets()
        state: Callable[[str], State] = self._state
        if source is not None:
            others = self._others(source)
            before = [(p, self._state_from(source, others, p)) for p in prefixes]
        else:
            before = [(p, state(p)) for p in prefixes]
        mutate()
        if source is not None:
            after_others = self._others(source)
            state = partial(self._state_from, source, after_others)
        new_targets = self._targets() if targets_changed else old_targets
        fib: list[FibDecision] = []
        out: list[Outbound] = []
        for prefix, old in before:
            self._diff(
                prefix, old, state(prefix), old_targets=old_targets, new_targets=new_targets,
                old_local=old_local, fib=fib, out=out,
            )
        return RibDiff(fib_grouped(fib), tuple(out))

    def _change_all(self, mutate: Callable[[], None]) -> RibDiff:
        """A configuration change: every prefix is diffed, before and after, old config against new."""
        old_local, old_targets = self._local, self._targets()
        before = {p: self._state(p) for p in self._all_prefixes()}
        mutate()
        new_targets = self._targets()
        fib: list[FibDecision] = []
        out: list[Outbound] = []
        for prefix in [*before, *(p for p in self._all_prefixes() if p not in before)]:
            state = before.get(prefix, (None, None))
            self._diff(
                prefix, state, self._state(prefix), old_targets=old_targets, new_targets=new_targets,
                old_local=old_local, fib=fib, out=out,
            )
        return RibDiff(fib_grouped(fib), tuple(out))

    def _diff(
        self,
        prefix: str,
        before: State,
        after: State,
        *,
        old_targets: Mapping[str, PeerInfo],
        new_targets: Mapping[str, PeerInfo],
        old_local: LocalInfo,
        fib: list[FibDecision],
        out: list[Outbound],
    ) -> None:
        old_path, old_entry = before
        new_path, new_entry = after
        if old_entry is not new_entry and old_entry != new_entry:
            self._installed += (new_entry is not None) - (old_entry is not None)
            fib.append((prefix, None, "unicast") if new_entry is None
                       else (prefix, new_entry[1], new_entry[0]))
        was, now = _installed_by(before), _installed_by(after)
        if was != now:
            for name, step in ((was, -1), (now, 1)):
                adj = self._adj.get(name) if name else None
                if adj is not None:
                    adj.installed += step
        if old_path == new_path and old_targets is new_targets and old_local is self._local:
            return
        for name, target in new_targets.items():
            old_target = old_targets.get(name)
            old = None
            if old_path is not None and old_target is not None:
                old = self._outbound(old_path, prefix, old_target, old_local)
            new = None if new_path is None else self._outbound(new_path, prefix, target, self._local)
            if new is not None and new != old:
                out.append(Announce(name, prefix, new))
            elif new is None and old is not None:
                out.append(Withdraw(name, prefix))

    def _dump(self, target: PeerInfo) -> RibDiff:
        out: list[Outbound] = []
        for prefix in self._all_prefixes():
            path = self._state(prefix)[0]
            attrs = None if path is None else self._outbound(path, prefix, target, self._local)
            if attrs is not None:
                out.append(Announce(target.name, prefix, attrs))
        return RibDiff((), tuple(out))

    def _outbound(self, path: Path, prefix: str, target: PeerInfo, local: LocalInfo) -> PathAttributes | None:
        """`outbound`, with the work shared by all prefixes that share attributes: BGP's own rules
        (`may_advertise`) and the rewrite are computed once per (attributes, source, target, local).
        Cheaper, and the speaker packs announcements with the same attributes object into one UPDATE."""
        gate = self._shared(self._gates, path[1], path[0], target, local, gated=True)
        if gate is None:
            return None
        out = export_chain(path, prefix, target, local)
        return None if out is None else self._rewritten(gate, out, path, target, local)

    def _rewritten(self, gate: PathAttributes, out: PathAttributes, path: Path, target: PeerInfo,
                   local: LocalInfo) -> PathAttributes:
        """What is sent for ``out``, the export chain's result for ``path``: the path's shared rewrite
        (``gate``) when the chain kept its attributes, else the rewrite of what a filter made of them."""
        if out is path[1]:
            return gate
        rewritten = self._shared(self._rewrites, out, path[0], target, local, gated=False)
        assert rewritten is not None  # only a gated rewrite can be refused
        return rewritten

    def _sent(self, path: Path, prefixes: Sequence[str], targets: Iterable[tuple[str, PeerInfo]],
              local: LocalInfo) -> Iterator[tuple[str, str, PathAttributes]]:
        """(session, prefix, attributes) of every route of ``prefixes`` with ``path`` that goes to one of
        ``targets``: `_outbound` for a batch. Calico's export policy, the same for every session
        without filters, judges each prefix once, not once per session: a ToR's 100k routes,
        none of which goes to the node's mesh peers, would otherwise cost 100k checks per peer."""
        exported: list[tuple[str, PathAttributes]] | None = None
        for name, target in targets:
            gate = self._shared(self._gates, path[1], path[0], target, local, gated=True)
            if gate is None:
                continue
            if target.filters:
                for prefix in prefixes:
                    new = self._outbound(path, prefix, target, local)
                    if new is not None:
                        yield name, prefix, new
                continue
            if exported is None:
                exported = calico_exports(local.export_policy, prefixes, path[1])
            for prefix, out in exported:
                if family_of(prefix) in target.families:
                    yield name, prefix, self._rewritten(gate, out, path, target, local)

    @staticmethod
    def _shared(cache: dict[tuple[int, ...], tuple[object, ...]], attrs: PathAttributes,
                source: PeerInfo | None, target: PeerInfo, local: LocalInfo, *, gated: bool
                ) -> PathAttributes | None:
        """The rewrite of ``attrs`` for ``target``, remembered by the identities of the four objects
        (the entry keeps them alive); ``gated``: None where BGP's rules forbid sending it."""
        key = (id(attrs), id(source), id(target), id(local))
        hit = cache.get(key)
        if hit is not None and hit[0] is attrs and hit[1] is source and hit[2] is target and hit[3] is local:
            return hit[4]  # type: ignore[return-value]
        if len(cache) > 4096:
            cache.clear()
        allowed = not gated or may_advertise(source, attrs, target, local)
        result = rewrite(source, attrs, target, local) if allowed else None
        cache[key] = (attrs, source, target, local, result)
        return result

    def _sweep(self, adj: AdjRibIn, prefixes: list[str]) -> RibDiff:
        """Drop ``prefixes``, stale routes of ``adj``. `_forget` also clears them from ``adj.routes``:
        harmless, a prefix is never both fresh and stale (a route moves from one table to the other)."""
        if self._alone(adj, prefixes):
            return self._forget(adj, prefixes)

        def mutate() -> None:
            for prefix in prefixes:
                del adj.stale[prefix]
                adj.forget(prefix)

        return self._change(prefixes, mutate, source=adj)

    def _check_adopted(self) -> RibDiff:
        if not self._adopted:
            return RibDiff()
        done = all(adj.eor >= set(adj.info.families) for adj in self._adj.values())
        return self._drop_adopted() if done else RibDiff()

    def _drop_adopted(self) -> RibDiff:
        prefixes = list(self._adopted)

        def mutate() -> None:
            self._adopted = {}
            self._adopted_deadline = None

        return self._change(prefixes, mutate)

    @staticmethod
    def _merge(a: RibDiff, b: RibDiff) -> RibDiff:
        if not b:
            return a
        if not a:
            return b
        return RibDiff(a.fib + b.fib, a.out + b.out)
