"""`bgpd run` sessions for real: a 3-node mesh (IPv4 + IPv6) with a BIRD and an FRR ToR (root only).

One lab for the module (netns-lab/topologies/smesh-tors.yaml, read its header): every test starts
from "everything Established" and leaves it so, and each asserts on both ends of the sessions it
touches (bgpd's status and log; BIRD's and FRR's own view and logs; the wire, decoded from tcpdump).
The tests that stop a daemon (graceful restart, drain) come last.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from nslab import BgpdNode, Bird, Frr, Lab, Speaker, holds_for, wait_until
from nslab.bgpd_node import BGPD
from nslab.capture import NOTIFICATION, Capture, Message
from nslab.resources import write_documents

from bgpd.control.client import request
from tests.lab.conftest import running_lab

pytestmark = pytest.mark.lab

NODES = {"node-1": ("10.100.0.9", "fd00:100::9"), "node-2": ("10.100.0.10", "fd00:100::10"),
         "node-3": ("10.100.0.11", "fd00:100::11")}
BIRD4, BIRD6, FRR4 = "10.100.0.1", "fd00:100::1", "10.100.0.2"
BLOCKS = {"node-1": "10.244.1.0/26", "node-2": "10.244.2.0/26", "node-3": "10.244.3.0/26"}
MESH_PORT = 1790  # BGPConfiguration listenPort
PASSWORDS = {"mesh": "mesh-Pa55-s3cret", "bird": "bird-Pa55-s3cret", "frr": "frr-Pa55-s3cret"}
WRONG = {"bird": "bird-WRONG-pw", "frr": "frr-WRONG-pw"}
UP = 30.0  # seconds for sessions to (re)establish
NEVER_UP_WINDOW = 8.0  # several connect retries of every side
TOPOLOGY_FILE = "00-topology.yaml"
CAPTURE_FILTER = f"tcp port 179 or tcp port 1179 or tcp port {MESH_PORT}"


# ------------------------------------------------------------------------------------- the lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab("smesh", "smesh-tors", wait=None) as built:
        wait_until(lambda: all_up(built), UP, "every expected session Established", detail=built.dump)
        yield built


@pytest.fixture(autouse=True)
def _dump_on_failure(request: pytest.FixtureRequest, lab: Lab) -> None:
    request.node.labs = [lab]  # tests/lab/conftest.py attaches its dump to a failure


def node(lab: Lab, name: str) -> BgpdNode:
    found = lab[name]
    assert isinstance(found, BgpdNode)
    return found


def bird(lab: Lab) -> Bird:
    found = lab["bird-tor"]
    assert isinstance(found, Bird)
    return found


def frr(lab: Lab) -> Frr:
    found = lab["frr-tor"]
    assert isinstance(found, Frr)
    return found


def expected_sessions() -> dict[str, set[str]]:
    """Speaker -> the peers it must have Established (FRR also knows node-3, which must never come up)."""
    out = {n: {ip for other, ips in NODES.items() if other != n for ip in ips} | {BIRD4, BIRD6}
           for n in NODES}
    out["node-1"].add(FRR4)
    out["node-2"].add(FRR4)
    out["bird-tor"] = {ip for ips in NODES.values() for ip in ips}
    out["frr-tor"] = {NODES["node-1"][0], NODES["node-2"][0]}
    return out


def sessions_of(lab: Lab, name: str) -> dict[str, str]:
    """Peer IP -> FSM state; bgpd nodes are asked on their control socket directly (polling through
    the CLI would start a Python per poll)."""
    if name not in NODES:
        return lab.speaker(name).sessions()
    return {s["peerIP"]: "Established" if s["state"] == "up" else s["info"]
            for s in report(lab, name)["sessions"]}


def all_up(lab: Lab) -> bool:
    for name, peers in expected_sessions().items():
        sessions = sessions_of(lab, name)
        if any(sessions.get(p) != "Established" for p in peers):
            return False
    return True


def wait_all_up(lab: Lab) -> None:
    wait_until(lambda: all_up(lab), UP, "every expected session Established", detail=lab.dump)


def transitions(lab: Lab) -> dict[tuple[str, str], int]:
    """(speaker, peer) -> times Established, from each daemon's own log, for every expected session."""
    return {(name, peer): lab.speaker(name).transitions(peer)
            for name, peers in expected_sessions().items() for peer in peers}


def report(lab: Lab, name: str) -> dict[str, Any]:
    """The daemon's status answer (the JSON `bgpd status --json` prints), straight from its socket."""
    answer: dict[str, Any] = request(node(lab, name).socket, "status")
    return answer


def status(n: BgpdNode) -> tuple[int, dict[str, Any]]:
    """`bgpd status --json` itself: its exit status and output."""
    proc = subprocess.run([str(BGPD), "status", "--json", "--socket", str(n.socket)],
                          capture_output=True, text=True, timeout=10, check=False)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}


def session(n: BgpdNode, name: str) -> dict[str, Any]:
    answer: dict[str, Any] = request(n.socket, "status")
    return next(s for s in answer["sessions"] if s["name"] == name)


def edit_resources(lab: Lab, change: Any) -> None:
    """Rewrite the topology's resource file with ``change(documents)`` applied (atomically)."""
    docs = copy.deepcopy(list(lab.topology.resources))
    change(docs)
    write_documents(lab.run_dir / "resources", TOPOLOGY_FILE, docs)


def restore_resources(lab: Lab) -> None:
    edit_resources(lab, lambda docs: None)


def doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def revisions(lab: Lab) -> dict[str, str]:
    return {n: report(lab, n)["store"]["revision"] for n in NODES}


def wait_new_revision(lab: Lab, before: dict[str, str]) -> dict[str, str]:
    """Every node applied (or rejected) a snapshot newer than ``before``."""
    return wait_until(lambda: (now := revisions(lab)) and all(now[n] != before[n] for n in NODES) and now,
                      15, "every node to read the changed store", detail=lab.dump)


# ------------------------------------------------------------------------------------- 1. the mesh


def established_tcp(n: BgpdNode) -> list[tuple[str, int, str, int]]:
    """(local ip, local port, peer ip, peer port) of every established TCP connection of the node."""
    out = []
    for line in n.exec("ss", "-tnH", "state", "established").splitlines():
        local, peer = line.split()[-2:]
        lip, lport = local.rsplit(":", 1)
        pip, pport = peer.rsplit(":", 1)
        out.append((lip.strip("[]"), int(lport), pip.strip("[]"), int(pport)))
    return out


def test_full_mesh_v4_v6_who_dials_follows_calicos_string_order(lab: Lab) -> None:
    # Calico: a node is passive towards a peer whose address is greater *as a string*. Here
    # "10.100.0.10" < "10.100.0.11" < "10.100.0.9" (and the same for fd00:100::9/10/11), the reverse
    # of numeric order: node-1 (.9) dials both others, node-3 (.11) dials node-2 (.10), node-2 dials none.
    dialers = {("node-1", "node-2"), ("node-1", "node-3"), ("node-3", "node-2")}
    mesh_ips = {ip: name for name, ips in NODES.items() for ip in ips}
    seen: set[tuple[str, str, int]] = set()
    for name in NODES:
        for lip, lport, pip, pport in established_tcp(node(lab, name)):
            if pip not in mesh_ips:
                continue
            family = 6 if ":" in pip else 4
            if lport == MESH_PORT:  # accepted here: the peer dialled
                seen.add((mesh_ips[pip], name, family))
            else:
                assert pport == MESH_PORT, (name, lip, lport, pip, pport)
                seen.add((name, mesh_ips[pip], family))
    assert seen == {(a, b, f) for a, b in dialers for f in (4, 6)}


def test_status_exit_zero_json_and_table_shape(lab: Lab) -> None:
    n1 = node(lab, "node-1")
    code, answer = status(n1)
    assert code == 0
    assert set(answer) >= {"node", "asNumber", "routerID", "store", "sessions", "routes"}
    assert (answer["node"], answer["asNumber"], answer["routerID"]) == ("node-1", 64512, "10.100.0.9")
    assert set(answer["store"]) == {"source", "revision", "stale", "errors"}
    assert answer["store"]["stale"] is False and answer["store"]["errors"] == []
    assert set(answer["routes"]) == {"installed", "stale"}
    rows = {(s["name"], s["peerIP"], s["port"], s["type"], s["state"], s["info"]) for s in answer["sessions"]}
    assert rows == {
        ("Global_10_100_0_1_port_1179", BIRD4, 1179, "global", "up", "Established"),
        ("Global_fd00_100__1", BIRD6, 179, "global", "up", "Established"),
        ("Mesh_10_100_0_10", "10.100.0.10", MESH_PORT, "node-to-node mesh", "up", "Established"),
        ("Mesh_10_100_0_11", "10.100.0.11", MESH_PORT, "node-to-node mesh", "up", "Established"),
        ("Mesh_fd00_100__10", "fd00:100::10", MESH_PORT, "node-to-node mesh", "up", "Established"),
        ("Mesh_fd00_100__11", "fd00:100::11", MESH_PORT, "node-to-node mesh", "up", "Established"),
        ("Node_10_100_0_2", FRR4, 179, "node specific", "up", "Established"),
    }
    for s in answer["sessions"]:
        assert set(s) == {"name", "peerIP", "port", "type", "state", "since", "info", "routesReceived",
                          "routesInstalled"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["since"])
    table = n1.status_text()
    assert "bgpd is running on node node-1" in table and "Router ID 10.100.0.9, AS 64512" in table
    assert "IPv4 BGP status" in table and "IPv6 BGP status" in table
    assert re.search(r"\| 10\.100\.0\.1:1179 +\| global +\| up +\| \S+ +\| Established +\|", table)
    assert re.search(r"\| \[fd00:100::10\]:1790 +\| node-to-node mesh +\| up +\|", table)
    assert re.search(r"\| 10\.100\.0\.2 +\| node specific +\| up +\|", table)
    for other in ("node-2", "node-3"):  # the other ends of the mesh say the same
        code, answer = status(node(lab, other))
        assert code == 0 and all(s["info"] == "Established" for s in answer["sessions"])


# ------------------------------------------------------------------------------------- 2. the ToRs


def peers_json(lab: Lab, name: str) -> dict[str, dict[str, Any]]:
    proc = subprocess.run([str(BGPD), "peers", "--node", name, "--resources", str(lab.run_dir / "resources"),
                           "--json"], capture_output=True, text=True, timeout=30, check=True)
    return {s["name"]: s for s in json.loads(proc.stdout)["sessions"]}


def bird_protocol(lab: Lab, ip: str) -> str:
    return bird(lab).birdc(f"show protocols all peer_{re.sub(r'[.:]', '_', ip)}")


def test_bird_global_ebgp_peer_custom_port_local_as_and_no_source_address(lab: Lab) -> None:
    for name, (v4, v6) in NODES.items():
        peers = peers_json(lab, name)
        g4, g6 = peers["Global_10_100_0_1_port_1179"], peers["Global_fd00_100__1"]
        assert (g4["port"], g4["remoteAS"], g4["localAS"], g4["ibgp"], g4["sourceAddress"]) == \
            (1179, 64567, 64512, False, v4)
        assert (g6["port"], g6["remoteAS"], g6["localAS"], g6["sourceAddress"]) == (179, 64567, 64513, None)
        # BIRD's end: who it talks to, in which AS, on which port
        p4, p6 = bird_protocol(lab, v4), bird_protocol(lab, v6)
        assert "Neighbor AS:      64512" in p4 and "Local AS:         64567" in p4
        assert "Neighbor AS:      64513" in p6  # the localASNumber override
        bird_tcp = {(lport, pip) for _, lport, pip, _ in established_tcp_of(bird(lab))}
        assert (1179, v4) in bird_tcp and (179, v6) in bird_tcp
        # sourceAddress None: the kernel still picks the node's own address on this link
        assert f"Neighbor address: {v6}" in p6


def established_tcp_of(speaker: Speaker) -> list[tuple[str, int, str, int]]:
    out = []
    for line in speaker.exec("ss", "-tnH", "state", "established").splitlines():
        local, peer = line.split()[-2:]
        lip, lport = local.rsplit(":", 1)
        pip, pport = peer.rsplit(":", 1)
        out.append((lip.strip("[]"), int(lport), pip.strip("[]"), int(pport)))
    return out


def test_frr_node_specific_ibgp_peer_only_for_the_selected_rack(lab: Lab) -> None:
    for name in ("node-1", "node-2"):
        s = session(node(lab, name), "Node_10_100_0_2")
        assert (s["type"], s["state"]) == ("node specific", "up")
        assert peers_json(lab, name)["Node_10_100_0_2"]["ibgp"] is True
    assert "Node_10_100_0_2" not in {s["name"] for s in status(node(lab, "node-3"))[1]["sessions"]}
    # FRR is configured for node-3 as well: it never gets a session, because node-3 does not peer
    assert holds_for(lambda: frr(lab).sessions().get(NODES["node-3"][0]) != "Established", 3.0)
    info = json.loads(frr(lab).vtysh(f"show bgp neighbors {NODES['node-1'][0]} json"))[NODES["node-1"][0]]
    assert (info["remoteAs"], info["localAs"]) == (64512, 64512)


def bird_path(lab: Lab, prefix: str, peer_ip: str) -> str:
    return bird(lab).birdc(f"show route {prefix} all protocol peer_{re.sub(r'[.:]', '_', peer_ip)}")


def test_blocks_announced_with_the_right_next_hop_and_withdrawn_with_their_affinity(lab: Lab) -> None:
    for name, block in BLOCKS.items():
        ip = NODES[name][0]
        wait_until(lambda b=block, i=ip: f"BGP.next_hop: {i}" in bird_path(lab, b, i), 15,
                   f"{block} at BIRD from {name}", detail=lab.dump)
        assert "BGP.as_path: 64512\n" in bird_path(lab, block, ip) + "\n"
    wait_until(lambda: {p: frr(lab).routes().get(p) for p in ("10.244.1.0/26", "10.244.2.0/26")} ==
               {"10.244.1.0/26": ["10.100.0.9"], "10.244.2.0/26": ["10.100.0.10"]}, 15,
               "node-1's and node-2's blocks in FRR's kernel via their own node", detail=lab.dump)
    assert "10.244.3.0/26" not in frr(lab).routes()  # node-3 does not peer with FRR (and iBGP does not relay)
    # the ToRs' own prefixes reach the nodes that peer with them
    n1, n3 = node(lab, "node-1"), node(lab, "node-3")
    wait_until(lambda: n1.routes().get("10.98.0.0/16") == [FRR4]
               and n1.routes().get("10.99.0.0/16") == [BIRD4], 15, "the ToRs' prefixes on node-1",
               detail=lab.dump)
    assert "10.98.0.0/16" not in n3.routes()

    n1.withdraw(BLOCKS["node-1"])  # its BlockAffinity is deleted from the store
    try:
        wait_until(lambda: "10.244.1.0/26" not in bird(lab).birdc("show route 10.244.1.0/26")
                   and "10.244.1.0/26" not in frr(lab).routes(), 15,
                   "node-1's block withdrawn at both ToRs", detail=lab.dump)
        assert "10.244.2.0/26" in frr(lab).routes()  # only that block went
    finally:
        n1.announce(BLOCKS["node-1"])
    wait_until(lambda: frr(lab).routes().get("10.244.1.0/26") == ["10.100.0.9"], 15,
               "node-1's block back at FRR", detail=lab.dump)


# ------------------------------------------------------------------------------------- 3. MD5


def with_secret(key: str, value: str) -> Any:
    def change(docs: list[dict[str, Any]]) -> None:
        doc(docs, "Secret", "bgp-passwords")["stringData"][key] = value
    return change


def test_md5_mismatch_keeps_only_those_sessions_down_and_says_why(lab: Lab) -> None:
    before = transitions(lab)
    bird_sessions = {(n, BIRD4) for n in NODES} | {("bird-tor", NODES[n][0]) for n in NODES}
    frr_sessions = {(n, FRR4) for n in ("node-1", "node-2")} | {("frr-tor", NODES[n][0])
                                                                for n in ("node-1", "node-2")}

    def mismatched(docs: list[dict[str, Any]]) -> None:
        with_secret("bird", WRONG["bird"])(docs)
        with_secret("frr", WRONG["frr"])(docs)

    edit_resources(lab, mismatched)
    n1 = node(lab, "node-1")
    try:
        wait_until(lambda: session(n1, "Global_10_100_0_1_port_1179")["state"] != "up"
                   and session(n1, "Node_10_100_0_2")["state"] != "up", 15, "the MD5 sessions reset",
                   detail=lab.dump)

        def all_down() -> bool:
            return all(sessions_of(lab, s).get(p) != "Established" for s, p in bird_sessions | frr_sessions)

        wait_until(all_down, 15, "both ends of every MD5 session down", detail=lab.dump)
        assert holds_for(all_down, NEVER_UP_WINDOW), lab.dump()
        for name in ("Global_10_100_0_1_port_1179", "Node_10_100_0_2"):
            info = session(n1, name)["info"]
            assert "reset: password" in info and "no OPEN received" in info and "MD5" in info, info
        code, _ = status(n1)
        assert code == 1
        leaks_checked(lab, [*PASSWORDS.values(), *WRONG.values()])
    finally:
        restore_resources(lab)
    wait_all_up(lab)
    after = transitions(lab)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == bird_sessions | frr_sessions  # counted on both ends; the mesh and BIRD v6 stayed
    assert all(after[k] == before[k] + 1 for k in changed), {k: (before[k], after[k]) for k in changed}


def leaks_checked(lab: Lab, secrets: list[str]) -> None:
    """No process argument or environment, log line or status answer holds a password; every file
    that holds one (plain, or base64 as in ExaBGP's config) is readable by its owner only."""
    needles = [s.encode() for s in secrets] + [base64.b64encode(s.encode()) for s in secrets]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for what in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{pid}/{what}").read_bytes()
            except OSError:
                continue
            assert not any(n in data for n in needles), f"a password in /proc/{pid}/{what}"
    for name in NODES:
        n = node(lab, name)
        answers = (n.status_text() + json.dumps(status(n)[1]) + n.log.read_text(errors="replace")).encode()
        assert not any(s in answers for s in needles), f"a password in {name}'s status or log"
    holders = []
    for path in lab.run_dir.rglob("*"):
        if path.is_file() and not path.is_symlink() and any(n in path.read_bytes() for n in needles):
            holders.append(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} holds a password, mode " \
                f"{oct(path.stat().st_mode)}"
    exabgp_configs = [p for p in holders if p.name == "exabgp.conf"]
    assert len(exabgp_configs) == len(NODES), holders  # the check did look at the files that matter
    logs = [p for p in lab.run_dir.rglob("*") if p.suffix in (".log", ".out")]
    assert not [p for p in logs if p in holders and p.parent.name in NODES], "a bgpd log holds a password"


# ------------------------------------------------------------------------------------- 6. hot reconfiguration


def sinces(lab: Lab) -> dict[tuple[str, str], str]:
    return {(n, s["name"]): s["since"] for n in NODES for s in report(lab, n)["sessions"]}


def test_one_peer_changed_resets_only_its_sessions(lab: Lab) -> None:
    before = transitions(lab)

    def longer_restart(docs: list[dict[str, Any]]) -> None:
        doc(docs, "BGPPeer", "frr-tor")["spec"]["maxRestartTime"] = "75s"

    old = revisions(lab)
    edit_resources(lab, longer_restart)
    try:
        wait_new_revision(lab, old)
        wait_until(lambda: all(frr(lab).transitions(NODES[n][0]) == before[("frr-tor", NODES[n][0])] + 1
                               for n in ("node-1", "node-2")), UP, "FRR's sessions reset", detail=lab.dump)
        wait_all_up(lab)
        after = transitions(lab)
        frr_sessions = {(n, FRR4) for n in ("node-1", "node-2")} | {("frr-tor", NODES[n][0])
                                                                    for n in ("node-1", "node-2")}
        assert {k for k in after if after[k] != before[k]} == frr_sessions
        assert all(after[k] == before[k] + 1 for k in frr_sessions)
    finally:
        restore_resources(lab)
    wait_until(lambda: all(frr(lab).transitions(NODES[n][0]) == before[("frr-tor", NODES[n][0])] + 2
                           for n in ("node-1", "node-2")), UP, "FRR's sessions back", detail=lab.dump)
    wait_all_up(lab)


def test_unrelated_changes_and_a_bad_file_touch_no_session(lab: Lab) -> None:
    before, since = transitions(lab), sinces(lab)
    store = lab.run_dir / "resources"

    def stale(want: bool) -> bool:
        return all(report(lab, n)["store"]["stale"] is want for n in NODES)

    def step(what: str, change: Any, stale_after: bool | None = None) -> None:
        """Make a change and wait until every node read it: a new revision, or (for a rejected
        snapshot, which keeps the last good revision) the stale flag."""
        old = revisions(lab)
        change()
        if stale_after is None:
            wait_new_revision(lab, old)
        else:
            wait_until(lambda: stale(stale_after), 15, f"stale={stale_after} after: {what}", detail=lab.dump)
        assert holds_for(lambda: all_up(lab), 1.0), f"a session went down after: {what}\n{lab.dump()}"

    unrelated = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "elsewhere"},
                 "spec": {"peerIP": "10.100.0.99", "asNumber": 65099, "nodeSelector": "rack == 'rack-9'"}}
    step("an unrelated BGPPeer added", lambda: write_documents(store, "30-elsewhere.yaml", [unrelated]))
    step("the unrelated BGPPeer removed", (store / "30-elsewhere.yaml").unlink)

    node_docs = nodes_file(store)
    step("a label no selector looks at", lambda: write_documents(
        store, "10-nodes.yaml", [{**d, "metadata": {**d["metadata"], "labels": {
            **d["metadata"]["labels"], "zone": "z1"}}} if d["metadata"]["name"] == "node-3" else d
            for d in node_docs]))
    step("logSeverityScreen Debug", lambda: edit_resources(
        lab, lambda docs: doc(docs, "BGPConfiguration", "default")["spec"].update(logSeverityScreen="Debug")))
    step("logSeverityScreen Info again", lambda: restore_resources(lab))

    bad = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "broken"},
           "spec": {"peerIP": "10.100.0.98", "asNumber": "banana"}}
    step("a bad resource file", lambda: write_documents(store, "40-broken.yaml", [bad]), stale_after=True)
    for name in NODES:
        code, answer = status(node(lab, name))
        assert answer["store"]["stale"] is True and "banana" in " ".join(answer["store"]["errors"]), answer
        assert code == 0  # what runs is untouched: every session still Established
        assert "STALE" in node(lab, name).status_text()
    step("the bad file fixed", (store / "40-broken.yaml").unlink, stale_after=False)
    for name in NODES:
        answer = status(node(lab, name))[1]
        assert answer["store"]["stale"] is False and answer["store"]["errors"] == []
    step("the label removed again", lambda: write_documents(store, "10-nodes.yaml", node_docs))

    assert transitions(lab) == before  # on bgpd, BIRD and FRR alike
    assert sinces(lab) == since
    leaks_checked(lab, list(PASSWORDS.values()))  # also after a while at logSeverityScreen Debug


def nodes_file(store: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((store / "10-nodes.yaml").read_text()) if d]


# ------------------------------------------------------------------------------------- 7. supervision


def test_exabgp_killed_twice_restarts_with_backoff_and_every_session_returns(lab: Lab) -> None:
    n2 = node(lab, "node-2")
    before = transitions(lab)
    for restarts in (1, 2):
        pid = status(n2)[1]["exabgp"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda r=restarts: report(lab, "node-2")["exabgp"]["restarts"] == r, UP,
                   f"ExaBGP restart {restarts}", detail=lab.dump)
        wait_all_up(lab)
    exabgp = status(n2)[1]["exabgp"]
    assert exabgp["pid"] != pid and "SIGKILL" in exabgp["lastExit"]
    table = n2.status_text()
    assert "restarts 2" in table and "SIGKILL" in table
    log = n2.log.read_text()
    assert log.count('"event": "exabgp_exited"') == 2
    after = transitions(lab)
    n2_ips = set(NODES["node-2"])
    for (speaker, peer), count in after.items():
        involved = speaker == "node-2" or peer in n2_ips
        assert count == before[(speaker, peer)] + (2 if involved else 0), (speaker, peer)


# ------------------------------------------------------------------------------------- 5. graceful restart


def stale_at_frr(lab: Lab, prefix: str) -> bool:
    out = json.loads(frr(lab).vtysh(f"show bgp ipv4 unicast {prefix} json") or "{}")
    return any(p.get("stale") for p in out.get("paths", []))


def test_sigterm_keeps_our_routes_stale_at_the_peers_then_eor_after_the_replay(lab: Lab,
                                                                               tmp_path: Path) -> None:
    n1, ip = node(lab, "node-1"), NODES["node-1"][0]
    mine = set(NODES["node-1"])
    assert "Restart time: 90" in bird_protocol(lab, ip)  # maxRestartTime, in the OPEN BIRD received
    with Capture(n1.ns, "eth0", tmp_path / "gr.pcap", CAPTURE_FILTER) as capture:
        n1.stop()  # SIGTERM, as systemd stops it
        wait_until(lambda: "BGP state:          Established" not in bird_protocol(lab, ip), 10,
                   "BIRD sees node-1 go", detail=lab.dump)
        # both ToRs and the other nodes keep node-1's block, as stale, while it is away
        assert "10.244.1.0/26" in bird_path(lab, "10.244.1.0/26", ip)
        wait_until(lambda: stale_at_frr(lab, "10.244.1.0/26"), 10, "stale at FRR", detail=lab.dump)
        assert frr(lab).routes().get("10.244.1.0/26") == [ip]
        n2 = node(lab, "node-2")
        wait_until(lambda: report(lab, "node-2")["routes"]["stale"] >= 1, 10, "stale at node-2",
                   detail=lab.dump)
        assert n2.routes().get("10.244.1.0/26") == [ip]
        n1.start()
        wait_all_up(lab)
        wait_until(lambda: not stale_at_frr(lab, "10.244.1.0/26"), 15, "FRR's stale mark cleared by EoR",
                   detail=lab.dump)
        peers = (BIRD4, FRR4, "10.100.0.10", "10.100.0.11")
        wait_until(lambda: {m.dst_ip for m in capture.messages() if m.src_ip in mine and m.end_of_rib()}
                   >= set(peers), 10, "our End-of-RIB to every IPv4 peer on the wire")
    messages = capture.messages()
    assert not [m for m in messages if m.type == NOTIFICATION], "a NOTIFICATION went over the wire"
    opens = {(m.dst_ip, m.restart_time()) for m in messages if m.type == 1 and m.src_ip in mine}
    assert {(BIRD4, 90), (FRR4, 60), (BIRD6, 120)} <= opens  # maxRestartTime; default 120
    assert {(p, 100) for p in ("10.100.0.10", "10.100.0.11", "fd00:100::10", "fd00:100::11")} <= opens
    for peer in peers:
        eor_after_replay(messages, mine, peer, BLOCKS["node-1"])
    # the mesh password is in force: every mesh SYN carries a TCP-MD5 signature (BIRD's IPv6 ones none)
    text = subprocess.run(["tcpdump", "-r", str(tmp_path / "gr.pcap"), "-nn"], capture_output=True,
                          text=True, timeout=30, check=True).stdout
    syns = [line for line in text.splitlines() if "Flags [S" in line]  # (tcp[] filters miss IPv6)
    mesh = [line for line in syns if f".{MESH_PORT}" in line]
    assert mesh and all("md5" in line for line in mesh), syns
    bird6 = [line for line in syns if f"{BIRD6}.179" in line or f"{NODES['node-1'][1]}.179" in line]
    assert bird6 and not any("md5" in line for line in bird6), syns


def eor_after_replay(messages: list[Message], mine: set[str], peer: str, block: str) -> None:
    """On the new session to ``peer``: our block is announced, and End-of-RIB comes after it."""
    stream = [m for m in messages if m.src_ip in mine and m.dst_ip == peer and m.type == 2]
    eor = next((i for i, m in enumerate(stream) if m.end_of_rib()), None)
    announced = next((i for i, m in enumerate(stream) if block in m.announced()), None)
    assert eor is not None and announced is not None and announced < eor, \
        [(m.announced(), m.end_of_rib()) for m in stream]


# ------------------------------------------------------------------------------------- 5. drain


def test_drain_withdraws_everything_explicitly_and_stops(lab: Lab, tmp_path: Path) -> None:
    n3, ip = node(lab, "node-3"), NODES["node-3"][0]
    wait_until(lambda: "10.244.3.0/26" in bird_path(lab, "10.244.3.0/26", ip), 15, "node-3's block at BIRD")
    daemon = next(p for p in n3.procs() if p.name == "bgpd")
    with Capture(n3.ns, "eth0", tmp_path / "drain.pcap", CAPTURE_FILTER) as capture:
        proc = subprocess.run([str(BGPD), "drain", "--socket", str(n3.socket)], capture_output=True,
                              text=True, timeout=90, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "withdrew its routes from 6 established session(s)" in proc.stdout
        wait_until(lambda: not daemon.alive(), 15, "bgpd to exit after draining")
    withdrawn = {(m.dst_ip, p) for m in capture.messages() if m.src_ip == ip for p in m.withdrawn()}
    assert {(BIRD4, BLOCKS["node-3"]), ("10.100.0.9", BLOCKS["node-3"]),
            ("10.100.0.10", BLOCKS["node-3"])} <= withdrawn
    # the peers dropped the routes at once (withdrawn, not stale), and node-3's kernel routes are gone
    assert BLOCKS["node-3"] not in bird(lab).birdc(f"show route {BLOCKS['node-3']}")
    assert BLOCKS["node-3"] not in node(lab, "node-1").routes()
    assert n3.exec("ip", "route", "show", "proto", "44").strip() == ""
    assert not n3.socket.exists()
    stopping = [json.loads(line) for line in n3.log.read_text().splitlines() if '"bgpd_stopping"' in line]
    assert (stopping[-1]["reason"], stopping[-1]["graceful"]) == ("bgpd drain", False)
    n3.start()
    wait_all_up(lab)
