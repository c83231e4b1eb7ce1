"""ExaBGP 5.0 API codec (pure): its JSON lines in, typed events out; typed commands in, text lines out.

What ExaBGP writes to the API process (../shared/reference/exabgp.md §6): one JSON object per line
(`state`, `open`, `update`, `notification`, `negotiated`, ...) interleaved with bare `done` / `error`
acknowledgements and the odd text line (`reload in progress`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from bgpd.bgp import FAMILIES, ORIGIN_EGP, ORIGIN_IGP, ORIGIN_INCOMPLETE, Family, PathAttributes

PeerStateName = Literal["connected", "up", "down"]
_ORIGINS = {"igp": ORIGIN_IGP, "egp": ORIGIN_EGP, "incomplete": ORIGIN_INCOMPLETE}
_ORIGIN_NAMES = {value: name for name, value in _ORIGINS.items()}
EXABGP_DEFAULT_LOCAL_PREF = 100  # what ExaBGP sends to an iBGP peer when a route has no LOCAL_PREF


class CodecError(ValueError):
    """A line from ExaBGP that does not have the shape its 5.0 JSON encoder produces."""


@dataclass(frozen=True)
class PeerState:
    """`connected` is TCP only (also seen for refused connects); only `up` means Established."""

    peer_ip: str
    state: PeerStateName
    reason: str | None = None
    local: bool = False  # down because ExaBGP itself went away (not the peer, not the network)


@dataclass(frozen=True)
class PeerOpen:
    """The peer's OPEN: its router id (for ORIGINATOR_ID) and graceful-restart capability."""

    peer_ip: str
    router_id: str
    asn: int
    hold_time: int
    gr_time: int | None
    gr_families: tuple[Family, ...]  # families whose forwarding state the peer preserves (F bit)


@dataclass(frozen=True)
class RoutesReceived:
    peer_ip: str
    family: Family
    attributes: PathAttributes
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class RoutesWithdrawn:
    peer_ip: str
    family: Family
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class EndOfRib:
    peer_ip: str
    family: Family


@dataclass(frozen=True)
class NotificationEvent:
    """A NOTIFICATION sent to or received from a peer."""

    peer_ip: str
    direction: str
    code: int
    subcode: int
    message: str


@dataclass(frozen=True)
class Ack:
    """The `done` / `error` answer to one command; answers are unordered (§0.3)."""

    ok: bool


@dataclass(frozen=True)
class Shutdown:
    """ExaBGP says it is shutting down (`"notification": "shutdown"`)."""


@dataclass(frozen=True)
class SpeakerRestarted:
    """Emitted by the supervisor (not decoded): a new ExaBGP runs with no routes; replay them, then EoR."""

    restarts: int
    last_exit: str


Event = (
    PeerState | PeerOpen | RoutesReceived | RoutesWithdrawn | EndOfRib | NotificationEvent | Ack | Shutdown
    | SpeakerRestarted
)


# --------------------------------------------------------------------------------------------- decoding


def decode_line(line: str) -> list[Event]:
    """Decode one line. Lines bgpd does not act on (`negotiated`, `reload in progress`) give []."""
    text = line.strip()
    if text in ("done", "error"):
        return [Ack(ok=text == "done")]
    if not text.startswith("{"):
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodecError(f"not JSON: {exc}; got {text[:200]!r}") from None
    if not isinstance(doc, dict):
        raise CodecError(f"not a JSON object; got {text[:200]!r}")
    try:
        return _decode(cast(dict[str, Any], doc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"unexpected {doc.get('type')!r} message ({exc!r}); got {text[:200]!r}") from None


def _decode(doc: dict[str, Any]) -> list[Event]:
    kind = doc.get("type")
    if kind == "notification" and doc.get("notification") == "shutdown":
        return [Shutdown()]
    if kind not in ("state", "open", "update", "notification"):
        return []
    neighbor: dict[str, Any] = doc["neighbor"]
    peer = str(neighbor["address"]["peer"])
    if kind == "state":
        state = neighbor["state"]
        if state not in ("connected", "up", "down"):
            return []
        return [PeerState(peer, state, neighbor.get("reason"))]
    if kind == "open":
        return [] if neighbor.get("direction") != "receive" else [_open(peer, neighbor["open"])]
    if kind == "notification":
        note = neighbor["notification"]
        return [NotificationEvent(peer, str(neighbor.get("direction", "")), int(note["code"]),
                                  int(note["subcode"]), str(note.get("message", "")))]
    if neighbor.get("direction") != "receive":
        return []
    return _update(peer, neighbor["message"])


def _open(peer: str, body: dict[str, Any]) -> PeerOpen:
    gr = body.get("capabilities", {}).get("64")
    gr_time = None if gr is None else int(gr["time"])
    # the families listed in the GR capability are those the peer restarts gracefully for (their
    # flag lists hold ExaBGP's name for the F bit, which bgpd does not need while the peer is down)
    names = () if gr is None else gr.get("address-family-flags", {})
    gr_families = [f for f in (_family(str(n).replace("/", " ")) for n in names) if f is not None]
    # a 4-byte AS travels in the asn4 capability; the OPEN's own field then says AS_TRANS (23456)
    asn = body.get("capabilities", {}).get("65", {}).get("asn4", body["asn"])
    return PeerOpen(peer, str(body["router_id"]), int(asn), int(body["hold_time"]), gr_time,
                    tuple(gr_families))


def _update(peer: str, message: dict[str, Any]) -> list[Event]:
    if "eor" in message:
        family = _family(f"{message['eor']['afi']} {message['eor']['safi']}")
        return [] if family is None else [EndOfRib(peer, family)]
    update = message.get("update", {})
    events: list[Event] = []
    for name, nlris in update.get("withdraw", {}).items():
        family = _family(name)
        if family is not None:
            events.append(RoutesWithdrawn(peer, family, tuple(_prefixes(nlris))))
    attributes = update.get("attribute", {})
    for name, by_next_hop in update.get("announce", {}).items():
        family = _family(name)
        if family is not None:
            events.extend(_announced(peer, family, attributes, by_next_hop))
    return events


def _announced(
    peer: str, family: Family, attributes: Mapping[str, Any], by_next_hop: Mapping[str, Any]
) -> Iterator[RoutesReceived]:
    # An IPv6 UPDATE with a global and a link-local next hop lists every NLRI under both (global
    # first): one route, with the global next hop.
    if len(by_next_hop) == 1:  # the common case: nothing to de-duplicate
        for next_hop, nlris in by_next_hop.items():
            if nlris:
                yield RoutesReceived(peer, family, _attributes(next_hop, attributes), tuple(_prefixes(nlris)))
        return
    seen: set[str] = set()
    link_local_last = sorted(by_next_hop.items(), key=lambda item: item[0].lower().startswith("fe80:"))
    for next_hop, nlris in link_local_last:
        prefixes = [p for p in _prefixes(nlris) if p not in seen]
        seen.update(prefixes)
        if prefixes:
            yield RoutesReceived(peer, family, _attributes(next_hop, attributes), tuple(prefixes))


def _attributes(next_hop: str, attrs: Mapping[str, Any]) -> PathAttributes:
    as_path: list[int] = []
    as_set: list[int] = []
    segments = attrs.get("as-path", {})
    for key in sorted(segments, key=int):
        segment = segments[key]
        # 5.0 names confederation segments "as-sequence" too; only AS_SET differs in path length
        (as_set if segment["element"] == "as-set" else as_path).extend(int(asn) for asn in segment["value"])
    med = attrs.get("med")
    local_pref = attrs.get("local-preference")
    return PathAttributes(
        next_hop=next_hop,
        origin=_ORIGINS[attrs.get("origin", "igp")],
        as_path=tuple(as_path),
        as_set=tuple(as_set),
        med=None if med is None else int(med),
        local_pref=None if local_pref is None else int(local_pref),
        communities=tuple((int(a), int(b)) for a, b in attrs.get("community", ())),
        large_communities=tuple((int(a), int(b), int(c)) for a, b, c in attrs.get("large-community", ())),
        originator_id=attrs.get("originator-id"),
        cluster_list=tuple(str(c) for c in attrs.get("cluster-list", ())),
        atomic_aggregate=bool(attrs.get("atomic-aggregate", False)),
    )


def _prefixes(nlris: Iterable[Any]) -> list[str]:
    # `exabgp.api.compact` lists plain unicast NLRI as strings (no dict per prefix to build and read);
    # NLRI with a path id stay objects
    return [nlri if nlri.__class__ is str else str(nlri["nlri"]) for nlri in nlris]


def _family(name: str) -> Family | None:
    """Only the families bgpd configures; anything else is ignored, never guessed."""
    return name if name in FAMILIES else None


# --------------------------------------------------------------------------------------------- encoding


def announce(peer_ip: str | Sequence[str], attributes: PathAttributes, prefixes: Iterable[str]) -> str:
    """One command announcing every prefix with the same attributes (ExaBGP packs them in UPDATEs),
    to one peer or to several (ExaBGP's `neighbor A , neighbor B` selector: parsed once, for all).

    ExaBGP sends exactly the attributes given: it prepends its AS only when no AS path is given at all
    (eBGP, locally originated), so the caller prepends for eBGP when it passes a learned path, and
    must not pass ORIGINATOR_ID / CLUSTER_LIST / LOCAL_PREF to eBGP peers (ExaBGP sends them anyway).
    """
    nlri = " ".join(prefixes)
    if not nlri:
        raise ValueError("announce needs at least one prefix")
    return f"{_neighbors(peer_ip)} announce attributes {_encode_attributes(attributes)} nlri {nlri}"


def _neighbors(peer_ip: str | Sequence[str]) -> str:
    peers = [peer_ip] if isinstance(peer_ip, str) else list(peer_ip)
    if not peers:
        raise ValueError("a command needs at least one neighbor")
    return " , ".join(f"neighbor {ip}" for ip in peers)


def withdraw(peer_ip: str, prefixes: Iterable[str]) -> list[str]:
    """One command per prefix: `withdraw route` needs no attributes."""
    return [f"neighbor {peer_ip} withdraw route {prefix}" for prefix in prefixes]


def end_of_rib(peer_ip: str, family: Family) -> str:
    return f"neighbor {peer_ip} announce eor {family}"


def teardown(peer_ip: str, subcode: int = 2) -> str:
    """Close one session with a NOTIFICATION Cease/<subcode> (2 = administrative shutdown)."""
    return f"neighbor {peer_ip} teardown {subcode}"


def _encode_attributes(a: PathAttributes) -> str:
    """The attributes as ExaBGP's words, leaving out the two values its encoder puts on the wire by
    itself when they are absent (`Attributes.pack`): ORIGIN IGP, and LOCAL_PREF 100 (added on iBGP;
    LOCAL_PREF is never sent on eBGP). Same UPDATE, but ExaBGP deep-copies every attribute object
    once per route per neighbor (`Neighbor.remove_self`), and that copy is most of its CPU when
    reflecting: two fewer objects make it ~15% cheaper."""
    words = [f"next-hop {a.next_hop}"]
    if a.origin != ORIGIN_IGP:
        words.append(f"origin {_ORIGIN_NAMES[a.origin]}")
    if a.as_path or a.as_set:
        path = f"[ {' '.join(map(str, a.as_path))} ]" if a.as_path else ""
        if a.as_set:
            path = f"{path} ( {' '.join(map(str, a.as_set))} )".strip()
        words.append(f"as-path {path}")
    if a.med is not None:
        words.append(f"med {a.med}")
    if a.local_pref is not None and a.local_pref != EXABGP_DEFAULT_LOCAL_PREF:
        words.append(f"local-preference {a.local_pref}")
    if a.communities:
        words.append(f"community [ {' '.join(f'{x}:{y}' for x, y in a.communities)} ]")
    if a.large_communities:
        words.append(f"large-community [ {' '.join(f'{x}:{y}:{z}' for x, y, z in a.large_communities)} ]")
    if a.originator_id is not None:
        words.append(f"originator-id {a.originator_id}")
    if a.cluster_list:
        words.append(f"cluster-list [ {' '.join(a.cluster_list)} ]")
    if a.atomic_aggregate:
        words.append("atomic-aggregate")
    return " ".join(words)
