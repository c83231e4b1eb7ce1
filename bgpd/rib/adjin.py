"""One session's Adj-RIB-In: the routes as received, the import results that differ from them,
and the session's graceful-restart and max-prefix bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bgpd.bgp import Family, PathAttributes
from bgpd.rib.decision import Candidate
from bgpd.rib.peer import LocalInfo, PeerInfo
from bgpd.rib.policy import RouteContext, as_loop, import_policy
from bgpd.rib.prefix import is_martian


@dataclass(frozen=True, slots=True)
class PeerStatus:
    name: str
    established: bool
    received: int  # prefixes held from the current session
    accepted: int  # of those, the ones import policy let through
    stale: int  # prefixes kept from the previous session (graceful restart)
    installed: int  # prefixes whose best route, in the kernel, is this session's
    dropped: int  # new prefixes refused by the max-prefix limit this session
    over_limit: bool  # the session sent more than its limit; a reset or refresh relearns the rest
    stale_deadline: float | None


class AdjRibIn:
    """One session's routes as received, plus the import results that differ from them."""

    __slots__ = (
        "changed", "dropped", "eor", "established", "info", "installed", "routes", "stale", "stale_deadline",
    )

    def __init__(self, info: PeerInfo) -> None:
        self.info = info
        self.routes: dict[str, PathAttributes] = {}
        self.stale: dict[str, PathAttributes] = {}
        self.changed: dict[str, PathAttributes | None] = {}
        self.established = False
        self.stale_deadline: float | None = None
        self.eor: set[Family] = set()
        self.dropped = 0
        self.installed = 0  # kept by the RIB's diffs

    def candidate(self, prefix: str) -> Candidate | None:
        raw = self.routes.get(prefix)
        stale = raw is None
        if raw is None:
            raw = self.stale.get(prefix)
            if raw is None:
                return None
        attrs = self.changed.get(prefix, raw) if self.changed else raw
        return None if attrs is None else Candidate(self.info, attrs, stale)

    def prefixes(self) -> list[str]:
        return [*self.routes, *(p for p in self.stale if p not in self.routes)]

    def forget(self, prefix: str) -> None:
        if prefix not in self.routes and prefix not in self.stale:
            self.changed.pop(prefix, None)

    def record(self, prefix: str, raw: PathAttributes, result: PathAttributes | None) -> None:
        """Keep the import result only where it differs from what was received."""
        if result is raw:
            if self.changed:
                self.changed.pop(prefix, None)
        else:
            self.changed[prefix] = result

    def reimport(self, imported: Importer) -> None:
        self.changed = {}
        for table in (self.stale, self.routes):
            for prefix, attrs in table.items():
                self.record(prefix, attrs, imported(prefix, attrs))

    def status(self) -> PeerStatus:
        rejected = sum(1 for p, a in self.changed.items() if a is None and p in self.routes)
        return PeerStatus(
            name=self.info.name, established=self.established, received=len(self.routes),
            accepted=len(self.routes) - rejected, stale=len(self.stale), installed=self.installed,
            dropped=self.dropped,
            over_limit=self.dropped > 0, stale_deadline=self.stale_deadline,
        )


class Importer:
    """Import for one session; the per-attributes work is done once per shared attributes object."""

    __slots__ = ("_info", "_local", "_memo", "_own")

    def __init__(self, info: PeerInfo, local: LocalInfo) -> None:
        self._info, self._local = info, local
        own = local.as_number
        self._own = (own,) if info.local_as == own else (own, info.local_as)
        self._memo: dict[int, PathAttributes | None] = {}

    @property
    def filtered(self) -> bool:
        """Whether import filters may treat prefixes with the same attributes differently."""
        return bool(self._info.filters)

    def checked(self, attrs: PathAttributes) -> PathAttributes | None:
        """What BGP's own rules make of ``attrs`` whatever the prefix (None: rejected, e.g. an AS loop)."""
        key = id(attrs)  # the caller holds every attrs object for the importer's lifetime
        if key not in self._memo:
            self._memo[key] = self._per_attrs(attrs)
        return self._memo[key]

    def _per_attrs(self, attrs: PathAttributes) -> PathAttributes | None:
        info, local = self._info, self._local
        if not info.ibgp and (attrs.local_pref is not None or attrs.originator_id or attrs.cluster_list):
            # LOCAL_PREF and the reflection attributes mean nothing from another AS (BIRD drops them).
            attrs = replace(attrs, local_pref=None, originator_id=None, cluster_list=())
        if as_loop(attrs, self._own, info.allow_local_as):
            return None
        if local.router_id is not None and attrs.originator_id == local.router_id:
            return None
        if local.cluster_id is not None and local.cluster_id in attrs.cluster_list:
            return None
        return attrs

    def __call__(self, prefix: str, attrs: PathAttributes) -> PathAttributes | None:
        checked = self.checked(attrs)
        if checked is None or is_martian(prefix):
            return None
        if not self._info.filters:
            return checked
        return import_policy(self._info.filters, RouteContext(prefix, "bgp", self._info.ibgp), checked)
