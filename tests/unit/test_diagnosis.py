"""Why a session is down: the pure wording and attribution (bgpd.diagnosis), the parsers of the edge
(bgpd.tcpstats) and the reconciler turning evidence samples into INFO text (fake ports, manual clock)."""

from __future__ import annotations

import errno
import json

import pytest

from bgpd.desired import Password
from bgpd.diagnosis import (
    Candidate,
    Evidence,
    Observation,
    ProbeTarget,
    TcpCounters,
    attribute,
    gtsm_rise,
    notification_text,
    observation_text,
    observations_text,
    open_error,
    probe_text,
    unanswered_text,
)
from bgpd.speaker.codec import PeerOpen, PeerState, decode_line
from bgpd.tcpstats import classify, parse_gtsm_drops, parse_netstat, parse_syn_sent
from tests.unit.test_plan import node, session
from tests.unit.test_reconciler import G9, M2, M3, World

T0 = 1_700_000_000.0  # 22:13:20 UTC
PW = Candidate("Global_10_0_0_9", "10.0.0.9", password=True, ttl_security=None)
PW2 = Candidate("Global_10_0_0_8", "10.0.0.8", password=True, ttl_security=None)
PLAIN = Candidate("Mesh_10_0_0_2", "10.0.0.2", password=False, ttl_security=None)
GTSM = Candidate("Global_10_0_9_2", "10.0.9.2", password=False, ttl_security=1)


@pytest.mark.parametrize(("rise", "drops", "down", "expected"), [
    (TcpCounters(), {}, [PW, PLAIN, GTSM], []),
    # one password session down: the failures are its own
    (TcpCounters(md5_failure=5), {}, [PW, PLAIN], [(PW.name, "md5_failure", 5, 1)]),
    # two: each says what the host saw, and that it cannot tell which
    (TcpCounters(md5_failure=5), {}, [PW, PW2, PLAIN],
     [(PW.name, "md5_failure", 5, 2), (PW2.name, "md5_failure", 5, 2)]),
    (TcpCounters(md5_not_found=2), {}, [PW], [(PW.name, "md5_not_found", 2, 1)]),
    # a signature where we have no key: only sessions without a password can be the cause
    (TcpCounters(md5_unexpected=3), {}, [PW, PLAIN], [(PLAIN.name, "md5_unexpected", 3, 1)]),
    # failures while no password session is down: nobody's
    (TcpCounters(md5_failure=5), {}, [PLAIN], []),
    (TcpCounters(min_ttl_drop=4), {}, [PW, GTSM], [(GTSM.name, "min_ttl", 4, 1)]),
    # bgpd's own GTSM table counts per address: always exact
    (TcpCounters(), {"10.0.9.2": 7, "10.0.0.2": 1}, [GTSM, PLAIN], [(GTSM.name, "gtsm_drop", 7, 1)]),
])
def test_attribute(rise: TcpCounters, drops: dict[str, int], down: list[Candidate],
                   expected: list[tuple[str, str, int, int]]) -> None:
    assert attribute(rise, drops, down) == expected


def test_counter_rises_never_go_negative_and_gtsm_rises_are_per_address() -> None:
    assert TcpCounters(1, 5, 9, 0).rise_since(TcpCounters(0, 7, 4, 0)) == TcpCounters(1, 0, 5, 0)
    assert gtsm_rise((("a", 5), ("b", 2), ("c", 1)), (("a", 3), ("b", 2))) == {"a": 2, "c": 1}


@pytest.mark.parametrize(("observation", "ttl", "text"), [
    (Observation("md5_failure", 12, T0), None,
     "MD5 password mismatch: 12 segments with a wrong signature since 22:13:20 UTC"),
    (Observation("md5_not_found", 3, T0), None,
     "MD5: 3 segments without a signature since 22:13:20 UTC (the peer has no password?)"),
    (Observation("md5_unexpected", 3, T0), None,
     "MD5: 3 signed segments since 22:13:20 UTC, but this session has no password (the peer has one)"),
    (Observation("md5_failure", 12, T0, shared=3), None,
     "MD5 failures (wrong signature) observed on this host since 22:13:20 UTC (12; 3 sessions that are "
     "down could have caused them)"),
    (Observation("min_ttl", 4, T0), 1,
     "GTSM: 4 packets below the minimum TTL dropped on our connections since 22:13:20 UTC"),
    (Observation("gtsm_drop", 9, T0), 2,
     "GTSM: 9 packets from the peer dropped by bgpd's TTL rule since 22:13:20 UTC"),
])
def test_observation_text(observation: Observation, ttl: int | None, text: str) -> None:
    assert observation_text(observation) == text


def test_gtsm_observations_explain_themselves_once() -> None:
    both = [Observation("min_ttl", 4, T0), Observation("gtsm_drop", 9, T0)]
    assert observations_text(both, 1)[2:] == [
        "the peer is more than 1 hop(s) away (ttlSecurity) or does not send TTL 255"]
    assert observations_text([Observation("md5_failure", 1, T0)], 1)[1:] == []


@pytest.mark.parametrize(("result", "peer", "text"), [
    ("refused", "10.0.0.4", "connection refused: nothing listens on 10.0.0.4:179"),
    ("timeout", "10.0.0.4", "no answer from 10.0.0.4:179 (TCP connect timed out)"),
    ("no-route", "fd00::4", "no route to fd00::4"),
    ("refused", "fd00::4", "connection refused: nothing listens on [fd00::4]:179"),
    ("unreachable", "10.0.0.4", "10.0.0.4 unreachable (no ARP/ND answer or an ICMP error)"),
    ("open", "10.0.0.4", "10.0.0.4:179 accepts TCP connections, yet no OPEN arrived"),
])
def test_probe_text(result: str, peer: str, text: str) -> None:
    assert probe_text(result, peer, 179) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(("direction", "code", "sub", "message", "text"), [
    ("receive", 2, 2, "Bad Peer AS",
     "NOTIFICATION received 2/2 OPEN error: bad peer AS; the peer does not expect our AS 64512"),
    ("send", 2, 2, "ASN in OPEN (65021) did not match ASN expected (65099)",
     "NOTIFICATION sent 2/2 OPEN error: bad peer AS "
     "(ASN in OPEN (65021) did not match ASN expected (65099))"),
    ("receive", 6, 2, "", "NOTIFICATION received 6/2 Cease: administrative shutdown"),
    ("receive", 4, 0, "Hold timer expired", "NOTIFICATION received 4/0 hold timer expired"),
    ("receive", 9, 1, "", "NOTIFICATION received 9/1 code 9"),
])
def test_notification_text(direction: str, code: int, sub: int, message: str, text: str) -> None:
    assert notification_text(direction, code, sub, message, 64512) == text


def test_open_error() -> None:
    assert open_error(65021, 65099) == "OPEN error: bad peer AS (peer says AS 65021, we expect 65099)"


# ------------------------------------------------------------------------------------- edge parsers

NETSTAT = """TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPMinTTLDrop
TcpExt: 0 1 2 34 5
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
"""


def test_parse_netstat() -> None:
    assert parse_netstat(NETSTAT) == TcpCounters(md5_not_found=1, md5_unexpected=2, md5_failure=34,
                                                 min_ttl_drop=5)
    assert parse_netstat("TcpExt: A\nTcpExt: 1\n") == TcpCounters()  # an older kernel: no such counters


def test_parse_gtsm_drops_from_nft_json() -> None:
    rule = {"rule": {"family": "inet", "table": "bgpd_gtsm", "chain": "input", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": "10.1.9.2"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 179}},
        {"match": {"op": "<", "left": {"payload": {"protocol": "ip", "field": "ttl"}}, "right": 255}},
        {"counter": {"packets": 136, "bytes": 8160}}, {"drop": None}]}}
    text = json.dumps({"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"name": "bgpd_gtsm"}},
                                    rule]})
    assert parse_gtsm_drops(text) == (("10.1.9.2", 136),)


@pytest.mark.parametrize(("code", "result"), [
    (None, "open"), (errno.ECONNREFUSED, "refused"), (errno.ENETUNREACH, "no-route"),
    (errno.EHOSTUNREACH, "unreachable"), (errno.ETIMEDOUT, "timeout"),
])
def test_classify_connect_errors(code: int | None, result: str) -> None:
    assert classify(code) == result


def test_open_of_a_4_byte_as_peer_gives_its_real_as() -> None:
    line = ('{"exabgp": "5.0.0", "type": "open", "neighbor": {"address": {"local": "10.0.0.1", "peer": '
            '"10.0.0.2"}, "direction": "receive", "open": {"version": 4, "asn": 23456, "hold_time": 90, '
            '"router_id": "10.0.0.2", "capabilities": {"65": {"name": "asn4", "asn4": 4200000001}}}}}')
    [event] = decode_line(line)
    assert isinstance(event, PeerOpen) and event.asn == 4200000001


# ------------------------------------------------------------------------------------- reconciler

def down_world() -> World:
    """M2 plain and active, M3 passive, G9 with a password: all down."""
    w = World()
    w.apply("a", node(session("10.0.0.2"), session("10.0.0.3", passive=True),
                      session("10.0.0.9", name=G9, kind="Global", remote_as=65009, local_as=64512,
                              password=Password("x"))))
    return w


def test_nothing_is_sampled_while_every_session_is_up() -> None:
    w = down_world()
    w.up(M2, M3, G9)
    assert w.r.evidence_wanted() is None


def test_peer_with_the_wrong_as_is_named_from_its_open() -> None:
    w = down_world()
    w.event(PeerOpen("10.0.0.9", "10.0.0.9", 65021, 90, None, ()),
            PeerState("10.0.0.9", "down", "closing connection"))
    assert w.info()[G9] == ("start", "Active: closing connection; OPEN error: bad peer AS "
                                     "(peer says AS 65021, we expect 65009)")


def test_md5_failures_are_attributed_to_the_one_password_session_down() -> None:
    w = down_world()
    w.event(Evidence(TcpCounters(md5_failure=10)))  # the baseline
    assert w.info()[G9] == ("start", "Connect: new session; no OPEN received")
    w.clock.advance(3)
    w.event(Evidence(TcpCounters(md5_failure=14)))
    w.clock.advance(3)
    w.event(Evidence(TcpCounters(md5_failure=16)))
    assert w.info()[G9] == ("start", "Connect: new session; no OPEN received; MD5 password mismatch: 6 "
                                     "segments with a wrong signature since 22:13:23 UTC")
    assert w.info()[M2] == ("start", "Connect: new session")  # no password: not its failures
    w.event(PeerOpen("10.0.0.9", "10.0.0.9", 65009, 90, None, ()))
    w.up(G9)
    assert w.info()[G9] == ("up", "Established")
    w.event(PeerState("10.0.0.9", "down", "closing connection"))
    assert w.info()[G9] == ("start", "Active: closing connection")  # evidence of the past is gone


def test_probes_go_to_active_plain_sessions_once_they_had_time_and_say_what_they_found() -> None:
    w = down_world()
    w.event(*(PeerState(ip, "down", "closing connection") for ip in ("10.0.0.2", "10.0.0.9") for _ in "12"))
    assert w.r.evidence_wanted() == (False, ())  # too early: give ExaBGP its chance first
    w.clock.advance(6)
    # not M3 (passive: the peer dials), not G9 (a password: an unsigned SYN gets no answer anyway)
    assert w.r.evidence_wanted() == (False, (ProbeTarget(M2, "10.0.0.2", 179, "10.0.0.1"),))
    w.event(Evidence(TcpCounters(), probes=((M2, "refused"),)))
    assert w.info()[M2] == ("start", "Active: closing connection; no OPEN received; "
                                     "connection refused: nothing listens on 10.0.0.2:179")
    assert w.r.evidence_wanted() == (False, ())  # not again before PROBE_EVERY
    w.clock.advance(31)
    assert w.r.evidence_wanted() == (False, (ProbeTarget(M2, "10.0.0.2", 179, "10.0.0.1"),))


def test_a_peer_that_may_just_be_slow_is_not_probed() -> None:
    w = down_world()
    w.clock.advance(60)
    w.event(PeerState("10.0.0.2", "down", "closing connection"))  # one failure: could be a collision
    assert w.r.evidence_wanted() == (False, ())
    w.event(Evidence(TcpCounters(), syn_sent=(("10.0.0.2", 179, 2),)))  # our SYNs unanswered: probe
    assert w.r.evidence_wanted() == (False, (ProbeTarget(M2, "10.0.0.2", 179, "10.0.0.1"),))


def test_gtsm_drops_are_read_only_when_a_gtsm_session_is_down_and_attributed_by_address() -> None:
    w = World()
    far = session("10.0.9.2", name="Global_10_0_9_2", kind="Global", ttl_security=1)
    w.apply("a", node(far, session("10.0.0.3")))
    w.up(M3)
    assert w.r.evidence_wanted() == (True, ())  # GTSM sessions are never probed: TTL drops say more
    w.event(Evidence(TcpCounters(min_ttl_drop=1), gtsm_drops=(("10.0.9.2", 3),)))
    w.event(Evidence(TcpCounters(min_ttl_drop=2), gtsm_drops=(("10.0.9.2", 8),)))
    info = w.info()["Global_10_0_9_2"][1]
    assert "GTSM: 1 packets below the minimum TTL dropped on our connections" in info
    assert "GTSM: 5 packets from the peer dropped by bgpd's TTL rule" in info
    assert info.endswith("; the peer is more than 1 hop(s) away (ttlSecurity) or does not send TTL 255")
    assert w.info()[M3] == ("up", "Established")


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0900640A:06FE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 47096232 1
   1: 0900640A:93BF 0200640A:00B3 02 00000001:00000000 01:000003FB 00000008     0        0 47108448 2
   2: 0900640A:B5A5 0200640A:00B3 06 00000000:00000000 03:00000D30 00000000     0        0 0 3
"""
TCP6 = """  sl  local_address remote_address st tx_queue rx_queue tr tm->when retrnsmt
   0: 000100FD000000000000000009000000:1234 000100FD000000000000000011000000:06FE 02 00000001:0 01:0 00000003
"""


def test_parse_syn_sent_sockets_of_both_families() -> None:
    assert parse_syn_sent(TCP) == (("10.100.0.2", 179, 8),)  # LISTEN and TIME-WAIT are not attempts
    assert parse_syn_sent(TCP6) == (("fd00:100::11", 1790, 3),)


def test_unanswered_text_blames_md5_only_for_a_session_with_a_password() -> None:
    assert unanswered_text("10.0.0.2", 179, 3, password=True) == (
        "our connection attempts to 10.0.0.2:179 get no answer (SYN sent 4 times): a peer with another MD5 "
        "password drops them silently (so do a host that is down and a firewall)")
    assert unanswered_text("fd00::2", 179, 3, password=False) == (
        "our connection attempts to [fd00::2]:179 get no answer (SYN sent 4 times): the host is down, not "
        "on the link, or a firewall drops them")


def test_our_unanswered_syns_are_evidence_for_that_peer_only() -> None:
    w = down_world()
    w.event(Evidence(TcpCounters(), syn_sent=(("10.0.0.9", 179, 1), ("10.0.0.7", 179, 9))))
    assert w.info()[G9] == ("start", "Connect: new session; no OPEN received")  # one retransmission: early
    w.event(Evidence(TcpCounters(), syn_sent=(("10.0.0.9", 179, 4),)))
    w.event(Evidence(TcpCounters(), syn_sent=()))  # ExaBGP gave up on that socket: what was seen stays
    assert w.info()[G9] == ("start", "Connect: new session; no OPEN received; our connection attempts to "
                                     "10.0.0.9:179 get no answer (SYN sent 5 times): a peer with another "
                                     "MD5 password drops them silently (so do a host that is down and a "
                                     "firewall)")
    assert w.info()[M2] == ("start", "Connect: new session")
