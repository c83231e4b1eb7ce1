"""Calico's etcdv3 key layout both ways (pure): keys, JSON values, IPAM block affinities."""

from __future__ import annotations

import json

import pytest

from bgpd.model.errors import ConfigError
from bgpd.model.loader import SourceDoc, build_snapshot
from bgpd.store import etcd_layout as layout

PEER = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
        "metadata": {"name": "rr", "resourceVersion": "17", "selfLink": "/x"},
        "spec": {"peerIP": "10.0.0.9", "asNumber": 64512}}


@pytest.mark.parametrize(("kind", "name", "key"), [
    ("BGPPeer", "rr", "/calico/resources/v3/projectcalico.org/bgppeers/rr"),
    ("BGPConfiguration", "node.kube-node-1",
     "/calico/resources/v3/projectcalico.org/bgpconfigurations/node.kube-node-1"),
    ("Node", "kube-master", "/calico/resources/v3/projectcalico.org/nodes/kube-master"),
    ("IPPool", "default-ipv4-ippool", "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"),
    ("BGPFilter", "f", "/calico/resources/v3/projectcalico.org/bgpfilters/f"),
    ("CalicoNodeStatus", "s", "/calico/resources/v3/projectcalico.org/caliconodestatuses/s"),
])
def test_resource_keys(kind: str, name: str, key: str) -> None:
    assert layout.resource_key(kind, name) == key


def test_affinity_keys() -> None:
    key = layout.affinity_key("node-1", "10.244.1.0/26")
    assert key == "/calico/ipam/v2/host/node-1/ipv4/block/10.244.1.0-26"
    assert layout.affinity_key("n", "fd00:1::/122") == "/calico/ipam/v2/host/n/ipv6/block/fd00:1::-122"
    assert layout.affinity_key("n", "10.0.0.0/26", "virtual").startswith("/calico/ipam/v2/virtual/n/")


def test_values_drop_resource_version_and_self_link() -> None:
    value = json.loads(layout.encode(PEER))
    assert value["metadata"] == {"name": "rr"}
    assert value["spec"] == PEER["spec"] and value["kind"] == "BGPPeer"


def test_decode_sets_resource_version_to_the_mod_revision() -> None:
    doc = layout.decode(layout.resource_key("BGPPeer", "rr"), layout.encode(PEER), 42)
    assert isinstance(doc, SourceDoc)
    assert doc.source == "/calico/resources/v3/projectcalico.org/bgppeers/rr"
    assert doc.body["metadata"]["resourceVersion"] == "42"
    assert build_snapshot([doc]).bgp_peers["rr"].as_number == 64512


@pytest.mark.parametrize(("key", "value"), [
    ("/calico/resources/v3/projectcalico.org/felixconfigurations/default", b"{}"),
    ("/calico/ipam/v2/host/node-1/ipv4/somethingelse", b"{}"),
    ("/calico/felix/v2/x", b"{}"),
])
def test_keys_bgpd_does_not_read(key: str, value: bytes) -> None:
    assert layout.decode(key, value, 1) is None


def test_bad_values_name_the_key() -> None:
    key = layout.resource_key("BGPPeer", "x")
    error = layout.decode(key, b"{nope", 3)
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"{key}:1 BGPPeer/x: value is not valid JSON")
    wrong = layout.decode(key, json.dumps({**PEER, "kind": "Node"}).encode(), 3)
    assert str(wrong) == f"{key}:1 BGPPeer/x kind: must be 'BGPPeer' under bgppeers/; got 'Node'"


@pytest.mark.parametrize(("value", "state", "deleted"), [
    (b'{"state":"confirmed","deleted":false}', "confirmed", False),
    (b"", "", False),  # an empty value counts as {}
    (b'{"state":"pending","deleted":true}', "pending", True),
])
def test_ipam_affinities_become_block_affinities(value: bytes, state: str, deleted: bool) -> None:
    doc = layout.decode("/calico/ipam/v2/host/node-1/ipv4/block/10.244.1.0-26", value, 9)
    assert isinstance(doc, SourceDoc)
    affinity = build_snapshot([doc]).block_affinities["node-1-10-244-1-0-26"]
    assert (affinity.node, str(affinity.cidr), affinity.state, affinity.deleted) == (
        "node-1", "10.244.1.0/26", state, deleted)
    assert json.loads(layout.encode(doc.body)) == {"state": state, "deleted": deleted}


def test_ipv6_affinity() -> None:
    doc = layout.decode("/calico/ipam/v2/host/n/ipv6/block/fd00:1::-122", b"{}", 1)
    assert isinstance(doc, SourceDoc)
    assert doc.body["spec"]["cidr"] == "fd00:1::/122"
