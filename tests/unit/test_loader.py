"""The resource loader: documents in, validated resources or exact error lines out."""
# ruff: noqa: E501  (tables of exact error lines read better unbroken)

from __future__ import annotations

import base64
import json
import textwrap
from ipaddress import IPv4Interface, ip_address, ip_network
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpd.model import yamltext
from bgpd.model.loader import SourceDoc, build_snapshot, parse_resource, parse_text
from bgpd.model.resources import (
    BGPPeer,
    Community,
    FilterOperation,
    FilterRule,
    NodeBGP,
    PeerAddress,
    PrefixAdvertisement,
    PrefixLength,
    SecretKeyRef,
)

CALICO = "apiVersion: projectcalico.org/v3\n"


def errors_of(text: str, **kwargs: Any) -> list[str]:
    docs, errors = parse_text(textwrap.dedent(text), "r.yaml")
    snapshot = build_snapshot(docs, **kwargs)
    return [str(e) for e in [*errors, *snapshot.errors]]


def load(text: str) -> Any:
    docs, errors = parse_text(textwrap.dedent(text), "r.yaml")
    snapshot = build_snapshot(docs)
    assert not errors and not snapshot.errors, [str(e) for e in [*errors, *snapshot.errors]]
    return snapshot


VALID = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-1
  labels: {rack: rack-1, route-reflector: yes, zone: 7}
spec:
  bgp: {ipv4Address: 10.0.0.1/24, asNumber: "1.10", routeReflectorClusterID: 224.0.0.1}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  asNumber: 64513
  nodeToNodeMeshEnabled: false
  listenPort: 1179
  communities: [{name: c1, value: "65000:100"}]
  prefixAdvertisements: [{cidr: 10.244.0.0/16, communities: [c1, 65000:10, "1:2:3"]}]
  serviceClusterIPs: [{cidr: 10.96.0.0/12}, {cidr: ""}]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rack1-tor}
spec:
  nodeSelector: rack == 'rack-1'
  peerIP: "[fd00::1]:1179"
  asNumber: 64567
  password: {secretKeyRef: {name: bgp, key: tor}}
  maxRestartTime: 2m30s
  keepaliveTime: 10s
  ttlSecurity: 1
  filters: [f1]
  reachableBy: fd00::fe
  sourceAddress: None
  nextHopMode: Self
  reversePeering: Manual
  localASNumber: 65000
  numAllowedLocalASNumbers: 2
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: f1}
spec:
  exportV4:
    - {action: Accept, cidr: 10.0.0.0/8, matchOperator: In, prefixLength: {min: 16, max: 24},
       operations: [{prependASPath: {prefix: [64512, "1.1"]}}, {setPriority: {value: 10}},
                    {addCommunity: {value: "65000:1"}}]}
    - {action: Reject, communities: {values: ["1:2:3"]}, peerType: eBGP, asPathPrefix: [1, 2]}
  importV6:
    - {action: Accept, source: RemotePeers, interface: "eth*", priority: 5}
---
apiVersion: v1
kind: Secret
metadata: {name: bgp}
data: {tor: c2VjcmV0}
stringData: {other: plain}
"""


def test_valid_resources_are_normalised() -> None:
    snap = load(VALID)
    node = snap.nodes["node-1"]
    assert node.meta.labels == {"rack": "rack-1", "route-reflector": "true", "zone": "7"}
    assert node.bgp == NodeBGP(ipv4_address=IPv4Interface("10.0.0.1/24"), as_number=65546,
                               route_reflector_cluster_id="224.0.0.1")
    config = snap.bgp_configurations["default"]
    assert config.communities == (Community("c1", "65000:100"),)
    assert config.prefix_advertisements == (
        PrefixAdvertisement(ip_network("10.244.0.0/16"), ("c1", "65000:10", "1:2:3")),)
    assert config.service_cluster_ips == (ip_network("10.96.0.0/12"),)
    peer = snap.bgp_peers["rack1-tor"]
    assert peer.peer_ip == PeerAddress(ip_address("fd00::1"), 1179)
    assert (peer.max_restart_time, peer.keepalive_time, peer.source_address) == (150.0, 10.0, "None")
    assert peer.password == SecretKeyRef("bgp", "tor")
    assert peer.node_selector is not None and peer.node_selector.matches({"rack": "rack-1"})
    rules = snap.bgp_filters["f1"]
    assert rules.export_v4[0].prefix_length == PrefixLength(16, 24)
    assert rules.export_v4[0].operations == (FilterOperation(prepend_as_path=(64512, 65537)),
                                             FilterOperation(set_priority=10),
                                             FilterOperation(add_community="65000:1"))
    assert rules.export_v4[1] == FilterRule("Reject", community="1:2:3", peer_type="eBGP", as_path_prefix=(1, 2))
    assert rules.import_v6[0].interface == "eth*"
    assert snap.secrets[("kube-system", "bgp")].data == {"tor": "secret", "other": "plain"}
    assert "secret" not in repr(snap.secrets[("kube-system", "bgp")])


def test_doc_origin_and_kind_list_items_are_numbered_in_order() -> None:
    text = json.dumps({"kind": "List", "apiVersion": "v1", "items": [
        {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": f"p{i}"},
         "spec": {"cidr": f"10.{i}.0.0/16"}} for i in range(3)]})
    docs, errors = parse_text(text, "pools.json")
    assert not errors
    assert [(d.doc, d.body["metadata"]["name"]) for d in docs] == [(1, "p0"), (2, "p1"), (3, "p2")]
    assert build_snapshot(docs).ip_pools["p2"].meta.origin.doc == 3


# Each row: documents -> the exact error lines, in order.
ERROR_CASES: list[tuple[str, str, list[str]]] = [
    ("peer cross-field rules", CALICO + """\
kind: BGPPeer
metadata: {name: p}
spec: {node: n1, nodeSelector: all(), peerIP: 10.0.0.1, peerSelector: all(), asNumber: 1}
""", [
        "r.yaml:1 BGPPeer/p spec.nodeSelector: cannot be set together with node; got 'all()'",
        "r.yaml:1 BGPPeer/p spec.peerSelector: cannot be set together with peerIP; got 'all()'",
        "r.yaml:1 BGPPeer/p spec.asNumber: must be unset or 0 when peerSelector is set: the remote AS is "
        "each selected node's own; got 1",
    ]),
    ("local workload rules", CALICO + """\
kind: BGPPeer
metadata: {name: p}
spec: {localWorkloadSelector: all(), peerIP: 10.0.0.1, asNumber: 0, reachableBy: fd00::1}
""", [
        "r.yaml:1 BGPPeer/p spec.localWorkloadSelector: cannot be set together with peerIP; got 'all()'",
        "r.yaml:1 BGPPeer/p spec.asNumber: must not be 0 when localWorkloadSelector is set; got 0",
        "r.yaml:1 BGPPeer/p spec.reachableBy: must be an IPv4 address like peerIP; got 'fd00::1'",
    ]),
    ("reachableBy needs peerIP, next hop rules, bad values", CALICO + """\
kind: BGPPeer
metadata: {name: p}
spec: {reachableBy: 10.0.0.1, keepOriginalNextHop: true, nextHopMode: Keep, ttlSecurity: 256,
       maxRestartTime: -1s, sourceAddress: Node, password: {secretKeyRef: {name: x}}}
""", [
        "r.yaml:1 BGPPeer/p spec.reachableBy: needs peerIP; got '10.0.0.1'",
        "r.yaml:1 BGPPeer/p spec.nextHopMode: cannot be set together with keepOriginalNextHop: true; got 'Keep'",
        "r.yaml:1 BGPPeer/p spec.password.secretKeyRef.key: required field is missing",
        "r.yaml:1 BGPPeer/p spec.sourceAddress: must be one of 'UseNodeIP', 'None'; got 'Node'",
        "r.yaml:1 BGPPeer/p spec.maxRestartTime: must not be negative; got '-1s'",
        "r.yaml:1 BGPPeer/p spec.ttlSecurity: must be 0..255; got 256",
    ]),
    ("envelope problems", """\
apiVersion: projectcalico.org/v1
kind: Node
metadata: {name: Bad_Name, namespace: default}
spec: {bgp: {}}
extra: 1
---
kind: Nodes
---
apiVersion: projectcalico.org/v3
kind: IPPool
spec: {cidr: 10.0.0.0/8}
---
[1, 2]
""", [
        "r.yaml:1 Node/Bad_Name apiVersion: must be 'projectcalico.org/v3'; got 'projectcalico.org/v1'",
        "r.yaml:1 Node/Bad_Name extra: unknown field",
        "r.yaml:1 Node/Bad_Name metadata.name: must be a DNS-1123 subdomain: lower-case letters, digits, '-' "
        "and '.'; starting and ending with a letter or digit; got 'Bad_Name'",
        "r.yaml:1 Node/Bad_Name metadata.namespace: must not be set: this kind is cluster-scoped; got 'default'",
        "r.yaml:1 Node/Bad_Name spec.bgp: must not be empty when present; omit it for a node without BGP",
        "r.yaml:2 Nodes/? kind: unsupported kind; expected one of BGPConfiguration, BGPFilter, BGPPeer, "
        "BlockAffinity, CalicoNodeStatus, IPPool, Node, Secret; got 'Nodes'",
        "r.yaml:3 IPPool/? metadata: required field is missing",
        "r.yaml:4 ?/?: a resource must be an object, not list; got [1, 2]",
    ]),
    ("wrong types say the expected type", CALICO + """\
kind: BGPConfiguration
metadata: {name: default, labels: [a]}
spec: {nodeToNodeMeshEnabled: "false", listenPort: "179", ignoredInterfaces: "*", communities: {}}
""", [
        "r.yaml:1 BGPConfiguration/default metadata.labels: expected object, not list; got ['a']",
        "r.yaml:1 BGPConfiguration/default spec.communities: expected list, not object; got {}",
        "r.yaml:1 BGPConfiguration/default spec.nodeToNodeMeshEnabled: expected boolean, not string; got 'false'",
        "r.yaml:1 BGPConfiguration/default spec.listenPort: expected integer, not string; got '179'",
        "r.yaml:1 BGPConfiguration/default spec.ignoredInterfaces: expected list, not string; got '*'",
    ]),
    ("per-node BGPConfiguration", CALICO + """\
kind: BGPConfiguration
metadata: {name: node.n1}
spec: {asNumber: 1, nodeToNodeMeshEnabled: true, listenPort: 0, logSeverityScreen: Loud,
       communities: [{name: c, value: "1:65536"}], ignoredInterfaces: ["*"]}
""", [
        "r.yaml:1 BGPConfiguration/node.n1 spec.nodeToNodeMeshEnabled: may be set only in BGPConfiguration "
        "'default', not per node",
        "r.yaml:1 BGPConfiguration/node.n1 spec.asNumber: may be set only in BGPConfiguration 'default', not per node",
        "r.yaml:1 BGPConfiguration/node.n1 spec.communities[0].value: community must be 'aa:nn' (16-bit parts) or "
        "'aa:nn:mm' (32-bit parts); got '1:65536'",
        "r.yaml:1 BGPConfiguration/node.n1 spec.logSeverityScreen: must be one of Trace, Debug, Info, Warning, "
        "Error, Fatal; got 'Loud'",
        "r.yaml:1 BGPConfiguration/node.n1 spec.listenPort: must be 1..65535; got 0",
        "r.yaml:1 BGPConfiguration/node.n1 spec.ignoredInterfaces[0]: must not be '*'; got '*'",
    ]),
    ("mesh password needs the mesh; named communities must exist", CALICO + """\
kind: BGPConfiguration
metadata: {name: default}
spec:
  nodeToNodeMeshEnabled: false
  nodeMeshPassword: {secretKeyRef: {name: s, key: k}}
  prefixAdvertisements: [{cidr: 10.0.0.1/8, communities: [nope]}]
""", [
        "r.yaml:1 BGPConfiguration/default spec.nodeMeshPassword: cannot be set when nodeToNodeMeshEnabled is false",
        "r.yaml:1 BGPConfiguration/default spec.prefixAdvertisements[0].cidr: host bits set; the network is "
        "10.0.0.0/8; got '10.0.0.1/8'",
        "r.yaml:1 BGPConfiguration/default spec.prefixAdvertisements[0].communities[0]: must be 'aa:nn', "
        "'aa:nn:mm' or the name of an entry of spec.communities; got 'nope'",
    ]),
    ("filter rules", CALICO + """\
kind: BGPFilter
metadata: {name: f}
spec:
  exportV6:
    - {action: Reject, cidr: 10.0.0.0/8, operations: [{setPriority: {value: 1}}]}
    - {action: Accept, prefixLength: {min: 100, max: 129}, communities: {values: ["1:1", "2:2"]}}
    - {action: Accept, operations: [{}, {prependASPath: {prefix: []}}], priority: 0, interface: "a b"}
""", [
        "r.yaml:1 BGPFilter/f spec.exportV6[0].matchOperator: cidr and matchOperator must be set together",
        "r.yaml:1 BGPFilter/f spec.exportV6[0].cidr: must be an IPv6 CIDR such as 'fd00::/64'; got '10.0.0.0/8'",
        "r.yaml:1 BGPFilter/f spec.exportV6[0].operations: allowed only with action Accept",
        "r.yaml:1 BGPFilter/f spec.exportV6[1].prefixLength: needs cidr",
        "r.yaml:1 BGPFilter/f spec.exportV6[1].prefixLength.max: must be 0..128; got 129",
        "r.yaml:1 BGPFilter/f spec.exportV6[1].communities.values: must have exactly one entry; got ['1:1', '2:2']",
        "r.yaml:1 BGPFilter/f spec.exportV6[2].operations[0]: must set exactly one of addCommunity, "
        "prependASPath, setPriority",
        "r.yaml:1 BGPFilter/f spec.exportV6[2].operations[1].prependASPath.prefix: must have 1..10 AS numbers",
        "r.yaml:1 BGPFilter/f spec.exportV6[2].interface: must be an interface name or glob of 1..15 characters "
        "from a-z A-Z 0-9 _ . * -; got 'a b'",
        "r.yaml:1 BGPFilter/f spec.exportV6[2].priority: must be 1..2147483646; got 0",
    ]),
    ("pools, affinities, node status", CALICO + """\
kind: IPPool
metadata: {name: p}
spec: {cidr: "fd00::/64", ipipMode: Always, vxlanMode: Always, blockSize: 26}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: b}
spec: {cidr: 10.0.0.0/26, state: gone, deleted: "false"}
---
apiVersion: projectcalico.org/v3
kind: CalicoNodeStatus
metadata: {name: s}
spec: {node: n, classes: [BGP, BGP], updatePeriodSeconds: 86401}
""", [
        "r.yaml:1 IPPool/p spec.vxlanMode: IPIP and VXLAN cannot both be enabled; got 'Always'",
        "r.yaml:1 IPPool/p spec.ipipMode: IPv6 pools cannot use IPIP; got 'Always'",
        "r.yaml:1 IPPool/p spec.blockSize: must be 116..128; got 26",
        "r.yaml:2 BlockAffinity/b spec.node: required field is missing",
        "r.yaml:2 BlockAffinity/b spec.state: must be one of '', 'confirmed', 'pending', 'pendingDeletion'; "
        "got 'gone'",
        "r.yaml:3 CalicoNodeStatus/s spec.updatePeriodSeconds: must be 0..86400; got 86401",
        "r.yaml:3 CalicoNodeStatus/s spec.classes[1]: duplicate class; got 'BGP'",
    ]),
    ("secrets never show their values", """\
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: kube-system}
data: {pw: "hunter2!"}
stringData: {ok: 7}
""", [
        "r.yaml:1 Secret/s data.pw: must be base64 of UTF-8 text",
        "r.yaml:1 Secret/s stringData.ok: expected string, not integer",
    ]),
    ("duplicates: the first wins", CALICO + """\
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.0.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.1.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: q}
spec: {cidr: 10.2.0.1/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: q}
spec: {cidr: 10.2.0.0/16}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: kube-system}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: other}
""", ["r.yaml:2 IPPool/p metadata.name: duplicate IPPool name; first defined at r.yaml:1",
      "r.yaml:3 IPPool/q spec.cidr: host bits set; the network is 10.2.0.0/16; got '10.2.0.1/16'",
      "r.yaml:4 IPPool/q metadata.name: duplicate IPPool name; first defined at r.yaml:3",
      "r.yaml:6 Secret/s metadata.name: duplicate Secret name; first defined at r.yaml:5"]),
    ("YAML syntax error keeps the documents before it", CALICO + """\
kind: IPPool
metadata: {name: p}
spec: {cidr: 10.0.0.0/16}
---
a: [1
""", ["r.yaml:2 ?/?: YAML syntax error at line 7 column 1: did not find expected ',' or ']'"]),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in ERROR_CASES],
                         ids=[name for name, _, _ in ERROR_CASES])
def test_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


def test_selector_syntax_error_names_the_column() -> None:
    # The message itself belongs to bgpd.selector; the loader adds the column and the value.
    [line] = errors_of(CALICO + "kind: BGPPeer\nmetadata: {name: p}\nspec: {peerSelector: 'a =='}\n")
    assert line.startswith("r.yaml:1 BGPPeer/p spec.peerSelector: selector syntax error at column 5: ")
    assert line.endswith("; got 'a =='")


def test_invalid_documents_are_left_out_and_the_rest_kept() -> None:
    docs, _ = parse_text(VALID + "---\n" + CALICO + "kind: IPPool\nmetadata: {name: p}\nspec: {}\n", "r.yaml")
    snap = build_snapshot(docs)
    assert [str(e) for e in snap.errors] == ["r.yaml:6 IPPool/p spec.cidr: required field is missing"]
    assert set(snap.bgp_peers) == {"rack1-tor"} and not snap.ip_pools


def test_long_password_is_reported_on_the_peer_without_the_value() -> None:
    secret = base64.b64encode(b"x" * 81).decode()
    text = VALID.replace("c2VjcmV0", secret)
    lines = errors_of(text)
    assert lines == ["r.yaml:3 BGPPeer/rack1-tor spec.password.secretKeyRef: password in Secret kube-system/bgp "
                     "key 'tor' is 81 bytes; TCP-MD5 allows at most 80"]
    assert errors_of(VALID.replace("c2VjcmV0", base64.b64encode(b"x" * 80).decode())) == []


def test_secret_namespace_and_ignored_kinds() -> None:
    text = VALID + "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"
    docs, _ = parse_text(text, "r.yaml")
    snap = build_snapshot(docs, secret_namespace="calico-system", ignore_kinds=frozenset({"Service"}))
    assert not snap.errors and ("calico-system", "bgp") in snap.secrets


def test_yaml_1_1_scalars() -> None:
    snap = load(CALICO + """\
kind: Node
metadata: {name: n, labels: {a: yes, b: off, c: 1.5, d: "on", "on": x}}
""")
    assert snap.nodes["n"].meta.labels == {"a": "true", "b": "false", "c": "1.5", "d": "on", "on": "x"}


def test_calicoctl_get_output_is_read_as_is() -> None:
    snap = load("""\
apiVersion: projectcalico.org/v3
items:
- apiVersion: projectcalico.org/v3
  kind: Node
  metadata:
    annotations: {projectcalico.org/kube-labels: '{}'}
    creationTimestamp: "2026-01-01T00:00:00Z"
    labels: {kubernetes.io/hostname: node-1}
    name: node-1
    resourceVersion: "1234"
    uid: 0c4f5ad2-0000-4000-8000-000000000001
  spec:
    addresses: [{address: 10.0.0.1/24, type: CalicoNodeIP}, {address: 10.0.0.1, type: InternalIP}]
    bgp: {ipv4Address: 10.0.0.1/24, ipv4IPIPTunnelAddr: 10.244.0.1}
    orchRefs: [{nodeName: node-1, orchestrator: k8s}]
  status: {podCIDRs: [10.244.0.0/24]}
kind: NodeList
metadata: {resourceVersion: "1234"}
""")
    assert list(snap.nodes) == ["node-1"]


def test_empty_strings_mean_unset_as_in_go() -> None:
    snap = load(CALICO + """\
kind: Node
metadata: {name: n}
spec: {bgp: {ipv4Address: 10.0.0.1, ipv6Address: "", routeReflectorClusterID: ""}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: p}
spec: {node: "", nodeSelector: "", peerIP: 10.0.0.2, peerSelector: "", asNumber: 1, sourceAddress: ""}
""")
    assert snap.nodes["n"].bgp is not None and snap.nodes["n"].bgp.ipv6_address is None
    peer = snap.bgp_peers["p"]
    assert (peer.node, peer.node_selector, peer.peer_selector, peer.source_address) == (None, None, None, "UseNodeIP")


def test_json_text_and_json_array() -> None:
    body = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "g"},
            "spec": {"peerIP": "10.0.0.9", "asNumber": "64512"}}
    docs, errors = parse_text(json.dumps([body, body | {"metadata": {"name": "h"}}]), "p.json")
    snap = build_snapshot(docs)
    assert not errors and not snap.errors
    assert snap.bgp_peers["h"] == BGPPeer(snap.bgp_peers["h"].meta, peer_ip=PeerAddress(ip_address("10.0.0.9")),
                                          as_number=64512)


def test_parse_resource_alone() -> None:
    resource, errors = parse_resource(SourceDoc("x", 4, {"kind": "Secret", "apiVersion": "v1",
                                                         "metadata": {"name": "s"}}))
    assert errors == [] and resource is not None and resource.meta.origin.doc == 4


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
                     st.sampled_from(["10.0.0.1", "fd00::/64", "all()", "Accept", "1.10", "64512", "10s"]))
_keys = st.sampled_from(["apiVersion", "kind", "metadata", "spec", "name", "labels", "bgp", "peerIP",
                         "asNumber", "exportV4", "action", "cidr", "secretKeyRef", "data", "items", "x"])
_trees = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(_keys, inner, max_size=5)),
                      max_leaves=25)
_kinds = st.sampled_from(["Node", "BGPConfiguration", "BGPPeer", "BGPFilter", "IPPool", "BlockAffinity",
                          "CalicoNodeStatus", "Secret", "List"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(kind=_kinds, spec=_trees, meta=_trees)
def test_fuzz_documents_only_produce_reported_errors(kind: str, spec: Any, meta: Any) -> None:
    body = {"apiVersion": "v1" if kind == "Secret" else "projectcalico.org/v3", "kind": kind,
            "metadata": meta, "spec": spec, "data": spec, "items": [spec]}
    snap = build_snapshot([SourceDoc("f", 1, body), SourceDoc("f", 2, spec)])
    assert all(e.source == "f" for e in snap.errors)


@settings(max_examples=300)
@given(text=st.lists(st.sampled_from([*"ab:-[]{}'\"\n #&*!|>%@`,?.0", "yes", "---\n", "kind: ", "\t"]),
                    max_size=60).map("".join))
def test_fuzz_text_only_produces_reported_errors(text: str) -> None:
    docs, errors = parse_text(text, "t")
    build_snapshot(docs)
    assert all(e.source == "t" for e in errors)


_yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
              st.sampled_from(["yes", "off", "1:30", "0x1f", "010", "1e3", "~", "2024-01-01", "<<"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=15)


@settings(max_examples=300)
@given(value=_yaml_values, flow=st.booleans())
def test_fast_yaml_builder_agrees_with_pyyaml(value: Any, flow: bool) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow)
    reference = list(yaml.load_all(text, Loader=yamltext._CalicoLoader))
    assert list(yamltext.load_all(text)) == reference


@settings(max_examples=300)
@given(text=st.lists(st.sampled_from([*"ab:-[]{}'\"\n #&*!|>%@`,?.0", "yes", "<<: ", "&x ", "*x", "!!set ",
                                      "!!binary ", "1:30", "\n- "]), max_size=40).map("".join))
def test_fast_yaml_builder_agrees_with_pyyaml_on_odd_text(text: str) -> None:
    try:
        reference = list(yaml.load_all(text, Loader=yamltext._CalicoLoader))
    except (yaml.YAMLError, TypeError, ValueError, RecursionError):
        reference = None
    try:
        mine = list(yamltext.load_all(text))
    except yaml.YAMLError as exc:
        # Deliberate differences: duplicate keys and collection tags (!!set, ...) are refused.
        assert reference is None or any(word in str(exc) for word in ("duplicate key", "unsupported YAML tag"))
        return
    assert mine == reference


@pytest.mark.parametrize("text", ["[" * 100_000, "a: " + "[" * 100_000, "- " * 50_000 + "x",
                                  '{"a":' * 100_000, "[" * 65 + "]" * 65, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200))])
def test_deep_nesting_is_an_error_not_a_crash(text: str) -> None:
    docs, errors = parse_text(text, "deep.yaml")
    assert not docs and len(errors) == 1
    assert "nested more than 64 levels deep" in str(errors[0])


def test_nesting_up_to_the_limit_is_fine() -> None:
    docs, errors = parse_text('{"a":' * 64 + "1" + "}" * 64, "ok.json")
    assert len(docs) == 1 and not errors
    docs, errors = parse_text("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 64)), "ok.yaml")
    assert len(docs) == 1 and not errors


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nm: {<<: [*b, *o], z: 5}\nlist: [*b, *b]\n"
    [doc] = list(yamltext.load_all(text))
    assert doc["m"] == {"x": 1, "y": 2, "z": 5}
    assert doc == yaml.load(text, Loader=yamltext._CalicoLoader)
    for bad in ("a: <<\n", "a: &x [*x]\n", "a: *nope\n", "a: !!set {x}\n", "<<: [1]\n"):
        with pytest.raises(yaml.YAMLError):
            list(yamltext.load_all(bad))


def test_duplicate_yaml_keys_are_errors() -> None:
    docs, errors = parse_text("kind: Node\nkind: BGPPeer\n", "d.yaml")
    assert not docs
    assert [str(e) for e in errors] == ["d.yaml:1 ?/?: YAML syntax error at line 2 column 1: found duplicate key 'kind'"]
