"""Why a session is not up, in words an operator can act on (pure: evidence in, text out).

ExaBGP says little about a session that does not come up (reference/exabgp.md §3): a TCP failure,
a refused connection and a rejected OPEN all end as `down: closing connection`, and an MD5 mismatch
or a GTSM drop leaves no trace in its output at all. The evidence comes from elsewhere and is taken at
the edges (bgpd.tcpstats): the peer's OPEN (its AS), NOTIFICATIONs, the kernel's TcpExt counters of
the node's namespace, the drop counters of bgpd's GTSM table, and a plain TCP connect to the peer.

Kernel counters are per namespace, not per peer: a rise is attributed to a session only when exactly
one session that is down could have caused it; otherwise every candidate says what the host saw.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

ProbeResult = Literal["open", "refused", "timeout", "unreachable", "no-route"]
Kind = Literal["md5_failure", "md5_not_found", "md5_unexpected", "min_ttl", "gtsm_drop"]

_OPEN_ERRORS = {1: "unsupported version number", 2: "bad peer AS", 3: "bad BGP identifier",
                4: "unsupported optional parameter", 6: "unacceptable hold time",
                7: "unsupported capability", 11: "role mismatch"}
_CEASE = {1: "maximum number of prefixes reached", 2: "administrative shutdown", 3: "peer de-configured",
          4: "administrative reset", 5: "connection rejected", 6: "other configuration change",
          7: "connection collision resolution", 8: "out of resources", 9: "hard reset"}
_CODES = {1: "message header error", 2: "OPEN error", 3: "UPDATE error", 4: "hold timer expired",
          5: "FSM error", 6: "Cease", 7: "route refresh error"}


@dataclass(frozen=True)
class TcpCounters:
    """The TcpExt counters of one network namespace (absolute values, /proc/net/netstat)."""

    md5_not_found: int = 0  # a key is set for the peer, the segment has no signature
    md5_unexpected: int = 0  # a signed segment arrived where no key is set
    md5_failure: int = 0  # the signature is wrong (different passwords)
    min_ttl_drop: int = 0  # below IP_MINTTL on a socket with GTSM

    def rise_since(self, earlier: TcpCounters) -> TcpCounters:
        """What rose since ``earlier`` (a counter that went down, e.g. a new namespace, is no rise)."""
        return TcpCounters(*(max(0, now - then) for now, then in zip(self._values(), earlier._values(),
                                                                      strict=True)))

    def _values(self) -> tuple[int, int, int, int]:
        return self.md5_not_found, self.md5_unexpected, self.md5_failure, self.min_ttl_drop


@dataclass(frozen=True)
class Evidence:
    """One sample taken by the edge: counters (None when unreadable), GTSM drops per peer IP so far,
    and the results of TCP probes per session name."""

    counters: TcpCounters | None = None
    gtsm_drops: tuple[tuple[str, int], ...] | None = None  # None: not read (no GTSM session down)
    syn_sent: tuple[tuple[str, int, int], ...] = ()  # our unanswered connects: (peer IP, port, retransmits)
    probes: tuple[tuple[str, ProbeResult], ...] = ()


@dataclass(frozen=True)
class ProbeTarget:
    """A down peer to try a plain TCP connect to, from the address ExaBGP uses (see bgpd.tcpstats)."""

    name: str
    peer_ip: str
    port: int
    source: str | None


@dataclass(frozen=True)
class Candidate:
    """A session that is down, as far as attribution needs to know it."""

    name: str
    peer_ip: str
    password: bool
    ttl_security: int | None


@dataclass(frozen=True)
class Observation:
    """Evidence against one session: how many events of a kind since when, and among how many
    sessions that are down the host-wide counter could not tell (1: it is this session's)."""

    kind: Kind
    count: int
    since: float
    shared: int = 1

    def add(self, count: int, shared: int) -> Observation:
        return Observation(self.kind, self.count + count, self.since, max(shared, 1))


def attribute(rise: TcpCounters, gtsm_rise: Mapping[str, int],
              down: Sequence[Candidate]) -> list[tuple[str, Kind, int, int]]:
    """(session, kind, count, shared) for each rise a down session could have caused.

    MD5 failures and missing signatures come from sessions with a password; a signature where we have
    none from a session without one; minimum-TTL drops from GTSM sessions; bgpd's GTSM table counts
    per peer address, so those are always attributed exactly.
    """
    found: list[tuple[str, Kind, int, int]] = []
    rules: list[tuple[Kind, int, list[Candidate]]] = [
        ("md5_failure", rise.md5_failure, [c for c in down if c.password]),
        ("md5_not_found", rise.md5_not_found, [c for c in down if c.password]),
        ("md5_unexpected", rise.md5_unexpected, [c for c in down if not c.password]),
        ("min_ttl", rise.min_ttl_drop, [c for c in down if c.ttl_security is not None]),
    ]
    for kind, count, candidates in rules:
        if count > 0:
            found += [(c.name, kind, count, len(candidates)) for c in candidates]
    for c in down:
        if c.ttl_security is not None and gtsm_rise.get(c.peer_ip, 0) > 0:
            found.append((c.name, "gtsm_drop", gtsm_rise[c.peer_ip], 1))
    return found


def gtsm_rise(now: Iterable[tuple[str, int]], before: Iterable[tuple[str, int]]) -> dict[str, int]:
    earlier = dict(before)
    return {ip: n - earlier.get(ip, 0) for ip, n in now if n > earlier.get(ip, 0)}


def observation_text(o: Observation) -> str:
    since = clock(o.since)
    if o.shared > 1:
        what = {"md5_failure": "MD5 failures (wrong signature)", "md5_not_found": "MD5 signatures missing",
                "md5_unexpected": "unexpected MD5 signatures", "min_ttl": "GTSM minimum-TTL drops",
                "gtsm_drop": "GTSM drops"}[o.kind]
        return (f"{what} observed on this host since {since} ({o.count}; {o.shared} sessions that are "
                f"down could have caused them)")
    if o.kind == "md5_failure":
        return f"MD5 password mismatch: {o.count} segments with a wrong signature since {since}"
    if o.kind == "md5_not_found":
        return f"MD5: {o.count} segments without a signature since {since} (the peer has no password?)"
    if o.kind == "md5_unexpected":
        return (f"MD5: {o.count} signed segments since {since}, but this session has no password "
                "(the peer has one)")
    if o.kind == "min_ttl":
        return f"GTSM: {o.count} packets below the minimum TTL dropped on our connections since {since}"
    return f"GTSM: {o.count} packets from the peer dropped by bgpd's TTL rule since {since}"


def observations_text(observations: Iterable[Observation], ttl_security: int | None) -> list[str]:
    """Each observation, then once what GTSM drops mean for this session."""
    found = list(observations)
    notes = [observation_text(o) for o in found]
    if ttl_security is not None and any(o.kind in ("min_ttl", "gtsm_drop") and o.shared == 1 for o in found):
        notes.append(f"the peer is more than {ttl_security} hop(s) away (ttlSecurity) or does not send "
                     "TTL 255")
    return notes


def unanswered_text(peer_ip: str, port: int, retransmits: int, password: bool) -> str:
    """Our own connection attempts get no SYN-ACK (seen as SYN-SENT sockets that retransmit)."""
    where = f"[{peer_ip}]:{port}" if ":" in peer_ip else f"{peer_ip}:{port}"
    text = f"our connection attempts to {where} get no answer (SYN sent {retransmits + 1} times)"
    if password:
        return text + (": a peer with another MD5 password drops them silently (so do a host that is down "
                       "and a firewall)")
    return text + ": the host is down, not on the link, or a firewall drops them"


def probe_text(result: ProbeResult, peer_ip: str, port: int) -> str:
    where = f"[{peer_ip}]:{port}" if ":" in peer_ip else f"{peer_ip}:{port}"
    return {
        "refused": f"connection refused: nothing listens on {where}",
        "timeout": f"no answer from {where} (TCP connect timed out)",
        "unreachable": f"{peer_ip} unreachable (no ARP/ND answer or an ICMP error)",
        "no-route": f"no route to {peer_ip}",
        "open": f"{where} accepts TCP connections, yet no OPEN arrived",
    }[result]


def open_error(peer_as: int, expected_as: int) -> str:
    return f"OPEN error: bad peer AS (peer says AS {peer_as}, we expect {expected_as})"


def notification_text(direction: str, code: int, subcode: int, message: str, local_as: int) -> str:
    """A NOTIFICATION named after RFC 4271 (and 4486 for Cease), with what it means for us."""
    name = _CODES.get(code, f"code {code}")
    sub = (_OPEN_ERRORS if code == 2 else _CEASE if code == 6 else {}).get(subcode)
    text = f"NOTIFICATION {'received' if direction == 'receive' else 'sent'} {code}/{subcode} {name}"
    text += f": {sub}" if sub else ""
    if message and message.lower() not in text.lower():
        text += f" ({message})"
    if direction == "receive" and (code, subcode) == (2, 2):
        text += f"; the peer does not expect our AS {local_as}"
    return text


def info(state: str, reason: str | None, notes: Sequence[str]) -> str:
    head = f"{state}: {reason}" if reason else state
    return "; ".join([head, *notes])


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(t))
