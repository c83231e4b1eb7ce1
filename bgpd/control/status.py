"""`bgpd status`: the StatusReport value, its JSON (DESIGN.md §4) and the calicoctl-like table (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from bgpd.desired import SessionKind

PEER_TYPES: dict[str, str] = {
    "Mesh": "node-to-node mesh", "Global": "global", "Node": "node specific",
    "Local_Workload": "local workload",
}
HEADERS = ("PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO")


@dataclass(frozen=True)
class SessionStatus:
    """``state`` is ``up`` when Established, else ``start`` (as BIRD and calicoctl say);
    ``info`` is ``Established`` or the FSM state with the reason it is not up."""

    name: str
    family: Literal[4, 6]
    kind: SessionKind
    peer_ip: str
    port: int
    state: str
    since: float | None
    info: str
    routes_received: int = 0
    routes_installed: int = 0

    @property
    def established(self) -> bool:
        return self.state == "up"

    @property
    def address(self) -> str:
        if self.port == 179:
            return self.peer_ip
        return f"[{self.peer_ip}]:{self.port}" if ":" in self.peer_ip else f"{self.peer_ip}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "peerIP": self.peer_ip, "port": self.port,
                "type": PEER_TYPES[self.kind], "state": self.state, "since": _iso(self.since),
                "info": self.info, "routesReceived": self.routes_received,
                "routesInstalled": self.routes_installed}


@dataclass(frozen=True)
class StatusReport:
    node: str
    as_number: int | None
    router_id: str | None
    store_source: str
    revision: str
    stale: bool
    errors: tuple[str, ...]
    sessions: tuple[SessionStatus, ...]
    routes_installed: int
    routes_stale: int
    exabgp_pid: int | None
    exabgp_restarts: int
    exabgp_last_exit: str | None
    started: float
    now: float

    @property
    def all_established(self) -> bool:
        return all(s.established for s in self.sessions)

    @property
    def exit_status(self) -> int:
        """0 only when a configuration runs and every configured session is Established (a readiness
        probe: a daemon that has not applied any configuration yet is not ready)."""
        return 0 if self.revision and self.as_number is not None and self.all_established else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node, "asNumber": self.as_number, "routerID": self.router_id,
            "store": {"source": self.store_source, "revision": self.revision, "stale": self.stale,
                      "errors": list(self.errors)},
            "sessions": [s.to_json() for s in self.sessions],
            "routes": {"installed": self.routes_installed, "stale": self.routes_stale},
            # Beyond §4's keys (additive): the supervised child and the daemon's age.
            "exabgp": {"pid": self.exabgp_pid, "restarts": self.exabgp_restarts,
                       "lastExit": self.exabgp_last_exit},
            "uptime": round(self.now - self.started, 3),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusReport:
        """The daemon's JSON back into a report, so the CLI formats what the daemon sent."""
        kinds = {v: k for k, v in PEER_TYPES.items()}
        sessions = tuple(
            SessionStatus(name=s["name"], family=6 if ":" in s["peerIP"] else 4, kind=kinds[s["type"]],  # type: ignore[arg-type]
                          peer_ip=s["peerIP"], port=s["port"], state=s["state"], since=_unix(s["since"]),
                          info=s["info"], routes_received=s["routesReceived"],
                          routes_installed=s["routesInstalled"])
            for s in data["sessions"])
        store, exabgp = data["store"], data.get("exabgp", {})
        now = datetime.now(UTC).timestamp()
        return cls(node=data["node"], as_number=data["asNumber"], router_id=data["routerID"],
                   store_source=store["source"], revision=store["revision"], stale=store["stale"],
                   errors=tuple(store["errors"]), sessions=sessions,
                   routes_installed=data["routes"]["installed"], routes_stale=data["routes"]["stale"],
                   exabgp_pid=exabgp.get("pid"), exabgp_restarts=exabgp.get("restarts", 0),
                   exabgp_last_exit=exabgp.get("lastExit"), started=now - data.get("uptime", 0), now=now)


def format_report(report: StatusReport, tz: tzinfo | None = None) -> str:
    """The human table: a header, then one calicoctl-style table per family."""
    lines = _header(report)
    for family in (4, 6):
        sessions = [s for s in report.sessions if s.family == family]
        lines += ["", f"IPv{family} BGP status"]
        if not sessions:
            lines.append(f"No IPv{family} peers found.")
            continue
        rows = [(s.address, PEER_TYPES[s.kind], s.state, format_since(s.since, report.now, tz), s.info)
                for s in sessions]
        lines += format_table(HEADERS, rows)
        received = sum(s.routes_received for s in sessions)
        installed = sum(s.routes_installed for s in sessions)
        lines.append(f"Routes: {received} received, {installed} installed.")
    return "\n".join(lines) + "\n"


def _header(report: StatusReport) -> list[str]:
    uptime = format_duration(report.now - report.started)
    as_number = "-" if report.as_number is None else str(report.as_number)
    store = f"Store {report.store_source} revision {report.revision or '-'}"
    if report.stale:
        store += f" (STALE: {len(report.errors)} error(s), the last good configuration still runs)"
    exabgp = f"ExaBGP pid {report.exabgp_pid}" if report.exabgp_pid else "ExaBGP not running"
    exabgp += f", restarts {report.exabgp_restarts}"
    if report.exabgp_last_exit:
        exabgp += f", last exit: {report.exabgp_last_exit}"
    return [f"bgpd is running on node {report.node} (uptime {uptime}).",
            f"Router ID {report.router_id or '-'}, AS {as_number}",
            store, *(f"  {e}" for e in report.errors), exabgp,
            f"Routes installed {report.routes_installed} (stale {report.routes_stale})"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """calicoctl's table (tablewriter): headers centred, cells left-aligned, one space of padding."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    head = "|" + "|".join(f" {_centre(h, w)} " for h, w in zip(headers, widths, strict=True)) + "|"
    body = ["|" + "|".join(f" {c.ljust(w)} " for c, w in zip(r, widths, strict=True)) + "|" for r in rows]
    return [rule, head, rule, *body, rule]


def _centre(text: str, width: int) -> str:
    pad = width - len(text)
    return " " * (pad // 2) + text + " " * (pad - pad // 2)


def format_since(since: float | None, now: float, tz: tzinfo | None = None) -> str:
    """BIRD's style: the time of day when it was today, else the date."""
    if since is None:
        return "-"
    when, today = datetime.fromtimestamp(since, tz), datetime.fromtimestamp(now, tz)
    return when.strftime("%H:%M:%S") if when.date() == today.date() else when.strftime("%Y-%m-%d")


def format_duration(seconds: float) -> str:
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h{minutes:02d}m{secs:02d}s" if hours or days else f"{minutes}m{secs:02d}s"
    return f"{days}d{text}" if days else text


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _unix(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
