"""`bgpd run` and `bgpd status` for real: the daemon against BIRD in two namespaces (root only).

Namespaces `bgd-<random>-a` (bgpd, node-a, 10.77.2.1) and `-b` (BIRD, AS 65002, 10.77.2.2), joined by
a veth pair. Every wait polls with a deadline; on timeout the message carries `bgpd status`, BIRD's
protocol dump and the daemon's log. Namespaces and processes are removed even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lab

BGPD = str(Path(sys.executable).parent / "bgpd")
A4, B4 = "10.77.2.1", "10.77.2.2"
DEADLINE = 30.0
RESOURCES = f"""\
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {{name: default}}
spec: {{nodeToNodeMeshEnabled: false, asNumber: 64512}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: node-a}}
spec: {{bgp: {{ipv4Address: {A4}/24}}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: tor}}
spec: {{peerIP: {B4}, asNumber: 65002}}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {{name: pool}}
spec: {{cidr: 10.244.0.0/16, blockSize: 26}}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {{name: node-a-10-244-1-0-26}}
spec: {{node: node-a, cidr: 10.244.1.0/26, state: confirmed, type: host}}
"""


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30).stdout


class Lab:
    def __init__(self, prefix: str, work: Path) -> None:
        self.a, self.b, self.work = f"{prefix}-a", f"{prefix}-b", work
        self.res = work / "res"
        self.socket = str(work / "run" / "bgpd.sock")
        self.bird_sock = str(work / "bird.ctl")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.runs = 0

    # ------------------------------------------------------------------ bgpd

    def start(self) -> None:
        self.runs += 1
        log = open(self.work / f"bgpd-{self.runs}.log", "wb")  # noqa: SIM115  (the child owns it)
        self.daemon = subprocess.Popen(
            ["ip", "netns", "exec", self.a, BGPD, "run", "--config", str(self.work / "bgpd.yaml")],
            stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.daemon is not None
        self.daemon.send_signal(sig)
        code = self.daemon.wait(timeout=30)
        self.daemon = None
        return code

    def status(self) -> tuple[int, dict[str, Any] | None]:
        proc = subprocess.run([BGPD, "status", "--json", "--socket", self.socket],
                              check=False, capture_output=True, text=True, timeout=30)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout else None

    def log(self) -> str:
        return (self.work / f"bgpd-{self.runs}.log").read_text(errors="replace")

    # ------------------------------------------------------------------ BIRD and the kernel

    def birdc(self, *args: str) -> str:
        return sh("birdc", "-s", self.bird_sock, *args, check=False)

    def kernel_routes(self) -> str:
        return sh("ip", "-n", self.a, "route", "show", "proto", "44")

    def dump(self) -> str:
        code, status = self.status()
        return (f"\n--- bgpd status (exit {code}):\n{json.dumps(status, indent=1)}\n--- BIRD:\n"
                f"{self.birdc('show', 'protocols', 'all', 'nodea')}\n{self.birdc('show', 'route', 'all')}\n"
                f"--- kernel (proto 44):\n{self.kernel_routes()}\n--- bgpd log (tail):\n{self.log()[-3000:]}")

    def wait(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}{self.dump()}")

    def established(self) -> dict[str, Any]:
        self.wait("every session Established (bgpd status exit 0)", lambda: self.status()[0] == 0)
        status = self.status()[1]
        assert status is not None
        return status


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("daemon")
    lab = Lab(f"bgd-{secrets.token_hex(3)}", work)
    bird: subprocess.Popen[bytes] | None = None
    try:
        for ns in (lab.a, lab.b):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", lab.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", lab.b)
        for ns, ip in ((lab.a, A4), (lab.b, B4)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "veth0")
            sh("ip", "-n", ns, "link", "set", "veth0", "up")
        (work / "bird.conf").write_text(
            f'router id {B4};\nlog "{work / "bird.log"}" all;\nprotocol device {{}}\n'
            f"protocol static s4 {{ ipv4; route 192.0.2.0/24 via {B4}; route 198.51.100.0/24 via {B4}; }}\n"
            f"protocol bgp nodea {{\n  local {B4} as 65002;\n  neighbor {A4} as 64512;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            "  graceful restart on;\n  ipv4 { import all; export all; };\n}\n")
        bird = subprocess.Popen(["ip", "netns", "exec", lab.b, "bird", "-f", "-c", str(work / "bird.conf"),
                                 "-s", lab.bird_sock, "-P", str(work / "bird.pid")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.res.mkdir()
        (lab.res / "all.yaml").write_text(RESOURCES)
        (work / "bgpd.yaml").write_text(
            f"node: node-a\nstore: file://{lab.res}\ncontrol_socket: {lab.socket}\nrun_dir: {work / 'run'}\n"
            "graceful_restart_deadline: 30\nlog_format: json\n")
        lab.start()
        yield lab
    finally:
        if lab.daemon is not None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                lab.stop()
        if bird is not None:
            bird.kill()
            bird.wait()
        for ns in (lab.a, lab.b):
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)


def test_session_comes_up_routes_flow_both_ways_and_status_says_so(lab: Lab) -> None:
    status = lab.established()
    assert [(s["name"], s["type"], s["info"]) for s in status["sessions"]] == [
        ("Global_10_77_2_2", "global", "Established")]
    lab.wait("2 routes received", lambda: lab.status()[1]["sessions"][0]["routesReceived"] == 2)
    lab.wait("BIRD's routes in the kernel", lambda: "198.51.100.0/24 via 10.77.2.2" in lab.kernel_routes())
    lab.wait("our block at BIRD", lambda: "10.244.1.0/26" in lab.birdc("show", "route", "protocol", "nodea"))
    assert "blackhole 10.244.1.0/26" in lab.kernel_routes()
    table = sh(BGPD, "status", "--socket", lab.socket)
    assert "| 10.77.2.2    | global    | up    |" in table
    mode = os.stat(lab.socket).st_mode & 0o777
    assert mode == 0o660, oct(mode)


def test_a_second_daemon_on_the_same_socket_refuses_to_start(lab: Lab) -> None:
    lab.established()
    argv = ["ip", "netns", "exec", lab.a, BGPD, "run", "--config", str(lab.work / "bgpd.yaml")]
    second = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "another bgpd is serving" in second.stdout + second.stderr
    assert lab.status()[0] == 0


def test_bad_file_and_unrelated_peer_leave_the_session_alone(lab: Lab) -> None:
    since = lab.established()["sessions"][0]["since"]
    bird_since = lab.birdc("show", "protocols", "nodea").splitlines()[-1].split()[4]
    bad = lab.res / "bad.yaml"
    bad.write_text("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: broken}\n"
                   "spec: {peerIP: 10.77.2.3, asNumber: banana}\n")
    lab.wait("status stale", lambda: lab.status()[1]["store"]["stale"])
    assert "banana" in lab.status()[1]["store"]["errors"][0]
    bad.unlink()
    other = lab.res / "other.yaml"
    other.write_text("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: other}\n"
                     "spec: {peerIP: 10.77.2.3, asNumber: 65003}\n")
    lab.wait("second session configured", lambda: len(lab.status()[1]["sessions"]) == 2)
    other.unlink()
    status = lab.established()
    assert [(s["name"], s["since"]) for s in status["sessions"]] == [("Global_10_77_2_2", since)]
    assert not status["store"]["stale"]
    assert lab.birdc("show", "protocols", "nodea").splitlines()[-1].split()[4] == bird_since


def test_exabgp_killed_comes_back_and_routes_stay(lab: Lab) -> None:
    pid = lab.established()["exabgp"]["pid"]
    os.kill(pid, signal.SIGKILL)
    lab.wait("ExaBGP restarted", lambda: (lab.status()[1] or {}).get("exabgp", {}).get("restarts") == 1)
    status = lab.established()
    assert status["exabgp"]["pid"] != pid and "SIGKILL" in status["exabgp"]["lastExit"]
    assert "198.51.100.0/24 via 10.77.2.2" in lab.kernel_routes()


def test_sigterm_keeps_routes_everywhere_and_the_next_run_adopts_them(lab: Lab) -> None:
    lab.established()
    assert lab.stop(signal.SIGTERM) == 0
    assert not os.path.exists(lab.socket)
    routes = lab.kernel_routes()
    assert "198.51.100.0/24 via 10.77.2.2" in routes and "blackhole 10.244.1.0/26" in routes
    # No NOTIFICATION went out: BIRD keeps our route as stale (graceful restart) instead of dropping it.
    assert "10.244.1.0/26" in lab.birdc("show", "route", "protocol", "nodea")
    lab.start()
    lab.established()
    assert '"event": "kernel_routes_adopted"' in lab.log() and '"routes": 2' in lab.log()
    lab.wait("swept after resync", lambda: '"kernel_swept"' in lab.log())
    assert "198.51.100.0/24 via 10.77.2.2" in lab.kernel_routes()
