"""Netlink route messages packed from templates (pure: bytes in, bytes out).

Why templates: pyroute2 spends ~70 µs encoding one route; the kernel needs ~2 µs to install it.
Every route that shares (operation, family, prefix length, kind, next hops) has byte-identical
messages except the sequence number and the destination address, so we pack one template per such
key and, per route, append it to a bytearray and patch those two fields (~1 µs in CPython).

Installs carry NLM_F_REQUEST|NLM_F_CREATE|NLM_F_REPLACE and no NLM_F_ACK: the kernel stays silent on
success and answers a failure with NLMSG_ERROR carrying our sequence number, which the caller maps
back to the change (``seq = seq0 + index``). Deletes carry our protocol number, table and metric,
which the kernel matches (IPv4 and IPv6), so a delete can never remove another daemon's route.

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
from dataclasses import dataclass
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
_pack_seq = struct.Struct("=I").pack_into
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
    """An NLMSG_ERROR the kernel sent for our request number ``seq``."""

    seq: int
    errno: int
    message: str


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
    data: bytes
    dst_offset: int
    dst_len: int


class RouteCodec:
    """Encodes batches of FibChanges for one (table, protocol, metric); caches its templates."""

    # Distinct templates are few (next-hop sets x prefix lengths); the cap only bounds pathologies.
    MAX_TEMPLATES = 4096

    def __init__(self, table: int = DEFAULT_TABLE, protocol: int = DEFAULT_PROTOCOL,
                 metric: int = DEFAULT_METRIC) -> None:
        if not 1 <= table <= 0xFFFFFFFF or not 1 <= protocol <= 255 or not 0 <= metric <= 0xFFFFFFFF:
            raise ValueError(f"table, protocol or metric out of range; got {(table, protocol, metric)!r}")
        self.table, self.protocol, self.metric = table, protocol, metric
        self._templates: dict[tuple[object, ...], _Template] = {}

    def template(self, family: int, plen: int, change: FibChange, metric: int | None = None) -> _Template:
        """The message for ``change`` with a zero destination and sequence number."""
        key = (family, plen, change.kind, change.nexthops, metric)
        found = self._templates.get(key)
        if found is None:
            if len(self._templates) >= self.MAX_TEMPLATES:
                self._templates.clear()
            found = self._templates[key] = self._build(family, plen, change, metric)
        return found

    def _build(self, family: int, plen: int, change: FibChange, metric: int | None) -> _Template:
        alen = _ADDR_LEN[family]
        if change.nexthops is None:
            mtype, flags, rtype, scope, tail = RTM_DELROUTE, NLM_F_REQUEST, RTN_UNSPEC, RT_SCOPE_NOWHERE, b""
        else:
            mtype, scope = RTM_NEWROUTE, RT_SCOPE_UNIVERSE
            flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
            rtype = RTN_BLACKHOLE if change.kind == "blackhole" else RTN_UNICAST
            tail = _nexthop_attrs(family, change.kind, change.nexthops)
        small_table = self.table if self.table < 256 else RT_TABLE_UNSPEC
        body = _RTMSG.pack(family, plen, 0, 0, small_table, self.protocol, scope, rtype, 0)
        body += _U32_ATTR.pack(8, RTA_TABLE, self.table)
        body += _U32_ATTR.pack(8, RTA_PRIORITY, self.metric if metric is None else metric)
        dst_offset = _HDR.size + len(body) + _RTA.size
        body += _attr(RTA_DST, bytes(alen)) + tail
        return _Template(_HDR.pack(_HDR.size + len(body), mtype, flags, 0, 0) + body, dst_offset, alen)

    def encode(self, changes: list[FibChange], seq0: int, start: int = 0, stop: int | None = None,
               metric: int | None = None) -> tuple[bytearray, list[tuple[int, str]]]:
        """Messages for ``changes[start:stop]``, message i numbered ``seq0 + i``.

        Returns the bytes and the changes that could not be encoded as (index, reason); those are
        skipped. ``metric`` overrides ours (to delete routes installed under an earlier setting).
        This is the hot loop (~1.5 µs a route): prefix parsing is inlined, and the template of the
        previous route is reused while next hops (by identity), kind and prefix length repeat.
        """
        buf = bytearray()
        rejected: list[tuple[int, str]] = []
        inet_pton, v4, v6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6
        last: tuple[object, object, int, int] | None = None
        data, dst_offset, dst_end = b"", 0, 0
        for i in range(start, len(changes) if stop is None else stop):
            change = changes[i]
            addr, slash, plen_text = change.prefix.partition("/")
            family = v6 if ":" in addr else v4
            try:
                packed = inet_pton(family, addr)
                plen = int(plen_text)
            except (OSError, ValueError):
                rejected.append((i, f"not an IP prefix; got {change.prefix!r}"))
                continue
            key = (change.nexthops, change.kind, plen, family)
            if last is None or key[0] is not last[0] or key[1:] != last[1:]:
                if not slash or not 0 <= plen <= len(packed) * 8:
                    rejected.append((i, f"not an IP prefix; got {change.prefix!r}"))
                    continue
                try:
                    tmpl = self.template(family, plen, change, metric)
                except InvalidChange as exc:
                    rejected.append((i, str(exc)))
                    last = None
                    continue
                last, data = key, tmpl.data
                dst_offset, dst_end = tmpl.dst_offset, tmpl.dst_offset + tmpl.dst_len
            off = len(buf)
            buf += data
            _pack_seq(buf, off + _SEQ_OFFSET, (seq0 + i) & 0xFFFFFFFF)
            buf[off + dst_offset : off + dst_end] = packed
        return buf, rejected


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
    """Decode the NLMSG_ERROR at ``off`` (with capped payload and extended-ack text if present)."""
    _len, _type, flags, seq, _pid = _unpack_hdr(data, off)
    errno = -_unpack_i32(data, off + _HDR.size)[0]
    message = ""
    if flags & NLM_F_ACK_TLVS:
        # TLVs follow the echoed request: its header only when capped, else the whole request.
        echoed = _unpack_hdr(data, off + _HDR.size + 4)[0]
        attr = off + _HDR.size + 4 + (_HDR.size if flags & NLM_F_CAPPED else (echoed + 3) & ~3)
        while attr + 4 <= off + length:
            alen, akind = _unpack_u16(data, attr)
            if alen < 4:
                break
            if akind == NLMSGERR_ATTR_MSG:
                message = bytes(data[attr + 4 : attr + alen]).rstrip(b"\0").decode(errors="replace")
            attr += (alen + 3) & ~3
    return NetlinkError(seq, errno, message)
