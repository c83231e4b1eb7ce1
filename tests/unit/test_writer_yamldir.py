"""The directory-store writer and the commands on it, in temp dirs: round trips through the loader,
multi-document files kept intact, validation before any write, and concurrent writers (threads and
processes) that never lose an update."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpd.cli import main
from bgpd.store.writer import (
    AlreadyExists,
    Body,
    Invalid,
    NotFound,
    WriteError,
    label,
    merge_patch,
    patch,
    resolve_kind,
)
from bgpd.store.writer_yamldir import DirWriter
from bgpd.store.yamldir import load

NODE = resolve_kind("nodes")
PEER = resolve_kind("bgppeer")
CONFIG = resolve_kind("bgpconfig")


def peer(name: str, ip: str = "10.0.0.9", asn: Any = 64600) -> Body:
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": name},
            "spec": {"peerIP": ip, "asNumber": asn}}


def node(name: str, **labels: str) -> Body:
    meta: Body = {"name": name, **({"labels": dict(labels)} if labels else {})}
    return {"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": meta,
            "spec": {"bgp": {"ipv4Address": "10.0.0.1/24"}}}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


USER_FILE = """\
# cluster-wide settings, keep this comment
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  asNumber: 64512   # our AS
---
# the first node
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-1
spec:
  bgp:
    ipv4Address: 10.0.0.1/24
"""


@pytest.mark.parametrize(("text", "kind"), [
    ("bgppeer", "BGPPeer"), ("BGPPeers", "BGPPeer"), ("bgpconfig", "BGPConfiguration"),
    ("bgpconfigs", "BGPConfiguration"), ("bgpconfiguration", "BGPConfiguration"),
    ("bgpconfigurations", "BGPConfiguration"), ("node", "Node"), ("nodes", "Node"), ("ippool", "IPPool"),
    ("ippools", "IPPool"), ("bgpfilter", "BGPFilter"), ("bgpfilters", "BGPFilter"),
    ("blockaffinity", "BlockAffinity"), ("blockaffinities", "BlockAffinity"),
    ("caliconodestatus", "CalicoNodeStatus"), ("caliconodestatuses", "CalicoNodeStatus"),
])
def test_calicoctl_kind_spellings(text: str, kind: str) -> None:
    assert resolve_kind(text).kind == kind


@pytest.mark.parametrize(("target", "merge", "result"), [  # RFC 7386 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386_examples(target: Any, merge: Any, result: Any) -> None:
    assert merge_patch(target, merge) == result


def test_round_trip_create_get_apply_patch_label_delete(tmp_path: Path) -> None:
    w = DirWriter(tmp_path)
    assert run(w.create(peer("peer-1"))).action == "created"
    assert (tmp_path / "bgppeers" / "peer-1.yaml").exists()
    assert load(tmp_path).bgp_peers["peer-1"].as_number == 64600
    with pytest.raises(AlreadyExists, match="BGPPeer/peer-1 already exists in file://"):
        run(w.create(peer("peer-1")))
    assert run(w.apply(peer("peer-1", asn=64601))).action == "updated"
    assert run(w.apply(peer("peer-2"))).action == "created"
    assert [b["metadata"]["name"] for b in run(w.get(PEER))] == ["peer-1", "peer-2"]
    assert run(w.get(PEER, "peer-1"))[0]["spec"]["asNumber"] == 64601
    run(patch(w, PEER, "peer-2", {"spec": {"asNumber": 65000, "keepOriginalNextHop": True}}))
    run(w.apply(node("node-1")))
    run(label(w, NODE, "node-1", ["rack=a", "zone=z1"], overwrite=False))
    snapshot = load(tmp_path)
    assert not snapshot.errors
    assert snapshot.bgp_peers["peer-2"].as_number == 65000
    assert dict(snapshot.nodes["node-1"].meta.labels) == {"rack": "a", "zone": "z1"}
    run(label(w, NODE, "node-1", ["zone-"], overwrite=False))
    assert dict(load(tmp_path).nodes["node-1"].meta.labels) == {"rack": "a"}
    run(w.delete(PEER, "peer-1"))
    assert not (tmp_path / "bgppeers" / "peer-1.yaml").exists()
    with pytest.raises(NotFound, match="BGPPeer/peer-1 not found"):
        run(w.get(PEER, "peer-1"))
    with pytest.raises(NotFound):
        run(w.delete(PEER, "peer-1"))


def test_label_needs_overwrite_to_change_a_value(tmp_path: Path) -> None:
    w = DirWriter(tmp_path)
    run(w.create(node("node-1", rack="a")))
    with pytest.raises(WriteError, match=r"Node/node-1 already has label rack='a'; use --overwrite"):
        run(label(w, NODE, "node-1", ["rack=b"], overwrite=False))
    run(label(w, NODE, "node-1", ["rack=a"], overwrite=False))  # same value: fine
    run(label(w, NODE, "node-1", ["rack=b"], overwrite=True))
    assert dict(load(tmp_path).nodes["node-1"].meta.labels) == {"rack": "b"}
    with pytest.raises(WriteError, match="expected key=value to set or key- to remove"):
        run(label(w, NODE, "node-1", ["rack"], overwrite=True))


def test_patch_creates_bgpconfiguration_default_but_nothing_else(tmp_path: Path) -> None:
    w = DirWriter(tmp_path)
    result = run(patch(w, CONFIG, "default", {"spec": {"nodeToNodeMeshEnabled": False}}))
    assert result.action == "created"
    assert load(tmp_path).bgp_configurations["default"].node_to_node_mesh_enabled is False
    with pytest.raises(NotFound, match="BGPConfiguration/other not found"):
        run(patch(w, CONFIG, "other", {"spec": {"asNumber": 1}}))
    with pytest.raises(NotFound, match="Node/node-9 not found"):
        run(patch(w, NODE, "node-9", {"metadata": {"labels": {"a": "b"}}}))


def test_a_bad_resource_is_never_written(tmp_path: Path) -> None:
    w = DirWriter(tmp_path)
    with pytest.raises(Invalid) as err:
        run(w.apply(peer("peer-1", ip="nope", asn=-1)))
    assert [str(e) for e in err.value.errors] == [
        "<input>:1 BGPPeer/peer-1 spec.peerIP: must be an IP address; got 'nope'",
        "<input>:1 BGPPeer/peer-1 spec.asNumber: AS number must be 0..4294967295; got -1",
    ]
    assert list(tmp_path.iterdir()) == []
    run(w.create(peer("peer-1")))
    before = (tmp_path / "bgppeers" / "peer-1.yaml").read_text()
    with pytest.raises(Invalid, match=r"spec\.asNumber"):
        run(patch(w, PEER, "peer-1", {"spec": {"asNumber": "many"}}))
    assert (tmp_path / "bgppeers" / "peer-1.yaml").read_text() == before


def test_user_multi_document_file_is_edited_in_place(tmp_path: Path) -> None:
    user = tmp_path / "cluster.yaml"
    user.write_text(USER_FILE)
    user.chmod(0o640)
    w = DirWriter(tmp_path)
    run(label(w, NODE, "node-1", ["rack=a"], overwrite=False))
    text = user.read_text()
    assert text.startswith(USER_FILE.split("---", maxsplit=1)[0])  # the other document, comments and all
    assert "# the first node\n" in text
    assert list(tmp_path.iterdir()) == [user]
    assert (user.stat().st_mode & 0o777) == 0o640
    assert dict(load(tmp_path).nodes["node-1"].meta.labels) == {"rack": "a"}
    run(w.delete(CONFIG, "default"))
    assert "asNumber: 64512" not in user.read_text()
    assert set(load(tmp_path).nodes) == {"node-1"}
    run(w.delete(NODE, "node-1"))
    assert not user.exists()  # nothing left in it


def test_list_and_json_files_are_rewritten_keeping_the_other_items(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                        "items": [peer("a"), peer("b")]}))
    (tmp_path / "peers.json").write_text(json.dumps([peer("c", ip="10.0.1.1"), peer("d", ip="10.0.1.2")]))
    w = DirWriter(tmp_path)
    run(patch(w, PEER, "b", {"spec": {"asNumber": 1}}))
    run(patch(w, PEER, "d", {"spec": {"asNumber": 2}}))
    run(w.delete(PEER, "c"))
    snapshot = load(tmp_path)
    assert not snapshot.errors
    assert {n: p.as_number for n, p in snapshot.bgp_peers.items()} == {"a": 64600, "b": 1, "d": 2}


def _bump(root: str, key: str, times: int) -> None:
    writer = DirWriter(Path(root))

    def change(current: Body | None) -> Body:
        assert current is not None
        labels = current["metadata"].setdefault("labels", {})
        labels[key] = str(int(labels.get(key, "0")) + 1)
        return current
    for _ in range(times):
        asyncio.run(writer.modify(NODE, "node-1", change))


def test_concurrent_threads_and_processes_never_lose_an_update(tmp_path: Path) -> None:
    run(DirWriter(tmp_path).create(node("node-1")))
    threads = [threading.Thread(target=_bump, args=(str(tmp_path), "count", 15)) for _ in range(3)]
    ctx = multiprocessing.get_context("spawn")  # fork would copy the threads' held locks
    procs = [ctx.Process(target=_bump, args=(str(tmp_path), "count", 15)) for _ in range(2)]
    labelled = [ctx.Process(target=_bump, args=(str(tmp_path), f"p{i}", 1)) for i in range(3)]
    for t in (*threads, *procs, *labelled):
        t.start()
    for t in (*threads, *procs, *labelled):
        t.join(60)
    assert all(p.exitcode == 0 for p in (*procs, *labelled))
    labels = dict(load(tmp_path).nodes["node-1"].meta.labels)
    assert labels == {"count": "75", "p0": "1", "p1": "1", "p2": "1"}
    assert [p.name for p in tmp_path.rglob(".*")] == []  # no temp file left behind


def test_cli_commands_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--resources", str(tmp_path / "res")]
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump_all([peer("peer-1"), node("node-1")]))
    assert main(["apply", "-f", str(good), *store]) == 0
    assert "Successfully applied 2 'BGPPeer', 'Node' resource(s)" in capsys.readouterr().out
    assert main(["create", "-f", str(good), *store]) == 1
    assert "bgpd create: BGPPeer/peer-1 already exists in file://" in capsys.readouterr().err
    assert main(["label", "node", "node-1", "rack=a", *store]) == 0
    assert capsys.readouterr().out == "node/node-1 labeled\n"
    assert main(["patch", "bgpconfiguration", "default", "-p", '{"spec": {"asNumber": 64513}}', *store]) == 0
    assert main(["get", "bgppeers", *store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["NAME     PEERIP     NODE   ASN", "peer-1   10.0.0.9          64600"]
    assert main(["get", "node", "node-1", "-o", "yaml", *store]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["metadata"]["labels"] == {"rack": "a"}
    assert main(["get", "bgpconfig", "-o", "json", *store]) == 0
    assert '"asNumber": 64513' in capsys.readouterr().out
    assert main(["delete", "bgppeer", "peer-1", *store]) == 0
    assert main(["get", "bgppeer", "peer-1", *store]) == 1
    assert "bgpd get: BGPPeer/peer-1 not found in file://" in capsys.readouterr().err


def test_cli_apply_prints_every_error_and_writes_nothing(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([peer("peer-1"), peer("peer-2", ip="x", asn="y")]))
    assert main(["apply", "-f", str(bad), "--resources", str(tmp_path / "res")]) == 1
    err = capsys.readouterr().err
    assert f"bgpd apply: {bad}:2 BGPPeer/peer-2 spec.peerIP: must be an IP address; got 'x'" in err
    assert f"bgpd apply: {bad}:2 BGPPeer/peer-2 spec.asNumber:" in err
    assert "nothing written (2 problem(s))" in err
    assert not (tmp_path / "res").exists()
    assert main(["patch", "node", "n", "-p", "{", "--resources", str(tmp_path)]) == 1
    assert "bgpd patch: -p: not valid JSON" in capsys.readouterr().err


def test_the_directory_watch_sees_what_the_writer_writes(tmp_path: Path) -> None:
    from bgpd.store.yamldir import watch  # noqa: PLC0415

    async def go() -> None:
        it = watch(tmp_path, debounce=0.05)
        w = DirWriter(tmp_path)
        try:
            assert not (await asyncio.wait_for(anext(it), 10)).bgp_peers
            await w.create(peer("peer-1"))  # a new <dir>/bgppeers/ directory and file
            snap = await asyncio.wait_for(anext(it), 10)
            assert set(snap.bgp_peers) == {"peer-1"} and not snap.errors
            await patch(w, PEER, "peer-1", {"spec": {"asNumber": 65001}})
            snap = await asyncio.wait_for(anext(it), 10)
            assert snap.bgp_peers["peer-1"].as_number == 65001
        finally:
            await it.aclose()
    run(go())
