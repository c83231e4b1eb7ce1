"""Netlink route messages packed from templates (pure: bytes in, bytes out).

Why templates: pyroute2 spends ~70 µs encoding one route; the kernel needs ~2 µs to install it.
Every route that shares (operation, family, prefix length, kind, next hops) has byte-identical
messages except the destination address, so we pack one template per such key, split it around the
destination, and build a whole FibChange (the RIB's prefixes with one set of next hops, typically an
UPDATE's worth) as ``head + (tail + head).join(destinations) + tail``: one C-level join, no Python
work per route beyond parsing its address (~0.3 µs a route in CPython).

Installs carry NLM_F_REQUEST|NLM_F_CREATE|NLM_F_REPLACE and no NLM_F_ACK: the kernel stays silent on
success and answers a failure with NLMSG_ERROR echoing the whole request (the socket does not set
NETLINK_CAP_ACK), which names the route that failed; every message of one batch carries the batch's
sequence number, which tells its replies from late ones. Deletes carry our protocol number, table and
metric, which the kernel matches (IPv4 and IPv6), so a delete can never remove another daemon's route.

Why a metric of our own: NLM_F_REPLACE replaces the route with the same prefix, TOS and *metric* in
the table whatever its protocol, so sharing a metric with another daemon would let an install
overwrite its route. Routes installed here carry ``metric`` on both families.

One metric for every route, not Calico's ``krt_metric = 2147483647 - local_pref``: Calico uses that
for live migration (elevated-priority /32s inside a block), which bgpd does not originate, and a
per-route metric would turn a LOCAL_PREF change into a delete and an add (another metric is another
kernel route) instead of one atomic replace.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Literal

# One route to put in (``nexthops`` set, or a blackhole) or take out (``nexthops`` is None): the RIB's
# own value, so its diffs reach the kernel as they are (one definition, in the pure core).
from bgpd.rib.fib import FibChange as FibChange  # noqa: PLC0414  (explicit re-export)

# Default protocol number: not in Linux's rtnetlink.h or iproute2's rt_protos (0-4, 8-18, 42, 99,
# 186-197), not BIRD (12), FRR (186-198), kube-router (17), kube-vip (248) or Felix (80).
DEFAULT_PROTOCOL = 44
DEFAULT_TABLE = 254
# Default metric: not 0 (ip route, Felix), 20/200 (FRR BGP), 32 (BIRD 2) or 1024 (IPv6 default).
DEFAULT_METRIC = 44

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ROOT, NLM_F_MATCH = 0x1, 0x4, 0x100, 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # on NLMSG_ERROR: request echo cut to its header; TLVs follow
NLMSGERR_ATTR_MSG = 1
RTA_DST, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 5, 6, 9, 15
RTN_UNSPEC, RTN_UNICAST, RTN_BLACKHOLE = 0, 1, 6
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255
RT_TABLE_UNSPEC = 0

Kind = Literal["unicast", "blackhole"]
_ADDR_LEN: dict[int, int] = {socket.AF_INET: 4, socket.AF_INET6: 16}
_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTA = struct.Struct("=HH")
_U32_ATTR = struct.Struct("=HHI")
_RTNH = struct.Struct("=HBBi")  # rtnexthop: len, flags, hops, ifindex
_SEQ_OFFSET = 8
_SEQ = struct.Struct("=I")
_first, _second, _third = itemgetter(0), itemgetter(1), itemgetter(2)
_unpack_hdr = _HDR.unpack_from
_unpack_i32 = struct.Struct("=i").unpack_from
_unpack_u16 = struct.Struct("=HH").unpack_from
_unpack_u32 = struct.Struct("=I").unpack_from


@dataclass(frozen=True, slots=True)
class Route:
    """A route of ours as the kernel holds it (blackholes have no next hops)."""

    prefix: str
    nexthops: tuple[str, ...]
    kind: Kind = "unicast"
    metric: int = DEFAULT_METRIC


@dataclass(frozen=True, slots=True)
class NetlinkError:
    """An NLMSG_ERROR the kernel sent for our request number ``seq``, with what its echo of the
    request says: the message type and the route's prefix (None when the echo was cut short)."""

    seq: int
    errno: int
    message: str
    request_type: int = 0
    prefix: str | None = None


class InvalidChange(ValueError):
    """A change that cannot be encoded (bad prefix or next hop); it never reaches the kernel."""


def parse_prefix(prefix: str) -> tuple[int, bytes, int]:
    """'10.0.0.0/24' -> (AF_INET, packed address, 24); raises InvalidChange."""
    addr, slash, plen_text = prefix.partition("/")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        packed = socket.inet_pton(family, addr)
        plen = int(plen_text)
    except (OSError, ValueError):
        raise InvalidChange(f"not an IP prefix; got {prefix!r}") from None
    if not slash or not 0 <= plen <= len(packed) * 8:
        raise InvalidChange(f"not an IP prefix; got {prefix!r}")
    return family, packed, plen


def canonical_prefix(prefix: str) -> str:
    """The kernel's spelling of a prefix (lower-case, compressed IPv6), as dumps return it."""
    family, packed, plen = parse_prefix(prefix)
    return f"{socket.inet_ntop(family, packed)}/{plen}"


def _attr(kind: int, payload: bytes) -> bytes:
    raw = _RTA.pack(4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _gateway(family: int, nexthop: str) -> bytes:
    try:
        return socket.inet_pton(family, nexthop)
    except OSError:
        raise InvalidChange(f"next hop is not an address of the prefix's family; got {nexthop!r}") from None


def _nexthop_attrs(family: int, kind: Kind, nexthops: tuple[str, ...]) -> bytes:
    if kind == "blackhole":
        return b""
    if not nexthops:
        raise InvalidChange("unicast route without next hops; got ()")
    if len(nexthops) == 1:
        return _attr(RTA_GATEWAY, _gateway(family, nexthops[0]))
    legs = b""
    for nexthop in nexthops:
        gateway = _attr(RTA_GATEWAY, _gateway(family, nexthop))
        legs += _RTNH.pack(_RTNH.size + len(gateway), 0, 0, 0) + gateway
    return _attr(RTA_MULTIPATH, legs)


@dataclass(frozen=True, slots=True)
class _Template:
    """One route's message split around its destination address: ``head + dst + tail``."""

    head: bytes
    tail: bytes

    def messages(self, destinations: Sequence[bytes], seq: int) -> bytes:
        head = self.head[:_SEQ_OFFSET] + _SEQ.pack(seq & 0xFFFFFFFF) + self.head[_SEQ_OFFSET + 4:]
        return head + (self.tail + head).join(destinations) + self.tail


class RouteCodec:
    """Encodes FibChanges for one (table, protocol, metric); caches its templates."""

    # Distinct templates are few (next-hop sets x prefix lengths); the cap only bounds pathologies.
    MAX_TEMPLATES = 4096

    def __init__(self, table: int = DEFAULT_TABLE, protocol: int = DEFAULT_PROTOCOL,
                 metric: int = DEFAULT_METRIC) -> None:
        if not 1 <= table <= 0xFFFFFFFF or not 1 <= protocol <= 255 or not 0 <= metric <= 0xFFFFFFFF:
            raise ValueError(f"table, protocol or metric out of range; got {(table, protocol, metric)!r}")
        self.table, self.protocol, self.metric = table, protocol, metric
        self._templates: dict[tuple[object, ...], _Template] = {}

    def encode(self, changes: Iterable[FibChange], seq: int, metric: int | None = None
               ) -> tuple[bytes, list[tuple[str, str]]]:
        """The messages of every prefix of ``changes``, each numbered ``seq``.

        Returns the bytes and the prefixes that could not be encoded, as (prefix, reason); those are
        skipped. ``metric`` overrides ours (to delete routes installed under an earlier setting).
        """
        rejected: list[tuple[str, str]] = []
        data = b"".join(self._encode(c, seq, metric, rejected) for c in changes if c.prefixes)
        return data, rejected

    def _encode(self, change: FibChange, seq: int, metric: int | None, rejected: list[tuple[str, str]]
                ) -> bytes:
        """The common case at C speed: one family and one prefix length (an UPDATE's /24s)."""
        split = list(map(str.partition, change.prefixes, repeat("/")))
        lengths = set(map(_third, split))
        if len(lengths) == 1 and set(map(_second, split)) == {"/"}:
            addrs = list(map(_first, split))
            family = socket.AF_INET6 if ":" in addrs[0] else socket.AF_INET
            (plen,) = lengths
            try:
                template = self.template(family, int(plen), change.kind, change.nexthops, metric)
                return template.messages(list(map(socket.inet_pton, repeat(family), addrs)), seq)
            except (OSError, ValueError, InvalidChange):
                pass  # some prefix is bad, or the prefixes mix families: sort it out one by one
        return self._encode_each(change, seq, metric, rejected)

    def _encode_each(self, change: FibChange, seq: int, metric: int | None, rejected: list[tuple[str, str]]
                     ) -> bytes:
        by_template: dict[tuple[int, int], list[bytes]] = {}
        for prefix in change.prefixes:
            try:
                family, packed, plen = parse_prefix(prefix)
                self.template(family, plen, change.kind, change.nexthops, metric)
            except InvalidChange as exc:
                rejected.append((prefix, str(exc)))
                continue
            by_template.setdefault((family, plen), []).append(packed)
        return b"".join(self.template(family, plen, change.kind, change.nexthops, metric).messages(dsts, seq)
                        for (family, plen), dsts in by_template.items())

    def template(self, family: int, plen: int, kind: Kind, nexthops: tuple[str, ...] | None,
                 metric: int | None = None) -> _Template:
        """The message for one route with a zero sequence number, split around its destination;
        raises InvalidChange for a prefix length or next hops the family cannot have."""
        key = (family, plen, kind, nexthops, metric)
        found = self._templates.get(key)
        if found is None:
            if len(self._templates) >= self.MAX_TEMPLATES:
                self._templates.clear()
            found = self._templates[key] = self._build(family, plen, kind, nexthops, metric)
        return found

    def _build(self, family: int, plen: int, kind: Kind, nexthops: tuple[str, ...] | None,
               metric: int | None) -> _Template:
        alen = _ADDR_LEN[family]
        if not 0 <= plen <= alen * 8:
            raise InvalidChange(f"prefix length out of range for the family; got /{plen}")
        if nexthops is None:
            mtype, flags, rtype, scope, tail = RTM_DELROUTE, NLM_F_REQUEST, RTN_UNSPEC, RT_SCOPE_NOWHERE, b""
        else:
            mtype, scope = RTM_NEWROUTE, RT_SCOPE_UNIVERSE
            flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
            rtype = RTN_BLACKHOLE if kind == "blackhole" else RTN_UNICAST
            tail = _nexthop_attrs(family, kind, nexthops)
        small_table = self.table if self.table < 256 else RT_TABLE_UNSPEC
        body = _RTMSG.pack(family, plen, 0, 0, small_table, self.protocol, scope, rtype, 0)
        body += _U32_ATTR.pack(8, RTA_TABLE, self.table)
        body += _U32_ATTR.pack(8, RTA_PRIORITY, self.metric if metric is None else metric)
        body += _RTA.pack(4 + alen, RTA_DST)  # an address is 4 or 16 bytes: no padding follows
        size = _HDR.size + len(body) + alen + len(tail)
        return _Template(_HDR.pack(size, mtype, flags, 0, 0) + body, tail)


def split(changes: Iterable[FibChange], size: int) -> Iterator[list[FibChange]]:
    """``changes`` in order, in pieces of at most ``size`` prefixes (a large change is cut)."""
    piece: list[FibChange] = []
    room = size
    for change in changes:
        prefixes, start = change.prefixes, 0
        while start < len(prefixes):
            take = prefixes[start : start + room]  # never the rest of a long tuple: that would be O(n²)
            piece.append(change if len(take) == len(prefixes) else change._replace(prefixes=take))
            start, room = start + len(take), room - len(take)
            if not room:
                yield piece
                piece, room = [], size
    if piece:
        yield piece


def dump_request(family: int, table: int, protocol: int, seq: int) -> bytes:
    """RTM_GETROUTE dump filtered by the kernel (needs NETLINK_GET_STRICT_CHK) to table+protocol."""
    body = _RTMSG.pack(family, 0, 0, 0, table if table < 256 else RT_TABLE_UNSPEC, protocol, 0, 0, 0)
    body += _U32_ATTR.pack(8, RTA_TABLE, table)
    return _HDR.pack(_HDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a dumped message says apart from its destination address (None route = not ours)."""

    dst_offset: int  # from the message start; -1 when it has no RTA_DST (a default route)
    family: int
    suffix: str  # "/<prefix length>"
    route: Route | None  # with an empty prefix, filled in per message


class RouteDecoder:
    """Reads dumped RTM_NEWROUTE messages of one (table, protocol) into Routes.

    Hand-rolled because adoption reads every route we own at start: pyroute2's rtmsg takes ~60 µs
    a route (a minute at 1M routes). Routes sharing next hops dump as identical bytes except the
    destination, so a message is first looked up by those bytes (at the destination offset of the
    previous message) and parsed only when that shape is new. Tests hold it to pyroute2's reading.
    """

    MAX_SHAPES = 4096  # IPv6 dumps carry per-route cache info, so their shapes may never repeat

    def __init__(self, table: int, protocol: int) -> None:
        self.table, self.protocol = table, protocol
        self._shapes: dict[tuple[int, bytes], _Shape] = {}
        self._dst_offset = -1

    def decode(self, data: bytes, off: int, length: int) -> Route | None:
        if data[off + _HDR.size + 5] != self.protocol:  # rtm_protocol: most foreign routes end here
            return None
        dst_at = self._dst_offset
        alen = _ADDR_LEN.get(data[off + _HDR.size], 0)
        if dst_at > 0:
            key = (dst_at, data[off + _HDR.size : off + dst_at] + data[off + dst_at + alen : off + length])
        else:
            key = (dst_at, data[off + _HDR.size : off + length])
        # A hit means: same bytes as a message whose destination sat at dst_at, but there.
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._parse(data, off, length)
            self._dst_offset = shape.dst_offset
            if len(self._shapes) < self.MAX_SHAPES and shape.dst_offset == dst_at:
                self._shapes[key] = shape
        route = shape.route
        if route is None:
            return None
        at = shape.dst_offset
        dst = data[off + at : off + at + alen] if at > 0 else bytes(alen)
        prefix = socket.inet_ntop(shape.family, dst) + shape.suffix
        return Route(prefix, route.nexthops, route.kind, route.metric)

    def _parse(self, data: bytes, off: int, length: int) -> _Shape:
        body = off + _HDR.size
        family, dst_len, rtype = data[body], data[body + 1], data[body + 7]
        alen = _ADDR_LEN.get(family)
        suffix = f"/{dst_len}"
        if alen is None:
            return _Shape(-1, family, suffix, None)
        dst_offset, metric, rtable = -1, 0, data[body + 4]
        hops: tuple[str, ...] = ()
        attr, end = body + _RTMSG.size, off + length
        while attr + 4 <= end:
            size, kind = _unpack_u16(data, attr)
            if size < 4:
                break
            if kind == RTA_DST:
                dst_offset = attr + 4 - off
            elif kind == RTA_TABLE:
                rtable = _unpack_u32(data, attr + 4)[0]
            elif kind == RTA_PRIORITY:
                metric = _unpack_u32(data, attr + 4)[0]
            elif kind in (RTA_GATEWAY, RTA_MULTIPATH):
                hops += _gateways(data[attr : attr + size], family, alen)
            attr += (size + 3) & ~3
        if rtable != self.table:
            return _Shape(dst_offset, family, suffix, None)
        if rtype == RTN_BLACKHOLE:
            return _Shape(dst_offset, family, suffix, Route("", (), "blackhole", metric))
        return _Shape(dst_offset, family, suffix, Route("", hops, "unicast", metric))


def _gateways(raw: bytes, family: int, alen: int) -> tuple[str, ...]:
    """The gateways in one RTA_GATEWAY or RTA_MULTIPATH attribute (``raw`` includes its header)."""
    if _unpack_u16(raw, 0)[1] == RTA_GATEWAY:
        return (socket.inet_ntop(family, raw[4 : 4 + alen]),)
    return tuple(_multipath_gateways(raw, 4, len(raw), family, alen))


def _multipath_gateways(data: bytes, leg: int, end: int, family: int, alen: int) -> list[str]:
    hops = []
    while leg + _RTNH.size <= end:
        leg_len = _RTNH.unpack_from(data, leg)[0]
        if leg_len < _RTNH.size:
            break
        attr = leg + _RTNH.size
        while attr + 4 <= leg + leg_len:
            size, kind = _unpack_u16(data, attr)
            if size < 4:
                break
            if kind == RTA_GATEWAY:
                hops.append(socket.inet_ntop(family, data[attr + 4 : attr + 4 + alen]))
            attr += (size + 3) & ~3
        leg += (leg_len + 3) & ~3
    return hops


def iter_messages(data: bytes) -> list[tuple[int, int, int, int]]:
    """(offset, length, type, seq) of each netlink message in one datagram."""
    out = []
    off, end = 0, len(data)
    while off + _HDR.size <= end:
        length, mtype, _flags, seq, _pid = _unpack_hdr(data, off)
        if length < _HDR.size:
            break
        out.append((off, length, mtype, seq))
        off += (length + 3) & ~3
    return out


def parse_error(data: bytes, off: int, length: int) -> NetlinkError:
    """Decode the NLMSG_ERROR at ``off``: errno, the extended-ack text if present, and the echoed
    request's type and prefix (the echo is whole unless NLM_F_CAPPED)."""
    _len, _type, flags, seq, _pid = _unpack_hdr(data, off)
    errno = -_unpack_i32(data, off + _HDR.size)[0]
    request = off + _HDR.size + 4
    echoed, request_type = _unpack_hdr(data, request)[:2]
    capped = bool(flags & NLM_F_CAPPED)
    prefix = None if capped else _echoed_prefix(data, request, min(echoed, off + length - request))
    message = ""
    if flags & NLM_F_ACK_TLVS:
        # TLVs follow the echoed request: its header only when capped, else the whole request.
        attr = request + (_HDR.size if capped else (echoed + 3) & ~3)
        while attr + 4 <= off + length:
            alen, akind = _unpack_u16(data, attr)
            if alen < 4:
                break
            if akind == NLMSGERR_ATTR_MSG:
                message = bytes(data[attr + 4 : attr + alen]).rstrip(b"\0").decode(errors="replace")
            attr += (alen + 3) & ~3
    return NetlinkError(seq, errno, message, request_type, prefix)


def _echoed_prefix(data: bytes, off: int, length: int) -> str | None:
    """The destination of the route request at ``off`` (as the kernel spells it), or None."""
    body = off + _HDR.size
    if length < _HDR.size + _RTMSG.size:
        return None
    family, plen = data[body], data[body + 1]
    alen = _ADDR_LEN.get(family)
    if alen is None:
        return None
    attr, end = body + _RTMSG.size, off + length
    dst = bytes(alen)  # no RTA_DST: a default route
    while attr + 4 <= end:
        size, kind = _unpack_u16(data, attr)
        if size < 4:
            break
        if kind == RTA_DST and size >= 4 + alen:
            dst = bytes(data[attr + 4 : attr + 4 + alen])
        attr += (size + 3) & ~3
    return f"{socket.inet_ntop(family, dst)}/{plen}"
