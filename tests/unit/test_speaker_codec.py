"""The ExaBGP 5.0 API codec, on the exact lines of reference/exabgp.md §6.2 and on hand-made ones."""

from __future__ import annotations

import pytest
from exabgp.bgp.message.open.asn import ASN
from exabgp.configuration.configuration import Configuration
from exabgp.logger import log
from exabgp.reactor.api import API

from bgpd.bgp import ORIGIN_IGP, ORIGIN_INCOMPLETE, PathAttributes
from bgpd.speaker.codec import (
    Ack,
    CodecError,
    EndOfRib,
    NotificationEvent,
    PeerOpen,
    PeerState,
    RoutesReceived,
    RoutesWithdrawn,
    Shutdown,
    announce,
    decode_line,
    end_of_rib,
    teardown,
    withdraw,
)

HEAD = ('{ "exabgp": "5.0.0", "time": 1795303646.0436578, "host" : "vm", "pid" : 27942, "ppid" : 1, '
        '"counter": 19, ')
NEIGHBOR = ('"neighbor": { "address": { "local": "10.99.12.1", "peer": "10.99.12.2" }, '
            '"asn": { "local": 65001, "peer": 65001 }, "router-id": "10.99.12.1" , ')
ATTRS = ('"attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65077]}}, '
         '"med": 7, "local-preference": 300, "community": [ [ 65001, 42 ] ], "originator-id": "10.99.99.1", '
         '"cluster-list": [ "10.99.99.2", "10.99.99.3" ], "large-community": [ [ 65001, 1 , 2 ] ] }')


def update(body: str) -> str:
    return HEAD + '"type": "update", ' + NEIGHBOR + '"direction": "receive", "message": { ' + body + " } } }"


BIRD_ATTRS = dict(origin=ORIGIN_IGP, as_path=(65077,), med=7, local_pref=300, communities=((65001, 42),),
                  large_communities=((65001, 1, 2),), originator_id="10.99.99.1",
                  cluster_list=("10.99.99.2", "10.99.99.3"))

CASES = [
    (HEAD + '"type": "state", ' + NEIGHBOR + '"state": "connected" } }',
     [PeerState("10.99.12.2", "connected")]),
    (HEAD + '"type": "state", ' + NEIGHBOR + '"state": "up" } }', [PeerState("10.99.12.2", "up")]),
    (HEAD + '"type": "state", ' + NEIGHBOR + '"state": "down", "reason": "notification received (6,2)" } }',
     [PeerState("10.99.12.2", "down", "notification received (6,2)")]),
    (HEAD + '"type": "state", ' + NEIGHBOR + '"state": "down", "reason": "stop, message [shutting down]" } }',
     [PeerState("10.99.12.2", "down", "stop, message [shutting down]")]),
    ('{ "exabgp": "5.0.0", "time": 1795301019.6293962, "host" : "vm", "pid" : 8336, "ppid" : 1, '
     '"type": "notification", "notification": "shutdown" }', [Shutdown()]),
    (update('"update": { ' + ATTRS + ', "announce": { "ipv4 unicast": { "10.99.12.2": [ { "nlri": '
            '"198.51.100.0/24" }, { "nlri": "192.0.2.0/24" } ] } } }'),
     [RoutesReceived("10.99.12.2", "ipv4 unicast", PathAttributes("10.99.12.2", **BIRD_ATTRS),  # type: ignore[arg-type]
                     ("198.51.100.0/24", "192.0.2.0/24"))]),
    (update('"update": { ' + ATTRS + ', "announce": { "ipv6 unicast": { "fd99:12::2": [ { "nlri": '
            '"2001:db8:2::/48" } ] } } }'),
     [RoutesReceived("10.99.12.2", "ipv6 unicast", PathAttributes("fd99:12::2", **BIRD_ATTRS),  # type: ignore[arg-type]
                     ("2001:db8:2::/48",))]),
    # global + link-local next hop: the NLRI is listed twice, it is one route via the global one
    (update('"update": { "attribute": { "origin": "igp" }, "announce": { "ipv6 unicast": { '
            '"fe80::9420:95ff:fe72:5528": [ { "nlri": "2001:db8:2::/48" } ], '
            '"fd99:12::2": [ { "nlri": "2001:db8:2::/48" } ] } } }'),
     [RoutesReceived("10.99.12.2", "ipv6 unicast", PathAttributes("fd99:12::2"), ("2001:db8:2::/48",))]),
    # `exabgp.api.compact`: plain unicast NLRI are bare strings; one with a path id stays an object
    (update('"update": { ' + ATTRS + ', "announce": { "ipv4 unicast": { "10.99.12.2": [ '
            '"198.51.100.0/24", { "nlri": "192.0.2.0/24", "path-information": "0.0.0.1" } ] } } }'),
     [RoutesReceived("10.99.12.2", "ipv4 unicast", PathAttributes("10.99.12.2", **BIRD_ATTRS),  # type: ignore[arg-type]
                     ("198.51.100.0/24", "192.0.2.0/24"))]),
    (update('"update": { "attribute": { "origin": "igp" }, "announce": { "ipv6 unicast": { '
            '"fe80::9420:95ff:fe72:5528": [ "2001:db8:2::/48" ], "fd99:12::2": [ "2001:db8:2::/48" ] } } }'),
     [RoutesReceived("10.99.12.2", "ipv6 unicast", PathAttributes("fd99:12::2"), ("2001:db8:2::/48",))]),
    (update('"update": { "withdraw": { "ipv4 unicast": [ "198.51.100.0/24", "192.0.2.0/24" ] } }'),
     [RoutesWithdrawn("10.99.12.2", "ipv4 unicast", ("198.51.100.0/24", "192.0.2.0/24"))]),
    (update('"update": { "withdraw": { "ipv4 unicast": [ { "nlri": "198.51.100.0/24" }, '
            '{ "nlri": "192.0.2.0/24" } ] } }'),
     [RoutesWithdrawn("10.99.12.2", "ipv4 unicast", ("198.51.100.0/24", "192.0.2.0/24"))]),
    (update('"update": { "withdraw": { "ipv6 unicast": [ { "nlri": "2001:db8:2::/48" } ] } }'),
     [RoutesWithdrawn("10.99.12.2", "ipv6 unicast", ("2001:db8:2::/48",))]),
    (update('"eor": { "afi" : "ipv4", "safi" : "unicast" }'), [EndOfRib("10.99.12.2", "ipv4 unicast")]),
    (update('"eor": { "afi" : "ipv4", "safi" : "flow" }'), []),
    # withdraw + announce in one UPDATE; AS_SET; origin incomplete; atomic aggregate
    (update('"update": { "attribute": { "origin": "incomplete", "as-path": {"0": {"element": "as-sequence", '
            '"value": [1, 2]}, "1": {"element": "as-set", "value": [3, 4]}}, "atomic-aggregate": true }, '
            '"announce": { "ipv4 unicast": { "10.0.0.9": [ { "nlri": "10.1.0.0/16" } ] } }, '
            '"withdraw": { "ipv4 unicast": [ { "nlri": "10.2.0.0/16" } ] } }'),
     [RoutesWithdrawn("10.99.12.2", "ipv4 unicast", ("10.2.0.0/16",)),
      RoutesReceived("10.99.12.2", "ipv4 unicast",
                     PathAttributes("10.0.0.9", origin=ORIGIN_INCOMPLETE, as_path=(1, 2), as_set=(3, 4),
                                    atomic_aggregate=True), ("10.1.0.0/16",))]),
    (HEAD + '"type": "open", ' + NEIGHBOR + '"direction": "receive", "open": { "version": 4, "asn": 65002, '
     '"hold_time": 240, "router_id": "10.99.12.2", "capabilities": { "1": { "name": "multiprotocol", '
     '"families": [ "ipv4/unicast" ] }, "2": { "name": "route-refresh", "variant": "RFC" }, "64": { "name": '
     '"graceful restart", "time": 90, "address-family-flags": { "ipv4/unicast": [ ], "ipv6/unicast": '
     '[ "restart" ] }, "restart-flags": [ ] }, "65": { "name": "asn4", "asn4": 65002 } } } } }',
     [PeerOpen("10.99.12.2", "10.99.12.2", 65002, 240, 90, ("ipv4 unicast", "ipv6 unicast"))]),
    (HEAD + '"type": "open", ' + NEIGHBOR + '"direction": "receive", "open": { "version": 4, "asn": 65002, '
     '"hold_time": 240, "router_id": "10.99.12.3", "capabilities": { } } } }',
     [PeerOpen("10.99.12.2", "10.99.12.3", 65002, 240, None, ())]),
    (HEAD + '"type": "open", ' + NEIGHBOR + '"direction": "send", "open": { } } }', []),
    (HEAD + '"type": "notification", ' + NEIGHBOR + '"direction": "receive", "notification": { "code": 6, '
     '"subcode": 2, "data": "0x", "message": "bye" } } }',
     [NotificationEvent("10.99.12.2", "receive", 6, 2, "bye")]),
    (HEAD + '"type": "negotiated", ' + NEIGHBOR + '"negotiated": { "hold_time": 180 } } }', []),
    ("done", [Ack(True)]),
    ("error\n", [Ack(False)]),
    ("reload in progress", []),
]


@pytest.mark.parametrize(("line", "events"), CASES)
def test_decode(line: str, events: list[object]) -> None:
    assert decode_line(line) == events


@pytest.mark.parametrize("line", ['{ "type": "state" ', '{ "type": "state", "neighbor": { "address": {} } }',
                                  '{ "type": "update", "neighbor": {} }'])
def test_malformed_lines_raise_codec_error(line: str) -> None:
    with pytest.raises(CodecError):
        decode_line(line)


def test_announce_batches_prefixes_with_all_attributes() -> None:
    attrs = PathAttributes("10.0.0.1", as_path=(65001, 65010), as_set=(7, 8), med=50, local_pref=200,
                           communities=((65001, 5), (65001, 6)), large_communities=((1, 2, 3),),
                           originator_id="10.0.0.9", cluster_list=("10.0.0.1", "10.0.0.8"),
                           atomic_aggregate=True)
    assert announce("10.0.0.2", attrs, ["10.1.0.0/26", "10.1.0.64/26"]) == (
        "neighbor 10.0.0.2 announce attributes next-hop 10.0.0.1 as-path [ 65001 65010 ] ( 7 8 ) "
        "med 50 local-preference 200 community [ 65001:5 65001:6 ] large-community [ 1:2:3 ] "
        "originator-id 10.0.0.9 cluster-list [ 10.0.0.1 10.0.0.8 ] atomic-aggregate "
        "nlri 10.1.0.0/26 10.1.0.64/26"
    )
    # no AS path at all: ExaBGP puts its own AS on eBGP and an empty path on iBGP
    assert announce("10.0.0.2", PathAttributes("self"), ["10.1.0.0/26"]) == (
        "neighbor 10.0.0.2 announce attributes next-hop self nlri 10.1.0.0/26"
    )
    with pytest.raises(ValueError, match="at least one prefix"):
        announce("10.0.0.2", attrs, [])


def test_withdraw_eor_teardown() -> None:
    assert withdraw("fd00::2", ["2001:db8::/64", "2001:db8:1::/64"]) == [
        "neighbor fd00::2 withdraw route 2001:db8::/64", "neighbor fd00::2 withdraw route 2001:db8:1::/64"]
    assert end_of_rib("10.0.0.2", "ipv6 unicast") == "neighbor 10.0.0.2 announce eor ipv6 unicast"
    assert teardown("10.0.0.2") == "neighbor 10.0.0.2 teardown 2"


def test_decoded_attributes_round_trip_through_the_encoder() -> None:
    [event] = decode_line(CASES[5][0])
    assert isinstance(event, RoutesReceived)
    command = announce("10.0.0.3", event.attributes, event.prefixes)
    assert command == ("neighbor 10.0.0.3 announce attributes next-hop 10.99.12.2 "
                       "as-path [ 65077 ] med 7 local-preference 300 community [ 65001:42 ] "
                       "large-community [ 65001:1:2 ] "
                       "originator-id 10.99.99.1 cluster-list [ 10.99.99.2 10.99.99.3 ] "
                       "nlri 198.51.100.0/24 192.0.2.0/24")


def test_one_announce_for_several_neighbors_uses_exabgps_selector_list() -> None:
    command = announce(["10.0.0.2", "10.0.0.3"], PathAttributes("10.0.0.9"), ["10.1.0.0/26"])
    assert command == ("neighbor 10.0.0.2 , neighbor 10.0.0.3 announce attributes next-hop 10.0.0.9 "
                       "nlri 10.1.0.0/26")
    with pytest.raises(ValueError):
        announce([], PathAttributes("10.0.0.9"), ["10.1.0.0/26"])


def test_announce_leaves_out_what_exabgp_sends_by_itself() -> None:
    """ORIGIN IGP and LOCAL_PREF 100 are ExaBGP's defaults: left out (each attribute object costs ExaBGP
    a deep copy per route per neighbor); any other value is spelled out."""
    attrs = PathAttributes("10.0.0.1", as_path=(65001,), local_pref=100)
    assert announce("10.0.0.2", attrs, ["10.1.0.0/26"]) == (
        "neighbor 10.0.0.2 announce attributes next-hop 10.0.0.1 as-path [ 65001 ] nlri 10.1.0.0/26")
    other = PathAttributes("10.0.0.1", origin=ORIGIN_INCOMPLETE, local_pref=99)
    assert announce("10.0.0.2", other, ["10.1.0.0/26"]) == (
        "neighbor 10.0.0.2 announce attributes next-hop 10.0.0.1 origin incomplete local-preference 99 "
        "nlri 10.1.0.0/26")


@pytest.mark.parametrize(("ours", "theirs"), [(65002, 65002), (65002, 65001)], ids=["iBGP", "eBGP"])
def test_left_out_defaults_give_exabgp_the_same_attributes_on_the_wire(ours: int, theirs: int) -> None:
    """ExaBGP's own parser and encoder: the short command packs to the bytes the spelled-out one does."""
    log.disable()  # ExaBGP's logger is not set up outside its server
    api = API.__new__(API)  # only its command parser, no reactor
    api.configuration = Configuration([])

    class Negotiated:  # what Attributes.pack reads of a session
        local_as, peer_as, asn4, aigp, addpath = ASN(ours), ASN(theirs), True, False, None
        families: list[object] = []

    def wire(command: str) -> bytes:
        [change] = api.api_attributes(command.split(" ", 2)[2], [])  # without "neighbor <ip>"
        return bytes(change.attributes.pack(Negotiated()))

    ibgp = ours == theirs
    attrs = PathAttributes("10.0.0.1", as_path=(65001,), local_pref=100 if ibgp else None)
    short = announce("10.0.0.2", attrs, ["16.0.0.0/24"])
    spelled_out = ("neighbor 10.0.0.2 announce attributes next-hop 10.0.0.1 origin igp as-path [ 65001 ] "
                   + ("local-preference 100 " if ibgp else "") + "nlri 16.0.0.0/24")
    assert "origin" not in short and "local-preference" not in short
    assert wire(short) == wire(spelled_out)
    assert b"\x40\x01\x01\x00" in wire(short)  # ORIGIN IGP is on the wire all the same
