"""The template codec against pyroute2's own reading and writing of the same routes."""

from __future__ import annotations

import random
import socket
import struct
from typing import Any

import pytest
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from bgpd.kernel import codec
from bgpd.kernel.codec import FibChange, Route, RouteCodec

CREATE_REPLACE = codec.NLM_F_REQUEST | codec.NLM_F_CREATE | codec.NLM_F_REPLACE


def decode_all(buf: bytes) -> list[Any]:
    """Split a batch and decode every message with pyroute2."""
    out = []
    for off, length, _type, _seq in codec.iter_messages(buf):
        msg = rtmsg(buf[off : off + length])
        msg.decode()
        out.append(msg)
    return out


def facts(msg: Any) -> dict[str, Any]:
    """What the kernel acts on, from a pyroute2-decoded rtmsg."""
    legs = msg.get_attr("RTA_MULTIPATH") or []
    return {
        "family": msg["family"], "dst_len": msg["dst_len"],
        "table": msg.get_attr("RTA_TABLE") or msg["table"],
        "proto": msg["proto"], "type": msg["type"], "scope": msg["scope"],
        "dst": msg.get_attr("RTA_DST"), "gateway": msg.get_attr("RTA_GATEWAY"),
        "priority": msg.get_attr("RTA_PRIORITY"),
        "multipath": [leg.get_attr("RTA_GATEWAY") for leg in legs],
    }


Reference = tuple[int, str, int, int, int, list[Any]]  # family, dst, plen, rtm_type, scope, attrs


def pyroute2_encoding(ref: Reference, *, table: int = 254, proto: int = 44) -> bytes:
    family, dst, plen, rtype, scope, attrs = ref
    msg = rtmsg()
    msg["family"], msg["dst_len"], msg["proto"], msg["type"], msg["scope"] = family, plen, proto, rtype, scope
    msg["table"] = table if table < 256 else 0
    msg["attrs"] = [("RTA_TABLE", table), ("RTA_PRIORITY", 44), ("RTA_DST", dst), *attrs]
    msg.encode()
    return bytes(msg.data)


def multipath(*gateways: str) -> tuple[str, list[dict[str, Any]]]:
    return ("RTA_MULTIPATH", [{"attrs": [("RTA_GATEWAY", gw)]} for gw in gateways])


V4, V6 = socket.AF_INET, socket.AF_INET6
UNI, BH = codec.RTN_UNICAST, codec.RTN_BLACKHOLE
CASES = [
    ("v4 unicast", FibChange(("10.1.0.0/24",), ("10.200.0.2",)),
     (V4, "10.1.0.0", 24, UNI, 0, [("RTA_GATEWAY", "10.200.0.2")])),
    ("v6 unicast", FibChange(("fd01:2::/64",), ("fd00::2",)),
     (V6, "fd01:2::", 64, UNI, 0, [("RTA_GATEWAY", "fd00::2")])),
    ("v4 ecmp", FibChange(("10.2.0.0/16",), ("10.200.0.2", "10.200.0.3")),
     (V4, "10.2.0.0", 16, UNI, 0, [multipath("10.200.0.2", "10.200.0.3")])),
    ("v6 ecmp", FibChange(("fd02::/48",), ("fd00::2", "fd00::3", "fd00::4")),
     (V6, "fd02::", 48, UNI, 0, [multipath("fd00::2", "fd00::3", "fd00::4")])),
    ("v4 blackhole", FibChange(("10.244.1.0/26",), (), "blackhole"), (V4, "10.244.1.0", 26, BH, 0, [])),
    ("v6 blackhole", FibChange(("fd10::/122",), (), "blackhole"), (V6, "fd10::", 122, BH, 0, [])),
    ("v4 host", FibChange(("10.9.9.9/32",), ("10.200.0.2",)),
     (V4, "10.9.9.9", 32, UNI, 0, [("RTA_GATEWAY", "10.200.0.2")])),
    ("v4 delete", FibChange(("10.1.0.0/24",), None), (V4, "10.1.0.0", 24, 0, 255, [])),
    ("v6 delete", FibChange(("fd01:2::/64",), None), (V6, "fd01:2::", 64, 0, 255, [])),
]


@pytest.mark.parametrize(("change", "reference"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_message_reads_like_pyroute2s_encoding_of_the_same_route(change: FibChange, reference: Any) -> None:
    buf, rejected = RouteCodec(254, 44, 44).encode([change], seq=7)
    assert rejected == []
    [ours] = decode_all(bytes(buf))
    [theirs] = decode_all(pyroute2_encoding(reference))
    assert facts(ours) == facts(theirs)
    assert ours["header"]["length"] == len(buf)
    assert ours["header"]["sequence_number"] == 7


def test_installs_create_or_replace_without_ack_and_deletes_are_plain_requests() -> None:
    add, delete = decode_all(bytes(RouteCodec().encode(
        [FibChange(("10.1.0.0/24",), ("10.0.0.1",)), FibChange(("10.1.0.0/24",), None)], 1)[0]))
    assert (add["header"]["type"], add["header"]["flags"]) == (codec.RTM_NEWROUTE, CREATE_REPLACE)
    assert (delete["header"]["type"], delete["header"]["flags"]) == (codec.RTM_DELROUTE, codec.NLM_F_REQUEST)
    assert not add["header"]["flags"] & codec.NLM_F_ACK


def test_every_message_carries_our_protocol_table_and_metric() -> None:
    changes = [FibChange(("10.1.0.0/24",), ("10.0.0.1",)), FibChange(("fd00::/64",), None),
               FibChange(("10.3.0.0/24",), (), "blackhole")]
    for msg in decode_all(bytes(RouteCodec(table=1000, protocol=77, metric=123).encode(changes, 1)[0])):
        assert (msg["proto"], msg["table"], msg.get_attr("RTA_TABLE")) == (77, 0, 1000)
        assert msg.get_attr("RTA_PRIORITY") == 123


def test_a_change_of_many_prefixes_is_one_message_each_with_the_batch_sequence_number() -> None:
    hops = ("10.0.0.1", "10.0.0.2")
    change = FibChange(tuple(f"10.{i >> 8}.{i & 255}.0/24" for i in range(300)), hops)
    delete = FibChange(("fd00:1::/64", "fd00:2::/64"), None)
    msgs = decode_all(RouteCodec().encode([change, delete], seq=9)[0])
    got = [(f"{m.get_attr('RTA_DST')}/{m['dst_len']}", m["header"]["type"], m["header"]["sequence_number"])
           for m in msgs]
    assert got == [(p, codec.RTM_NEWROUTE, 9) for p in change.prefixes] + [
        ("fd00:1::/64", codec.RTM_DELROUTE, 9), ("fd00:2::/64", codec.RTM_DELROUTE, 9)]
    assert all(facts(m)["multipath"] == list(hops) for m in msgs[:300])


def test_bad_prefixes_are_rejected_by_name_and_the_rest_of_their_change_encoded() -> None:
    mixed = FibChange(("10.0.0.0/24", "nonsense", "10.0.2.0/33", "fd00::/64", "10.0.4.0", "10.0.5.0/16",
                       "0.0.0.0/0"), ("10.0.0.1",))
    buf, rejected = RouteCodec().encode([mixed, FibChange(("10.0.3.0/24",), ())], seq=100)
    assert dict(rejected) == {
        "nonsense": "not an IP prefix; got 'nonsense'",
        "10.0.2.0/33": "not an IP prefix; got '10.0.2.0/33'",
        "fd00::/64": "next hop is not an address of the prefix's family; got '10.0.0.1'",
        "10.0.4.0": "not an IP prefix; got '10.0.4.0'",
        "10.0.3.0/24": "unicast route without next hops; got ()",
    }
    assert sorted(f"{m.get_attr('RTA_DST') or '0.0.0.0'}/{m['dst_len']}" for m in decode_all(buf)) == [
        "0.0.0.0/0", "10.0.0.0/24", "10.0.5.0/16"]


def test_template_reuse_never_leaks_one_routes_next_hops_into_another() -> None:
    a, b = ("10.0.0.1",), ("10.0.0.2",)
    changes = [FibChange((f"10.{i}.0.0/{16 + i % 2}",), a if i % 3 else b) for i in range(12)]
    changes += [FibChange(("10.99.0.0/16",), None), FibChange(("10.98.0.0/16", "10.97.0.0/24"), a)]
    msgs = decode_all(RouteCodec().encode(changes, 1)[0])
    got = [(f"{m.get_attr('RTA_DST')}/{m['dst_len']}", m.get_attr("RTA_GATEWAY")) for m in msgs]
    assert got == [(p, c.nexthops[0] if c.nexthops else None) for c in changes for p in c.prefixes]


def test_metric_override() -> None:
    msgs = decode_all(RouteCodec().encode([FibChange(("10.2.0.0/16", "10.3.0.0/16"), None)], 10, metric=7)[0])
    got = [(m.get_attr("RTA_DST"), m.get_attr("RTA_PRIORITY")) for m in msgs]
    assert got == [("10.2.0.0", 7), ("10.3.0.0", 7)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_split_cuts_changes_into_pieces_of_at_most_size_prefixes_in_order(size: int) -> None:
    changes = [FibChange(("a", "b", "c"), None), FibChange(("d",), ("x",)), FibChange(("e", "f"), ())]
    pieces = list(codec.split(changes, size))
    assert all(0 < sum(len(c.prefixes) for c in piece) <= size for piece in pieces)
    assert [(p, c.nexthops, c.kind) for piece in pieces for c in piece for p in c.prefixes] == [
        (p, c.nexthops, c.kind) for c in changes for p in c.prefixes]


@pytest.mark.parametrize("reference", [c[2] for c in CASES if c[2][3]], ids=[c[0] for c in CASES if c[2][3]])
def test_decode_route_reads_what_pyroute2_writes(reference: Any) -> None:
    raw = pyroute2_encoding(reference)
    _family, dst, plen, rtype, _scope, _attrs = reference
    [theirs] = decode_all(raw)
    hops = facts(theirs)["multipath"] or ([theirs.get_attr("RTA_GATEWAY")] if rtype == UNI else [])
    kind = "blackhole" if rtype == BH else "unicast"
    want = Route(f"{dst}/{plen}", tuple(hops), kind, 44)
    assert codec.RouteDecoder(254, 44).decode(raw, 0, len(raw)) == want


def test_decode_route_ignores_other_protocols_and_tables() -> None:
    raw = pyroute2_encoding((V4, "10.1.0.0", 24, UNI, 0, [("RTA_GATEWAY", "10.0.0.1")]), table=254, proto=12)
    assert codec.RouteDecoder(254, 44).decode(raw, 0, len(raw)) is None
    raw = pyroute2_encoding((V4, "10.1.0.0", 24, UNI, 0, [("RTA_GATEWAY", "10.0.0.1")]), table=300, proto=44)
    assert codec.RouteDecoder(254, 44).decode(raw, 0, len(raw)) is None
    assert codec.RouteDecoder(300, 44).decode(raw, 0, len(raw)) == Route("10.1.0.0/24", ("10.0.0.1",))


def test_decode_route_round_trips_our_own_encoding_in_a_batch() -> None:
    changes = [c[1] for c in CASES if c[1].nexthops is not None]
    buf = RouteCodec().encode(changes, 1)[0]
    decoder = codec.RouteDecoder(254, 44)
    routes = [decoder.decode(buf, off, ln) for off, ln, _t, _s in codec.iter_messages(buf)]
    assert routes == [Route(c.prefixes[0], c.nexthops or (), c.kind) for c in changes]


def test_decoder_shape_cache_agrees_with_a_fresh_decoder_on_mixed_messages() -> None:
    """Messages of many shapes, interleaved, with the destination at different offsets."""
    rng = random.Random(4)
    hops = [("10.0.0.1",), ("10.0.0.2",), ("10.0.0.1", "10.0.0.2"), ()]
    messages: list[bytes] = []
    for i in range(400):
        nexthops = rng.choice(hops)
        kind = "unicast" if nexthops else "blackhole"
        if rng.random() < 0.5:
            plen = rng.choice([16, 24])
            messages.append(bytes(RouteCodec(rng.choice([254, 300]), rng.choice([44, 12])).encode(
                [FibChange((f"10.{i % 256}.0.0/{plen}",), nexthops, kind)], i)[0]))
        else:  # RTA_DST first: another offset for the same kind of route
            msg = rtmsg()
            msg["family"], msg["dst_len"], msg["proto"], msg["table"] = V4, 24, 44, 254
            msg["type"] = BH if kind == "blackhole" else UNI
            gw = [("RTA_GATEWAY", nexthops[0])] if len(nexthops) == 1 else [multipath(*nexthops)]
            msg["attrs"] = [("RTA_DST", f"11.{i % 256}.{i // 256}.0"), ("RTA_PRIORITY", 44),
                            *(gw if nexthops else [])]
            msg.encode()
            messages.append(bytes(msg.data))
    cached = codec.RouteDecoder(254, 44)
    got = [cached.decode(m, 0, len(m)) for m in messages]
    assert got == [codec.RouteDecoder(254, 44).decode(m, 0, len(m)) for m in messages]
    assert 100 < sum(r is not None for r in got) < 400


def _error(seq: int, errno: int, text: str | None, capped: bool, request: bytes) -> bytes:
    echo = request[:16] if capped else request
    tlvs = b""
    if text is not None:
        payload = text.encode() + b"\0"
        tlvs = struct.pack("=HH", 4 + len(payload), codec.NLMSGERR_ATTR_MSG) + payload
        tlvs += b"\0" * (-len(tlvs) % 4)
    flags = (codec.NLM_F_CAPPED if capped else 0) | (codec.NLM_F_ACK_TLVS if text is not None else 0)
    body = struct.pack("=i", -errno) + echo + tlvs
    return struct.pack("=IHHII", 16 + len(body), codec.NLMSG_ERROR, flags, seq, 1) + body


@pytest.mark.parametrize("capped", [True, False])
def test_errors_decode_with_their_sequence_number_kernel_text_and_echoed_route(capped: bool) -> None:
    add = RouteCodec().encode([FibChange(("10.7.0.0/24",), ("10.0.0.1",))], 41)[0]
    delete = RouteCodec().encode([FibChange(("FD00:0::7:0/112",), None)], 42)[0]
    data = _error(41, 101, "Nexthop has invalid gateway", capped, add) + _error(42, 22, None, capped, delete)
    got = [codec.parse_error(data, off, ln) for off, ln, _t, _s in codec.iter_messages(data)]
    assert got == [
        codec.NetlinkError(41, 101, "Nexthop has invalid gateway", codec.RTM_NEWROUTE,
                           None if capped else "10.7.0.0/24"),
        codec.NetlinkError(42, 22, "", codec.RTM_DELROUTE, None if capped else "fd00::7:0/112"),
    ]


def test_dump_request_asks_for_our_table_and_protocol() -> None:
    raw = codec.dump_request(V6, 1000, 44, seq=9)
    [msg] = decode_all(raw)
    assert (msg["header"]["type"], msg["header"]["flags"]) == (codec.RTM_GETROUTE, 0x301)
    assert (msg["family"], msg["proto"], msg.get_attr("RTA_TABLE")) == (V6, 44, 1000)


@pytest.mark.parametrize(("given", "canonical"), [
    ("10.0.0.0/8", "10.0.0.0/8"), ("FD00:0:0::1:0/112", "fd00::1:0/112"), ("::/0", "::/0")])
def test_canonical_prefix(given: str, canonical: str) -> None:
    assert codec.canonical_prefix(given) == canonical


@pytest.mark.parametrize("bad", ["10.0.0.0", "10.0.0.0/33", "fd00::/129", "x/8", "10.0.0.0/-1", "10.0.0/8"])
def test_parse_prefix_rejects(bad: str) -> None:
    with pytest.raises(codec.InvalidChange):
        codec.parse_prefix(bad)


@pytest.mark.parametrize("args", [(0, 44, 0), (254, 0, 0), (254, 256, 0), (254, 44, -1)])
def test_codec_rejects_out_of_range_settings(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        RouteCodec(*args)
