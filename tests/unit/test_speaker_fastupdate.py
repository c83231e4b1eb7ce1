"""The fast UPDATE path writes the JSON line ExaBGP writes, byte for byte, and leaves the rest to ExaBGP.

Both paths run side by side in this process: `fastupdate.received` builds the replacements without
installing them, so ExaBGP's own functions stay in place for every other test.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from typing import Any

import exabgp.version
import pytest
from exabgp.bgp.message.action import Action
from exabgp.bgp.message.direction import Direction
from exabgp.bgp.message.notification import Notify
from exabgp.bgp.message.open.capability.negotiated import Negotiated
from exabgp.bgp.message.update import EOR, Update
from exabgp.bgp.message.update.attribute import Attributes
from exabgp.bgp.message.update.nlri.cidr import CIDR
from exabgp.bgp.message.update.nlri.inet import INET
from exabgp.bgp.neighbor import Neighbor
from exabgp.logger import log
from exabgp.protocol.family import AFI, SAFI
from exabgp.protocol.ip import IP, IPSelf
from exabgp.reactor.api.response.json import JSON
from exabgp.reactor.asynchronous import ASYNC
from exabgp.reactor.loop import Reactor
from exabgp.rib.change import Change
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpd.speaker import fastupdate

log.silence()  # ExaBGP's logger is unset outside its reactor
EXABGP_UNPACK = Update.unpack_message.__func__  # type: ignore[attr-defined]
FAST_UNPACK, FAST_JSON = fastupdate.received(EXABGP_UNPACK, JSON._update)

ORIGIN_ASPATH = bytes([0x40, 1, 1, 0, 0x40, 2, 0])  # ORIGIN IGP, an empty AS_PATH
VIA_10_0_0_1 = ORIGIN_ASPATH + bytes([0x40, 3, 4, 10, 0, 0, 1])  # and NEXT_HOP 10.0.0.1
Prefix = tuple[int, bytes]  # (length, the octets on the wire, host bits and all)


def neighbor(adj_rib_in: bool = False) -> Neighbor:
    n = Neighbor()
    for key, value in {"local-address": IP.create("192.0.2.1"), "peer-address": "192.0.2.2",
                       "local-as": 65001, "peer-as": 65002, "router-id": "192.0.2.1",
                       "adj-rib-in": adj_rib_in}.items():
        n[key] = value
    return n


def negotiated(adj_rib_in: bool = False) -> Negotiated:
    session = Negotiated(neighbor(adj_rib_in))
    session.asn4 = True
    session.families = [(AFI.ipv4, SAFI.unicast), (AFI.ipv6, SAFI.unicast)]
    return session


def body(withdrawn: list[Prefix], attributes: bytes, announced: list[Prefix]) -> bytes:
    def nlri(prefixes: list[Prefix]) -> bytes:
        return b"".join(bytes([length]) + octets for length, octets in prefixes)
    w, n = nlri(withdrawn), nlri(announced)
    return struct.pack("!H", len(w)) + w + struct.pack("!H", len(attributes)) + attributes + n


def attribute(flags: int, code: int, value: bytes) -> bytes:
    return bytes([flags, code, len(value)]) + value


def line(unpack: Callable[..., Any], encode: Callable[..., Any], data: bytes, compact: bool,
         session: Negotiated | None = None) -> tuple[type, str]:
    """The message ``unpack`` makes of ``data`` and the JSON line ``encode`` writes for it, without
    the fields that differ from call to call (time, counter)."""
    session = session or negotiated()
    message = unpack(Update, data, Direction.IN, session)
    encoder = JSON("5.0.15")
    encoder.compact = compact
    original = JSON._update
    JSON._update = encode  # type: ignore[method-assign]
    try:
        text = encoder.update(session.neighbor, "receive", message, None, b"", b"")
    finally:
        JSON._update = original  # type: ignore[method-assign]
    return type(message), re.sub(r'"time": [^,]*, |"counter": \d+, ', "", text)


def both(data: bytes, compact: bool = True, session: Negotiated | None = None) -> tuple[str, str, type]:
    kind, fast = line(FAST_UNPACK, FAST_JSON, data, compact, session)
    _, exabgp = line(EXABGP_UNPACK, JSON._update, data, compact, session)
    return fast, exabgp, kind


@st.composite
def prefixes(draw: st.DrawFn) -> list[Prefix]:
    found = []
    for length in draw(st.lists(st.integers(0, 32), max_size=40)):
        found.append((length, draw(st.binary(min_size=(length + 7) // 8, max_size=(length + 7) // 8))))
    return found


@st.composite
def attribute_sets(draw: st.DrawFn) -> bytes:
    asns = draw(st.lists(st.integers(1, 2**32 - 1), min_size=0, max_size=5))
    chosen = [attribute(0x40, 1, bytes([draw(st.integers(0, 2))])),
              attribute(0x40, 2, (bytes([2, len(asns)]) + b"".join(struct.pack("!I", a) for a in asns))
                        if asns else b""),
              attribute(0x40, 3, draw(st.binary(min_size=4, max_size=4)))]
    if draw(st.booleans()):
        chosen.append(attribute(0x80, 4, struct.pack("!I", draw(st.integers(0, 2**32 - 1)))))
    if draw(st.booleans()):
        chosen.append(attribute(0x40, 5, struct.pack("!I", draw(st.integers(0, 2**32 - 1)))))
    communities = draw(st.lists(st.integers(0, 2**32 - 1), max_size=4))
    if communities:
        chosen.append(attribute(0xC0, 8, b"".join(struct.pack("!I", c) for c in communities)))
    return b"".join(chosen)


@settings(max_examples=300, deadline=None)
@given(withdrawn=prefixes(), attributes=attribute_sets(), announced=prefixes(), compact=st.booleans())
def test_the_fast_line_is_exabgps_line(withdrawn: list[Prefix], attributes: bytes, announced: list[Prefix],
                                       compact: bool) -> None:
    data = body(withdrawn, attributes if announced else b"", announced)
    fast, exabgp, kind = both(data, compact)
    assert fast == exabgp
    assert (kind.__name__ == "IPv4Update") == bool(withdrawn or announced)  # the fast path took it


def test_a_typical_update_shows_its_prefixes_with_their_host_bits() -> None:
    attributes = VIA_10_0_0_1
    data = body([(25, bytes([10, 0, 0, 0x81])), (0, b"")], attributes,
                [(24, bytes([10, 1, 2])), (32, bytes([10, 9, 9, 9]))])
    fast, exabgp, _ = both(data)
    assert fast == exabgp
    assert ('"announce": { "ipv4 unicast": { "10.0.0.1": [ "10.1.2.0/24", "10.9.9.9/32" ] } }, '
            '"withdraw": { "ipv4 unicast": [ "10.0.0.129/25", "0.0.0.0/0" ] }') in fast


@pytest.mark.parametrize("nlri", [bytes([33, 10, 0, 0, 0, 0]), bytes([24, 10, 0])],
                         ids=["length-33", "cut-short"])
def test_malformed_nlri_get_exabgps_own_notification(nlri: bytes) -> None:
    attributes = VIA_10_0_0_1
    data = struct.pack("!H", 0) + struct.pack("!H", len(attributes)) + attributes + nlri
    with pytest.raises(Notify) as exabgp:
        EXABGP_UNPACK(Update, data, Direction.IN, negotiated())
    with pytest.raises(Notify) as fast:
        FAST_UNPACK(Update, data, Direction.IN, negotiated())
    assert (fast.value.code, fast.value.subcode) == (exabgp.value.code, exabgp.value.subcode)


def test_ipv6_and_end_of_rib_take_exabgps_path() -> None:
    mp_reach = attribute(0x80, 14, struct.pack("!HB", 2, 1) + bytes([16]) + bytes(15) + b"\1" + b"\0"
                         + bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0, 1]))
    data = body([], ORIGIN_ASPATH + mp_reach, [])
    fast, exabgp, kind = both(data)
    assert fast == exabgp and kind is Update and '"ipv6 unicast"' in fast
    assert FAST_UNPACK(Update, b"\0\0\0\0", Direction.IN, negotiated()).__class__ is EOR


@pytest.mark.parametrize(("attributes", "free"), [
    (ORIGIN_ASPATH + attribute(0x40, 3, bytes(4)), True),
    (ORIGIN_ASPATH + bytes([0x90, 14, 0, 1, 0]), False),  # MP_REACH, extended length
    (attribute(0x80, 15, bytes(3)) + ORIGIN_ASPATH, False),  # MP_UNREACH first
    (bytes([0x90, 8, 0, 4]) + bytes(4), True),  # extended length, framed whole
    (ORIGIN_ASPATH + bytes([0x40, 3]), False),  # cut short
    (ORIGIN_ASPATH + attribute(0x40, 3, bytes(4))[:-1], False),  # a length beyond the end
], ids=["plain", "mp-reach", "mp-unreach", "extended", "cut", "overrun"])
def test_updates_with_mp_attributes_or_bad_framing_are_left_to_exabgp_before_parsing(
        attributes: bytes, free: bool) -> None:
    """Attributes ExaBGP would parse twice (MP NLRI) or reject go to its path unparsed."""
    assert fastupdate.mp_free(attributes) is free


def test_a_session_that_keeps_an_adj_rib_in_gets_exabgps_objects() -> None:
    attributes = VIA_10_0_0_1
    message = FAST_UNPACK(Update, body([], attributes, [(24, bytes([10, 1, 2]))]), Direction.IN,
                          negotiated(adj_rib_in=True))
    assert type(message) is Update and [str(n.cidr.prefix()) for n in message.nlris] == ["10.1.2.0/24"]


def test_another_exabgp_version_runs_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exabgp.version, "version", "5.1.0")
    assert fastupdate.install() == ("ExaBGP 5.1.0 is not 5.0.15, the version the fast UPDATE paths are "
                                    "verified against")
    assert Update.unpack_message.__func__ is EXABGP_UNPACK  # type: ignore[attr-defined]


def change(nexthop: str) -> Change:
    route = INET(AFI.ipv4, SAFI.unicast, Action.ANNOUNCE)
    route.cidr = CIDR(bytes([10, 1, 2, 0]), 24)
    route.nexthop = IPSelf(AFI.ipv4) if nexthop == "self" else IP.create(nexthop)
    return Change(route, Attributes())


def test_peers_share_a_route_with_an_address_as_next_hop() -> None:
    route = change("10.0.0.1")
    assert fastupdate.shared(Neighbor.remove_self)(neighbor(), route) is route


def test_a_route_with_next_hop_self_is_still_copied_and_rewritten_per_peer() -> None:
    route, peer = change("self"), neighbor()
    ours = fastupdate.shared(Neighbor.remove_self)(peer, route)
    assert ours is not route and route.nlri.nexthop.SELF
    assert str(ours.nlri.nexthop) == str(Neighbor.remove_self(peer, route).nlri.nexthop) == "192.0.2.1"


def scheduler_run(scheduler: type[ASYNC], commands: int, routes: int) -> list[tuple[bool, list[str]]]:
    """(what run() returned, the steps it took) per reactor pass until the queue is empty."""
    done: list[str] = []

    def command(name: int) -> Iterator[bool]:
        for route in range(routes):
            done.append(f"{name}.{route}")
            yield False

    queue = scheduler()
    for name in range(commands):
        queue.schedule(str(name), "announce", command(name))
    passes = []
    while not queue.ready():
        before = len(done)
        passes.append((queue.run(), done[before:]))
    return passes


def test_queued_commands_run_as_exabgp_runs_them_only_more_per_pass() -> None:
    class Patched(ASYNC):
        pass

    class Bigger(ASYNC):  # ExaBGP's own scheduler, in an event loop per pass, with the same budget
        LIMIT = fastupdate.ASYNC_STEPS

    class Loop(Reactor):
        pass

    fastupdate.unhurried(Patched, Loop)
    patched = scheduler_run(Patched, commands=3, routes=700)
    assert patched == scheduler_run(Bigger, commands=3, routes=700)
    assert sum(len(steps) for _, steps in patched) == 2100 and len(patched) == 3  # ExaBGP's own: 43 passes
    assert ASYNC.LIMIT == 50  # ExaBGP's own class is left alone


def test_the_reactor_does_not_sleep_while_commands_are_queued() -> None:
    class Loop(Reactor):
        pass

    class Poller:
        def __init__(self) -> None:
            self.waits: list[int] = []

        def poll(self, ms: int) -> list[tuple[int, int]]:
            self.waits.append(ms)
            return []

    fastupdate.unhurried(type("Patched", (ASYNC,), {}), Loop)
    loop = Loop.__new__(Loop)
    loop._poller, loop.asynchronous = Poller(), ASYNC()
    list(loop._wait_for_io(5))
    loop.asynchronous.schedule("bgpd", "announce", iter([False]))
    list(loop._wait_for_io(5))
    assert loop._poller.waits == [5, 0]
