"""The netns lab itself, with BIRD and FRR only (no bgpd): sessions, routes into the kernel, MD5,
GTSM, the `lab` CLI and session-transition counting — what every bgpd lab test relies on."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nslab import Bird, Frr, Lab, TopologyError, WaitTimeout, cleanup_stale, holds_for, netns, wait_until
from nslab.proc import proc_start_time

from tests.lab.conftest import LAB_DIR, PREFIX, TOKEN, TOPOLOGIES, LabFactory, topology

pytestmark = pytest.mark.lab

BIRD_IP, FRR_IP = "10.200.0.1", "10.200.0.2"
# How long a session that must stay down is watched: several connect retries of both daemons
# (FRR `timers connect 1`, BIRD `connect retry time 2`).
NEVER_UP_WINDOW = 8.0


def pair_v4_only(**neighbor: Any) -> dict[str, Any]:
    """bird-frr-pair with only the IPv4 session, both neighbors given the extra settings."""
    topo = topology("bird-frr-pair")
    for node, extra in neighbor.items():
        topo["nodes"][node]["neighbors"] = [{**topo["nodes"][node]["neighbors"][0], **extra}]
    return topo


def speakers(lab: Lab) -> tuple[Bird, Frr]:
    bird, frr = lab["bird"], lab["frr"]
    assert isinstance(bird, Bird) and isinstance(frr, Frr)
    return bird, frr


def test_bird_frr_ebgp_sessions_establish_on_both_families(lab: LabFactory) -> None:
    pair = lab(TOPOLOGIES / "bird-frr-pair.yaml", "pair", wait=30)
    bird, frr = speakers(pair)
    assert bird.sessions() == {FRR_IP: "Established", "fd20::2": "Established"}
    assert frr.sessions() == {BIRD_IP: "Established", "fd20::1": "Established"}


def test_announced_routes_reach_the_other_kernel_with_the_right_next_hop(lab: LabFactory) -> None:
    pair = lab(TOPOLOGIES / "bird-frr-pair.yaml", "routes", wait=30)
    bird, frr = speakers(pair)
    wait_until(lambda: frr.routes().get("10.201.0.0/24") == [BIRD_IP], 15, "BIRD's prefix in FRR's kernel")
    wait_until(lambda: bird.routes().get("10.202.0.0/24") == [FRR_IP], 15, "FRR's prefix in BIRD's kernel")
    wait_until(lambda: bird.routes().get("fd20:2::/64") == ["fd20::2"], 15, "FRR's v6 prefix at BIRD")
    # FRR prefers the link-local next hop BIRD sends along with its global one
    hops = wait_until(lambda: frr.routes().get("fd20:1::/64"), 15, "BIRD's v6 prefix at FRR")
    assert hops in (["fd20::1"], [link_local(bird, "eth0")])

    bird.announce("10.203.0.0/24")
    frr.announce("10.204.0.0/24")
    wait_until(lambda: frr.routes().get("10.203.0.0/24") == [BIRD_IP], 15, "a new BIRD prefix at FRR")
    wait_until(lambda: bird.routes().get("10.204.0.0/24") == [FRR_IP], 15, "a new FRR prefix at BIRD")
    bird.withdraw("10.203.0.0/24")
    frr.withdraw("10.204.0.0/24")
    wait_until(lambda: "10.203.0.0/24" not in frr.routes(), 15, "the withdrawn BIRD prefix gone at FRR")
    wait_until(lambda: "10.204.0.0/24" not in bird.routes(), 15, "the withdrawn FRR prefix gone at BIRD")
    # announcing and withdrawing reconfigures the daemons without resetting any session
    assert (bird.transitions(FRR_IP), frr.transitions(BIRD_IP)) == (1, 1)


def link_local(node: Bird | Frr, ifname: str) -> str:
    out = json.loads(node.exec("ip", "-j", "-6", "addr", "show", "dev", ifname))
    return next(str(a["local"]) for a in out[0]["addr_info"] if a.get("scope") == "link")


@pytest.mark.parametrize("frr_password", ["s3cret-md5", "wrong-md5"], ids=["match", "mismatch"])
def test_md5_between_bird_and_frr(lab: LabFactory, frr_password: str) -> None:
    pair = lab(pair_v4_only(bird={"password": "s3cret-md5"}, frr={"password": frr_password}),
               "md5-" + ("match" if frr_password == "s3cret-md5" else "mismatch"))
    bird, frr = speakers(pair)
    if frr_password == "s3cret-md5":
        wait_until(lambda: bird.established(FRR_IP) and frr.established(BIRD_IP), 30, "MD5 session up",
                   detail=pair.dump)
    else:
        assert holds_for(lambda: not bird.established(FRR_IP) and not frr.established(BIRD_IP),
                         NEVER_UP_WINDOW), "a session with mismatched MD5 passwords came up"
        assert (bird.transitions(FRR_IP), frr.transitions(BIRD_IP)) == (0, 0)
    # the password is in no process argument and in no file others can read
    for node in (bird, frr):
        for ref in node.procs():
            cmdline = Path(f"/proc/{ref.pid}/cmdline").read_bytes()
            assert b"s3cret" not in cmdline and frr_password.encode() not in cmdline
    for conf in (bird.run_dir / "bird.conf", frr.run_dir / "bgpd.conf"):
        assert conf.stat().st_mode & 0o077 == 0, f"{conf} is readable by others"


@pytest.mark.parametrize("frr_hops", [2, 1], ids=["2-hops-allowed", "2-hops-refused-by-hops-1"])
def test_gtsm_between_bird_and_frr(lab: LabFactory, frr_hops: int) -> None:
    topo = copy.deepcopy(topology("gtsm"))
    far = next(n for n in topo["nodes"]["frr"]["neighbors"] if n.get("name") == "bird-far")
    far["ttl_security"] = frr_hops
    gtsm = lab(topo, f"gtsm{frr_hops}")
    frr, near = gtsm["frr"], gtsm["bird-near"]
    assert isinstance(frr, Frr) and isinstance(near, Bird)
    # one hop with ttl-security hops 1 on both sides: up
    wait_until(lambda: frr.established("10.210.1.2") and near.established("10.210.1.1"), 30,
               "the 1-hop GTSM session")
    if frr_hops == 2:
        wait_until(lambda: frr.established("10.210.3.2"), 30, "the 2-hop GTSM session with hops 2")
    else:
        # FRR drops the far peer's packets (TTL 254 < 255).  BIRD may see an OPEN and KEEPALIVE
        # from FRR for a moment, so the refusal is asserted on the side that enforces it.
        assert holds_for(lambda: not frr.established("10.210.3.2"), NEVER_UP_WINDOW), \
            "FRR accepted a peer 2 hops away with ttl-security hops 1"
        assert frr.transitions("10.210.3.2") == 0


def test_transitions_count_a_session_reset(lab: LabFactory) -> None:
    pair = lab(pair_v4_only(), "flap", wait=30)
    bird, frr = speakers(pair)
    assert (bird.transitions(FRR_IP), frr.transitions(BIRD_IP)) == (1, 1)
    frr.restart(graceful=False)
    wait_until(lambda: bird.transitions(FRR_IP) == 2 and frr.transitions(BIRD_IP) == 2, 30,
               "the reset session Established again, counted on both ends")
    bird.restart(graceful=True)
    wait_until(lambda: bird.established(FRR_IP) and frr.transitions(BIRD_IP) == 3, 30,
               "the session back after BIRD's graceful restart")
    # BIRD's log outlives the process, so its count spans restarts too
    assert bird.transitions(FRR_IP) == 3


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LAB_DIR / "lab"), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_lab_cli_up_status_exec_down_leaves_nothing_behind(lab_tools: None) -> None:
    name = f"t{TOKEN}-cli"
    try:
        up = lab_cli("up", str(TOPOLOGIES / "bird-frr-pair.yaml"), "--name", name, "--prefix", PREFIX,
                     "--wait", "30")
        assert up.returncode == 0, up.stdout + up.stderr
        assert netns.list_namespaces(f"{PREFIX}{name}-") == [f"{PREFIX}{name}-bird", f"{PREFIX}{name}-frr"]
        status = lab_cli("status", "--name", name, "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout) == {
            "bird": {FRR_IP: "Established", "fd20::2": "Established"},
            "frr": {BIRD_IP: "Established", "fd20::1": "Established"},
        }
        execd = lab_cli("exec", "--name", name, "frr", "--", "ip", "-br", "addr", "show", "dev", "eth0")
        assert FRR_IP in execd.stdout, execd.stdout + execd.stderr
        pids = [p for ns in netns.list_namespaces(f"{PREFIX}{name}-") for p in netns.pids(ns)]
        assert len(pids) == 3  # bird, zebra, bgpd
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, down.stdout + down.stderr
        assert netns.list_namespaces(f"{PREFIX}{name}-") == []
        assert not Path(f"/run/bgpd-lab/{name}").exists()
        # gone, or a zombie waiting for init to reap it (the `lab up` process that started it has exited)
        assert [p for p in pids if proc_start_time(p) is not None] == []
        assert lab_cli("down", "--name", name).returncode != 0  # nothing left to find
    finally:
        cleanup_stale(f"{PREFIX}{name}-")


@pytest.mark.parametrize("stage", ["network", "daemons"])
def test_a_failed_up_removes_everything_it_built(lab_tools: None, stage: str) -> None:
    if stage == "network":
        # the gateway is on no link of frr: the route fails after namespaces, links and addresses exist
        topo = pair_v4_only()
        topo["nodes"]["frr"]["routes"] = [{"dst": "10.250.0.0/24", "via": "10.199.0.1"}]
        error: type[Exception] = netns.LabCommandError
    else:
        # both daemons run, but FRR expects another AS: the wait for Established fails
        topo, error = pair_v4_only(frr={"as": 65099}), WaitTimeout
    broken = Lab(topo, name=f"t{TOKEN}-broken-{stage}", prefix=PREFIX)
    try:
        with pytest.raises(error):
            broken.up(wait_established=3)
        assert netns.list_namespaces(f"{PREFIX}{broken.name}-") == []
        assert not broken.run_dir.exists()
        assert processes_mentioning(str(broken.run_dir)) == []
        broken.down()  # idempotent
    finally:
        cleanup_stale(f"{PREFIX}{broken.name}-")


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (every lab daemon names its run dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc_start_time(int(proc.name)) is not None:
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_a_bad_topology_reports_every_problem_before_touching_the_kernel() -> None:
    bad = {"nodes": {"a": {"kind": "bird"}, "b": {"kind": "switch"}},
           "links": [{"a": {"node": "a", "v4": "10.0.0.1"}, "b": {"node": "zz", "v4": "10.0.0.2/30"}}]}
    with pytest.raises(TopologyError) as err:
        Lab(bad, name=f"t{TOKEN}-bad", prefix=PREFIX)
    assert err.value.problems == [
        "<topology> links[0].a.v4: must be an IPv4 address with prefix length; got '10.0.0.1'",
        "<topology> links[0].b: must be {node: <a node name>, v4: addr/len, v6: addr/len}; "
        "got {'node': 'zz', 'v4': '10.0.0.2/30'}",
        "<topology> nodes.a.as: a BIRD or FRR node needs its AS number; got None",
        "<topology> nodes.b.kind: must be one of bgpd, bird, frr, router, host, etcd; got {'kind': 'switch'}",
    ]
    assert netns.list_namespaces(f"{PREFIX}t{TOKEN}-bad-") == []
