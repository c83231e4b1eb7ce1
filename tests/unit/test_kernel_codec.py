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
    ("v4 unicast", FibChange("10.1.0.0/24", ("10.200.0.2",)),
     (V4, "10.1.0.0", 24, UNI, 0, [("RTA_GATEWAY", "10.200.0.2")])),
    ("v6 unicast", FibChange("fd01:2::/64", ("fd00::2",)),
     (V6, "fd01:2::", 64, UNI, 0, [("RTA_GATEWAY", "fd00::2")])),
    ("v4 ecmp", FibChange("10.2.0.0/16", ("10.200.0.2", "10.200.0.3")),
     (V4, "10.2.0.0", 16, UNI, 0, [multipath("10.200.0.2", "10.200.0.3")])),
    ("v6 ecmp", FibChange("fd02::/48", ("fd00::2", "fd00::3", "fd00::4")),
     (V6, "fd02::", 48, UNI, 0, [multipath("fd00::2", "fd00::3", "fd00::4")])),
    ("v4 blackhole", FibChange("10.244.1.0/26", (), "blackhole"), (V4, "10.244.1.0", 26, BH, 0, [])),
    ("v6 blackhole", FibChange("fd10::/122", (), "blackhole"), (V6, "fd10::", 122, BH, 0, [])),
    ("v4 host", FibChange("10.9.9.9/32", ("10.200.0.2",)),
     (V4, "10.9.9.9", 32, UNI, 0, [("RTA_GATEWAY", "10.200.0.2")])),
    ("v4 delete", FibChange("10.1.0.0/24", None), (V4, "10.1.0.0", 24, 0, 255, [])),
    ("v6 delete", FibChange("fd01:2::/64", None), (V6, "fd01:2::", 64, 0, 255, [])),
]


@pytest.mark.parametrize(("change", "reference"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_message_reads_like_pyroute2s_encoding_of_the_same_route(change: FibChange, reference: Any) -> None:
    buf, rejected = RouteCodec(254, 44, 44).encode([change], seq0=7)
    assert rejected == []
    [ours] = decode_all(bytes(buf))
    [theirs] = decode_all(pyroute2_encoding(reference))
    assert facts(ours) == facts(theirs)
    assert ours["header"]["length"] == len(buf)
    assert ours["header"]["sequence_number"] == 7


def test_installs_create_or_replace_without_ack_and_deletes_are_plain_requests() -> None:
    add, delete = decode_all(bytes(RouteCodec().encode(
        [FibChange("10.1.0.0/24", ("10.0.0.1",)), FibChange("10.1.0.0/24", None)], 1)[0]))
    assert (add["header"]["type"], add["header"]["flags"]) == (codec.RTM_NEWROUTE, CREATE_REPLACE)
    assert (delete["header"]["type"], delete["header"]["flags"]) == (codec.RTM_DELROUTE, codec.NLM_F_REQUEST)
    assert not add["header"]["flags"] & codec.NLM_F_ACK


def test_every_message_carries_our_protocol_table_and_metric() -> None:
    changes = [FibChange("10.1.0.0/24", ("10.0.0.1",)), FibChange("fd00::/64", None),
               FibChange("10.3.0.0/24", (), "blackhole")]
    for msg in decode_all(bytes(RouteCodec(table=1000, protocol=77, metric=123).encode(changes, 1)[0])):
        assert (msg["proto"], msg["table"], msg.get_attr("RTA_TABLE")) == (77, 0, 1000)
        assert msg.get_attr("RTA_PRIORITY") == 123


def test_sequence_numbers_map_back_to_indexes_and_bad_changes_are_rejected() -> None:
    changes = [FibChange("10.0.0.0/24", ("10.0.0.1",)), FibChange("nonsense", ("10.0.0.1",)),
               FibChange("10.0.1.0/24", ("fd00::1",)), FibChange("10.0.2.0/33", ("10.0.0.1",)),
               FibChange("10.0.3.0/24", ()), FibChange("fd00::/64", ("fd00::1",)),
               FibChange("10.0.4.0", ("10.0.0.1",))]
    buf, rejected = RouteCodec().encode(changes, seq0=100)
    assert [i for i, _ in rejected] == [1, 2, 3, 4, 6]
    assert rejected[0][1] == "not an IP prefix; got 'nonsense'"
    assert rejected[1][1] == "next hop is not an address of the prefix's family; got 'fd00::1'"
    assert rejected[3][1] == "unicast route without next hops; got ()"
    assert [m["header"]["sequence_number"] for m in decode_all(bytes(buf))] == [100, 105]


def test_template_reuse_never_leaks_one_routes_next_hops_into_another() -> None:
    a, b = ("10.0.0.1",), ("10.0.0.2",)
    changes = [FibChange(f"10.{i}.0.0/{16 + i % 2}", a if i % 3 else b) for i in range(12)]
    changes += [FibChange("10.99.0.0/16", None), FibChange("10.98.0.0/16", a)]
    msgs = decode_all(bytes(RouteCodec().encode(changes, 1)[0]))
    got = [(f"{m.get_attr('RTA_DST')}/{m['dst_len']}", m.get_attr("RTA_GATEWAY")) for m in msgs]
    assert got == [(c.prefix, c.nexthops[0] if c.nexthops else None) for c in changes]


def test_start_stop_and_metric_override() -> None:
    changes = [FibChange(f"10.{i}.0.0/16", None) for i in range(5)]
    msgs = decode_all(bytes(RouteCodec().encode(changes, 10, start=2, stop=4, metric=7)[0]))
    assert [(m.get_attr("RTA_DST"), m["header"]["sequence_number"], m.get_attr("RTA_PRIORITY"))
            for m in msgs] == [("10.2.0.0", 12, 7), ("10.3.0.0", 13, 7)]


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
    buf = bytes(RouteCodec().encode(changes, 1)[0])
    decoder = codec.RouteDecoder(254, 44)
    routes = [decoder.decode(buf, off, ln) for off, ln, _t, _s in codec.iter_messages(buf)]
    assert routes == [Route(c.prefix, c.nexthops or (), c.kind) for c in changes]


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
                [FibChange(f"10.{i % 256}.0.0/{plen}", nexthops, kind)], i)[0]))
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


def _error(seq: int, errno: int, text: str | None, capped: bool = True) -> bytes:
    request = struct.pack("=IHHII", 60, codec.RTM_NEWROUTE, CREATE_REPLACE, seq, 0)
    echo = request if capped else request + bytes(44)
    tlvs = b""
    if text is not None:
        payload = text.encode() + b"\0"
        tlvs = struct.pack("=HH", 4 + len(payload), codec.NLMSGERR_ATTR_MSG) + payload
        tlvs += b"\0" * (-len(tlvs) % 4)
    flags = (codec.NLM_F_CAPPED if capped else 0) | (codec.NLM_F_ACK_TLVS if text is not None else 0)
    body = struct.pack("=i", -errno) + echo + tlvs
    return struct.pack("=IHHII", 16 + len(body), codec.NLMSG_ERROR, flags, seq, 1) + body


@pytest.mark.parametrize("capped", [True, False])
def test_errors_decode_with_their_sequence_number_and_kernel_text(capped: bool) -> None:
    data = _error(41, 101, "Nexthop has invalid gateway", capped) + _error(42, 22, None, capped)
    got = [codec.parse_error(data, off, ln) for off, ln, _t, _s in codec.iter_messages(data)]
    assert got == [codec.NetlinkError(41, 101, "Nexthop has invalid gateway"), codec.NetlinkError(42, 22, "")]


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
