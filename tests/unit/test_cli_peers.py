"""`bgpd peers`: JSON contract, table with origin, --why, against the conf/resources examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgpd.cli import main
from bgpd.resolve import resolve
from bgpd.store.yamldir import load
from tests.conftest import ROOT

EXAMPLES = ROOT / "conf" / "resources"
SESSION_KEYS = [
    "name",
    "family",
    "kind",
    "peerIP",
    "port",
    "remoteAS",
    "localAS",
    "ibgp",
    "passive",
    "routeReflectorClient",
    "routeReflectorClusterID",
    "password",
    "ttlSecurity",
    "maxRestartTime",
    "sourceAddress",
    "nextHop",
    "allowLocalAS",
    "filters",
    "reachableBy",
    "origin",
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["peers", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_the_desired_node_contract(capsys: pytest.CaptureFixture[str]) -> None:
    directory = EXAMPLES / "route-reflectors"
    code, out, _ = run(capsys, "--resources", str(directory), "--node", "node-3", "--json")
    assert code == 0
    got = json.loads(out)
    assert got == resolve(load(directory), "node-3").to_json()
    assert list(got) == [
        "node",
        "asNumber",
        "routerID",
        "sessions",
        "exports",
        "staticRoutes",
        "errors",
    ]
    assert list(got["sessions"][0]) == SESSION_KEYS
    assert [(s["name"], s["origin"]) for s in got["sessions"]] == [
        ("Node_192_168_0_11", ["BGPPeer/peer-with-route-reflectors", "Node/node-1"]),
        ("Node_192_168_0_12", ["BGPPeer/peer-with-route-reflectors", "Node/node-2"]),
    ]
    assert got["exports"] == ["10.244.3.0/26"]


def test_table_has_an_origin_column(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--resources", str(EXAMPLES / "rack1-tor"), "--node", "node-1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "node node-1  AS 64512  router id 192.168.0.11  listen port 179"
    assert lines[2].split() == ["NAME", "PEER", "PORT", "AS", "LOCAL", "AS", "TYPE", "PASSIVE", "ORIGIN"]
    rows = {line.split()[0]: line for line in lines[3:] if line.startswith(("Mesh_", "Node_"))}
    assert rows["Node_192_20_30_40"].split() == [
        "Node_192_20_30_40",
        "192.20.30.40",
        "179",
        "64567",
        "64512",
        "Node",
        "eBGP",
        "no",
        "BGPPeer/rack1-tor",
    ]
    assert rows["Mesh_192_168_0_12"].endswith("BGPConfiguration/default, Node/node-2")


def test_why_explains_a_missing_peer(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "--resources", str(EXAMPLES / "rack1-tor"), "--node", "node-3", "--why", "192.20.30.40"
    )
    assert code == 0
    assert out.splitlines() == [
        "Node/node-3 has no session to 192.20.30.40:",
        "no Node has the address 192.20.30.40, so there is no mesh session to it",
        "BGPPeer/rack1-tor nodeSelector 'rack == \"rack-1\"' does not match Node/node-3 "
        "(labels {kubernetes.io/hostname=node-3, rack=rack-2})",
    ]


def test_unknown_node_and_bad_resources_are_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "--resources", str(EXAMPLES / "full-mesh"), "--node", "nope")
    assert code == 1 and "error: <resolve>:0 Node/nope: no Node resource with this name" in out
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: x}\n"
        "spec: {peerIP: 10.0.0.1, asNumber: -1}\n"
    )
    code, out, err = run(capsys, "--resources", str(tmp_path), "--node", "nope")
    assert "warning:" in err and "BGPPeer/x spec.asNumber" in err


def test_password_value_never_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("""\
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n1}
spec: {bgp: {ipv4Address: 10.0.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: p}
spec: {peerIP: 10.0.0.9, asNumber: 65000, password: {secretKeyRef: {name: s, key: k}}}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: kube-system}
stringData: {k: sup3r-s3cret}
""")
    for extra in ([], ["--json"], ["--why", "10.0.0.9"]):
        code, out, err = run(capsys, "--resources", str(tmp_path), "--node", "n1", *extra)
        assert code == 0 and "sup3r-s3cret" not in out + err
    assert (
        json.loads(run(capsys, "--resources", str(tmp_path), "--node", "n1", "--json")[1])["sessions"][0][
            "password"
        ]
        is True
    )


def test_store_url_file_and_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    directory = EXAMPLES / "full-mesh"
    code, out, _ = run(capsys, "--store", f"file://{directory}", "--node", "node-1", "--json")
    assert code == 0 and json.loads(out) == resolve(load(directory), "node-1").to_json()
    code, _, err = run(capsys, "--store", "gopher://x", "--node", "node-1")
    assert code == 78 and err.startswith("bgpd peers: cannot load resources from gopher://x: ")
