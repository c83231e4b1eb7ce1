"""Scalar formats of Calico v3 resources (calico-semantics.md §1.10, §1.4), table by table."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_network
from typing import Any

import pytest

from bgpd.model import values as v
from bgpd.model.resources import PeerAddress


@pytest.mark.parametrize(("raw", "expected"), [
    (0, 0), (64512, 64512), (4294967295, 4294967295), ("64512", 64512), ("1.10", 65546),
    ("00.01", 1), ("65535.65535", 4294967295), ("0.0", 0),
])
def test_as_number_accepts(raw: Any, expected: int) -> None:
    assert v.as_number(raw) == expected


@pytest.mark.parametrize(("raw", "problem"), [
    ("1.1.1", "AS number must be a decimal number or asdot 'X.Y'"),
    ("65536.65535", "asdot AS number parts must each be 0..65535"),
    ("0.-1", "AS number must be a decimal number or asdot 'X.Y'"),
    (-1, "AS number must be 0..4294967295"),
    (4294967296, "AS number must be 0..4294967295"),
    ("4294967296", "AS number must be 0..4294967295"),
    (True, "AS number must be an integer or a string, not boolean"),
    (1.5, "AS number must be an integer or a string, not number"),
    ("", "AS number must be a decimal number or asdot 'X.Y'"),
])
def test_as_number_rejects(raw: Any, problem: str) -> None:
    with pytest.raises(ValueError, match="^" + problem.replace(".", r"\.").replace("(", r"\(") + "$"):
        v.as_number(raw)


@pytest.mark.parametrize(("raw", "seconds"), [
    ("10s", 10.0), ("2m30s", 150.0), ("1h", 3600.0), ("1.5s", 1.5), ("300ms", 0.3), ("0", 0.0),
    ("1h2m3s", 3723.0), (".5s", 0.5), ("1.s", 1.0), ("90us", 0.00009), ("+5s", 5.0), ("-0s", 0.0),
])
def test_duration_accepts(raw: str, seconds: float) -> None:
    assert v.duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize(("raw", "problem"), [
    ("-1s", "must not be negative"),
    ("10", "must be a duration such as '120s', '2m30s' or '1h'"),
    ("", "must be a duration such as '120s', '2m30s' or '1h'"),
    ("1d", "must be a duration such as '120s', '2m30s' or '1h'"),
    ("s", "must be a duration such as '120s', '2m30s' or '1h'"),
    ("1s ", "must be a duration such as '120s', '2m30s' or '1h'"),
    (10, "expected string, not integer"),
])
def test_duration_rejects(raw: Any, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        v.duration(raw)
    assert str(info.value) == problem


@pytest.mark.parametrize(("raw", "expected"), [
    ("10.0.0.1", PeerAddress(ip_address("10.0.0.1"))),
    ("192.168.1.1:500", PeerAddress(ip_address("192.168.1.1"), 500)),
    ("[9000::]:500", PeerAddress(ip_address("9000::"), 500)),
    ("fd00::1", PeerAddress(ip_address("fd00::1"))),
    ("10.0.0.1:179", PeerAddress(ip_address("10.0.0.1"), 179)),
    ("[192.168.0.0]:500", PeerAddress(ip_address("192.168.0.0"), 500)),  # Calico's quirk
])
def test_peer_ip_accepts(raw: str, expected: PeerAddress) -> None:
    assert v.peer_ip(raw) == expected


@pytest.mark.parametrize(("raw", "problem"), [
    ("192.168.0.0:65536", "port must be 1..65535"),
    ("192.168.0.0:0", "port must be 1..65535"),
    ("[192.168.0.0]:98956", "port must be 1..65535"),
    ("192.168.0.0:", "must be an IP address"),
    ("[9000::]:", "must be an IP address"),
    ("[9000::FFFFF]:170", "must be an IP address, optionally with a port: ip:port or [ipv6]:port"),
    (":8552", "must be an IP address"),
    ("[]:8552", "must be an IP address"),
    ("fe80::1%eth0", "must be an IP address"),
    ("10.0.0.1/32", "must be an IP address"),
    (179, "expected string, not integer"),
])
def test_peer_ip_rejects(raw: Any, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        v.peer_ip(raw)
    assert str(info.value) == problem


def test_cidr_strict_and_loose() -> None:
    assert v.cidr("10.0.0.0/24") == ip_network("10.0.0.0/24")
    assert v.cidr("fd00::/64", 6) == ip_network("fd00::/64")
    assert v.cidr("10.0.0.1/24", strict=False) == ip_network("10.0.0.0/24")
    assert v.cidr("10.0.0.1") == ip_network("10.0.0.1/32")  # a plain address: a full mask
    assert v.cidr("::1") == ip_network("::1/128")
    assert v.cidr("fd00::/64") == ip_network("fd00::/64")
    for raw, problem in [
        ("10.0.0.1/24", "host bits set; the network is 10.0.0.0/24"),
        ("10.0.0.0/", "must be a CIDR such as '10.0.0.0/24'"),
        ("10.0.0.0/x", "must be a CIDR such as '10.0.0.0/24'"),
        ("10.0.0.0/33", "must be a CIDR such as '10.0.0.0/24'"),
        ("fd00::/64", "must be a CIDR such as '10.0.0.0/24'"),
    ]:
        with pytest.raises(ValueError) as info:
            v.cidr(raw, 4 if raw.startswith("fd") else None)
        expected = problem.replace("a CIDR", "an IPv4 CIDR") if raw.startswith("fd") else problem
        assert str(info.value) == expected


def test_node_interface_addresses() -> None:
    assert v.interface_v4("10.192.0.2/16") == IPv4Interface("10.192.0.2/16")
    assert v.interface_v4("10.192.0.2") == IPv4Interface("10.192.0.2/32")
    assert v.interface_v6("fd00::2/64") == IPv6Interface("fd00::2/64")
    assert v.interface_v6("fd00::2") == IPv6Interface("fd00::2/128")
    for raw in ("fd00::2", "10.0.0.1/33", "10.0.0.1/", "10.0.0.1/a", "300.1.1.1"):
        with pytest.raises(ValueError, match="must be an IPv4 address or address/prefix-length"):
            v.interface_v4(raw)
    with pytest.raises(ValueError, match="must be an IPv6 address"):
        v.interface_v6("10.0.0.1")


@pytest.mark.parametrize("raw", ["a", "node-1", "a.b-c.d", "0abc", "x" * 253])
def test_name_accepts(raw: str) -> None:
    assert v.name(raw) == raw


@pytest.mark.parametrize("raw", ["", "Node1", "-a", "a-", "a..b", "a_b", "x" * 254, "a.", "node 1"])
def test_name_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        v.name(raw)


def test_labels() -> None:
    assert v.label_key("kubernetes.io/hostname") == "kubernetes.io/hostname"
    assert v.label_key("rack") == "rack"
    assert v.label_value("") == ""
    assert v.label_value("rack-1") == "rack-1"
    assert [v.label_text(x) for x in (True, False, 7, None, "x")] == ["true", "false", "7", "", "x"]
    for bad in ("/x", "a/", "-x", "x" * 64, "Bad_Prefix/x", "a/b/c"):
        with pytest.raises(ValueError):
            v.label_key(bad)
    for bad in ("-x", "x" * 64, "a b"):
        with pytest.raises(ValueError):
            v.label_value(bad)
    with pytest.raises(ValueError, match="expected string, not list"):
        v.label_text([1])


def test_communities() -> None:
    assert v.community("65535:65535") == "65535:65535"
    assert v.community("4294967295:0:4294967295") == "4294967295:0:4294967295"
    for bad in ("65536:1", "1", "1:2:3:4", "a:b", "1:4294967296:1", "1::2", 100):
        with pytest.raises(ValueError):
            v.community(bad)


def test_interface_globs() -> None:
    assert v.interface_glob("eth*") == "eth*"
    assert v.interface_glob("*") == "*"
    assert v.interface_glob("*.calico") == "*.calico"
    with pytest.raises(ValueError, match="must not be"):
        v.interface_glob("*", allow_star=False)
    for bad in ("", "x" * 16, "eth 0", "eth/0"):
        with pytest.raises(ValueError):
            v.interface_glob(bad)


def test_plain_ip_family() -> None:
    assert v.ip("10.0.0.1", 4) == ip_address("10.0.0.1")
    with pytest.raises(ValueError, match=r"^must be an IPv6 address$"):
        v.ip("10.0.0.1", 6)
    for bad in ("010.0.0.1", "1.2.3", " 1.2.3.4", "a\x00b", "é", "1::2::3", "fe80::1%eth0", "[::1]"):
        with pytest.raises(ValueError, match=r"^must be an IP address$"):
            v.ip(bad)
    assert v.ip("::ffff:1.2.3.4") == ip_address("::ffff:1.2.3.4")
    assert v.ip("FD00::1", 6) == ip_address("fd00::1")
