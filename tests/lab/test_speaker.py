"""ExaBGPSpeaker against a real BIRD, in two network namespaces joined by a veth pair (root only).

Namespaces `bgs-<random>-a` (ExaBGP, 10.77.1.1 / fd77:1::1) and `-b` (BIRD, 10.77.1.2 / fd77:1::2).
Every wait polls with a deadline; on timeout the failure message carries BIRD's protocol dump and the
speaker's events. Namespaces and processes are removed even when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bgpd.bgp import PathAttributes
from bgpd.desired import DesiredNode, DesiredSession, Password
from bgpd.speaker.codec import (
    Event,
    PeerOpen,
    PeerState,
    RoutesReceived,
    SpeakerRestarted,
    announce,
    end_of_rib,
)
from bgpd.speaker.config import ExaBGPCommand, SpeakerSettings
from bgpd.speaker.gtsm import apply_rules, gtsm_rules
from bgpd.speaker.interpreter import choose
from bgpd.speaker.process import ExaBGPSpeaker, default_bridge_command

pytestmark = pytest.mark.lab

EXABGP = str(Path(sys.executable).parent / "exabgp")
A4, B4, A6, B6 = "10.77.1.1", "10.77.1.2", "fd77:1::1", "fd77:1::2"
DEADLINE = 30.0


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30).stdout


# ------------------------------------------------------------------------------------- namespaces


@pytest.fixture(scope="module")
def netns() -> Iterator[tuple[str, str]]:
    prefix = f"bgs-{secrets.token_hex(3)}"
    a, b = f"{prefix}-a", f"{prefix}-b"
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", b)
        for ns, v4, v6 in ((a, A4, A6), (b, B4, B6)):
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", "veth0")
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "veth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "veth0", "up")
        yield a, b
    finally:
        for ns in (a, b):
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)


# ------------------------------------------------------------------------------------- BIRD


class Bird:
    def __init__(self, ns: str, work: Path, protocols: str) -> None:
        self.sock = str(work / "bird.ctl")
        conf = work / "bird.conf"
        conf.write_text(
            f'router id {B4};\nlog "{work / "bird.log"}" all;\nprotocol device {{}}\n'
            "protocol static s4 { ipv4; route 192.0.2.0/24 blackhole; route 198.51.100.0/24 blackhole; }\n"
            "protocol static s6 { ipv6; route 2001:db8:77::/48 blackhole; }\n" + protocols
        )
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "bird", "-f", "-c", str(conf), "-s", self.sock,
             "-P", str(work / "bird.pid")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def birdc(self, *args: str) -> str:
        return sh("birdc", "-s", self.sock, *args, check=False)

    def established(self, proto: str) -> bool:
        return "Established" in self.birdc("show", "protocols", proto)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def bgp_protocol(name: str, local: str, peer: str, *, extra: str = "", channel: str = "ipv4",
                 export: str = "s4") -> str:
    return (
        f"protocol bgp {name} {{\n  local {local} as 65002;\n  neighbor {peer} as 65001;\n"
        "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
        f"  graceful restart on;\n  {extra}\n"
        f'  {channel} {{ import all; export where proto = "{export}"; }};\n}}\n'
    )


# ------------------------------------------------------------------------------------- speaker


def session(**changes: object) -> DesiredSession:
    base = DesiredSession(
        name="Global_10_77_1_2", family=4, kind="Global", peer_ip=B4, port=179, remote_as=65002,
        local_as=65001, ibgp=False, passive=False, rr_client=False, rr_cluster_id=None, password=None,
        ttl_security=None, max_restart_time=None, keepalive_time=None, source_address=A4,
        next_hop="auto", allow_local_as=None, filters=(), reachable_by=None, origin=("test",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def node(*sessions: DesiredSession, listen_port: int | None = None) -> DesiredNode:
    return DesiredNode(node="node-a", as_number=65001, router_id=A4, listen_port=listen_port,
                       sessions=sessions)


class Recorder:
    """Consumes the speaker's events in the background so waits can poll what arrived."""

    def __init__(self, speaker: ExaBGPSpeaker, bird: Bird, protos: tuple[str, ...]) -> None:
        self.speaker, self.bird, self.protos = speaker, bird, protos
        self.events: list[Event] = []
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for event in self.speaker.events():
            self.events.append(event)

    def dump(self) -> str:
        bird = "\n".join(self.bird.birdc("show", "protocols", "all", p) for p in self.protos)
        events = "\n".join(map(repr, self.events[-40:]))
        return f"BIRD:\n{bird}\nspeaker events:\n{events}\nlast exit: {self.speaker.last_exit}"

    async def until(self, what: str, check: Callable[[], bool], deadline: float = DEADLINE) -> None:
        end = time.monotonic() + deadline
        while not check():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}\n{self.dump()}")
            await asyncio.sleep(0.1)

    def up(self, peer: str, after: int = 0) -> bool:
        return PeerState(peer, "up") in self.events[after:]

    def received(self, peer: str) -> set[str]:
        routes = [e for e in self.events if isinstance(e, RoutesReceived) and e.peer_ip == peer]
        return {prefix for event in routes for prefix in event.prefixes}


@pytest.fixture(params=["cpython", "pypy"])
def launcher(request: pytest.FixtureRequest, tmp_path: Path) -> ExaBGPCommand:
    """ExaBGP under each interpreter bgpd can choose (bgpd.speaker.interpreter)."""
    choice = request.param
    command, reason = asyncio.run(choose(choice, EXABGP, tmp_path / "interp", exabgp_is_default=True))
    if command.interpreter != choice:
        pytest.skip(f"PYPY SKIPPED: {reason}")
    return command


async def run_speaker(tmp_path: Path, ns: str, desired: DesiredNode,
                      launcher: ExaBGPCommand | None = None) -> ExaBGPSpeaker:
    run_dir = tmp_path / "run"
    settings = SpeakerSettings(bridge_command=default_bridge_command(), api_socket=str(run_dir / "api.sock"),
                               exabgp=EXABGP, hold_time=9, node_ipv4=A4, node_ipv6=A6, launcher=launcher)
    speaker = ExaBGPSpeaker(settings, run_dir, command_prefix=("ip", "netns", "exec", ns))
    await speaker.start(desired)
    return speaker


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tcp_ext(ns: str, counter: str) -> int:
    """An absolute TcpExt counter of the namespace (nstat's history file is shared, so not nstat)."""
    lines = sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            return int(dict(zip(header.split(), values.split(), strict=True))[counter])
    raise AssertionError("no TcpExt counters")


def md5_failures(ns: str) -> int:
    return tcp_ext(ns, "TCPMD5Failure")


def scenario(tmp_path: Path, bird_protocols: str, protos: tuple[str, ...], desired: DesiredNode, *,
             ns: tuple[str, str], body: Callable[[ExaBGPSpeaker, Recorder], Awaitable[None]],
             launcher: ExaBGPCommand | None = None) -> None:
    bird = Bird(ns[1], tmp_path, bird_protocols)

    async def main() -> None:
        speaker = await run_speaker(tmp_path, ns[0], desired, launcher)
        recorder = Recorder(speaker, bird, protos)
        try:
            await body(speaker, recorder)
        finally:
            await speaker.stop()
            recorder.task.cancel()

    try:
        asyncio.run(main())
    finally:
        bird.stop()


# ------------------------------------------------------------------------------------- tests


def test_sessions_v4_v6_routes_both_ways(tmp_path: Path, netns: tuple[str, str],
                                         launcher: ExaBGPCommand) -> None:
    protocols = bgp_protocol("peer4", B4, A4) + bgp_protocol("peer6", B6, A6, channel="ipv6", export="s6")
    desired = node(session(), session(name="Global_fd77_1__2", family=6, peer_ip=B6, source_address=A6))

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        bird = rec.bird
        await rec.until("both sessions up in ExaBGP", lambda: rec.up(B4) and rec.up(B6))
        assert speaker.pid is not None
        assert ("pypy" in os.readlink(f"/proc/{speaker.pid}/exe")) == (launcher.interpreter == "pypy")
        await rec.until("BIRD Established", lambda: bird.established("peer4") and bird.established("peer6"))
        await rec.until("BIRD's routes", lambda: rec.received(B4) == {"192.0.2.0/24", "198.51.100.0/24"}
                        and rec.received(B6) == {"2001:db8:77::/48"})
        v6 = [e for e in rec.events if isinstance(e, RoutesReceived) and e.peer_ip == B6]
        assert {e.attributes.next_hop for e in v6} == {B6}  # the global next hop, not the link-local one
        assert [e.attributes.as_path for e in v6] == [(65002,)]
        opened = [e for e in rec.events if isinstance(e, PeerOpen) and e.peer_ip == B4]
        assert opened and opened[0].router_id == B4 and opened[0].asn == 65002
        assert opened[0].gr_time is not None
        result = await speaker.send([
            announce(B4, PathAttributes("self", communities=((65001, 7),)),
                     ["203.0.113.0/25", "203.0.113.128/25"]),
            announce(B6, PathAttributes(A6), ["2001:db8:1::/48"]),
            end_of_rib(B4, "ipv4 unicast"), end_of_rib(B6, "ipv6 unicast"),
        ])
        assert result.errors == 0
        await rec.until("our routes in BIRD",
                        lambda: "203.0.113.128/25" in bird.birdc("show", "route", "protocol", "peer4")
                        and "2001:db8:1::/48" in bird.birdc("show", "route", "protocol", "peer6"))
        assert "(65001,7)" in bird.birdc("show", "route", "203.0.113.0/25", "all")

    scenario(tmp_path, protocols, ("peer4", "peer6"), desired, ns=netns, body=body, launcher=launcher)


def test_md5_match_then_mismatch_and_no_secret_leaks(tmp_path: Path, netns: tuple[str, str],
                                                     launcher: ExaBGPCommand) -> None:
    secret = "Se'same open;#}{["  # ExaBGP's tokenizer would split this; BIRD cannot take a double quote
    protocols = bgp_protocol("peer4", B4, A4, extra=f'password "{secret}";')
    desired = node(session(password=Password(secret)))

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        await rec.until("MD5 session up", lambda: rec.up(B4) and rec.bird.established("peer4"))
        assert speaker.config_path.stat().st_mode & 0o777 == 0o600
        assert speaker.config_path.parent.stat().st_mode & 0o777 == 0o700
        assert speaker.pid is not None
        pids = descendants(speaker.pid)
        assert len(pids) >= 2, "ExaBGP and its bridge"
        for pid in pids:
            assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
            assert secret.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        assert secret not in speaker.config_path.read_text()

        before, mark = md5_failures(netns[0]) + md5_failures(netns[1]), len(rec.events)
        await speaker.reconfigure(node(session(password=Password("not the same"))))
        await rec.until("MD5 failures counted",
                        lambda: md5_failures(netns[0]) + md5_failures(netns[1]) > before)
        await rec.until("BIRD session down", lambda: not rec.bird.established("peer4"))
        assert not rec.up(B4, after=mark), "a mismatched key must never establish"

    scenario(tmp_path, protocols, ("peer4",), desired, ns=netns, body=body, launcher=launcher)


def test_gtsm_one_hop_forced_active_and_inbound_rule(tmp_path: Path, netns: tuple[str, str],
                                                     launcher: ExaBGPCommand) -> None:
    protocols = bgp_protocol("peer4", B4, A4, extra="ttl security on;")
    desired = node(session(ttl_security=1, passive=True))  # passive by Calico's rule: rendered active

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        prefix = ("ip", "netns", "exec", netns[0])
        ruleset = sh(*prefix, "nft", "list", "table", "inet", "bgpd_gtsm")  # installed by the speaker
        assert ruleset.count(f"ip saddr {B4} tcp dport 179 ip ttl < 255 counter packets 0 bytes 0 drop") == 1
        await rec.until("GTSM session up", lambda: rec.up(B4) and rec.bird.established("peer4"))
        await speaker.reconfigure(node(session(ttl_security=None)))
        assert "bgpd_gtsm" not in sh(*prefix, "nft", "list", "tables")
        await speaker.reconfigure(desired)
        await apply_rules(gtsm_rules(desired), prefix)  # idempotent
        assert sh(*prefix, "nft", "list", "table", "inet", "bgpd_gtsm").count("ip ttl < 255") == 1
        await speaker.stop()
        assert "bgpd_gtsm" not in sh(*prefix, "nft", "list", "tables")

    scenario(tmp_path, protocols, ("peer4",), desired, ns=netns, body=body, launcher=launcher)


def test_passive_session_on_listen_port(tmp_path: Path, netns: tuple[str, str]) -> None:
    protocols = bgp_protocol("peer4", B4, f"{A4} port 1790")
    desired = node(session(passive=True), listen_port=1790)

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        await rec.until("BIRD connects to :1790", lambda: rec.up(B4) and rec.bird.established("peer4"))
        assert f"{A4}:1790" in sh("ip", "netns", "exec", netns[0], "ss", "-tn", "state", "established")

    scenario(tmp_path, protocols, ("peer4",), desired, ns=netns, body=body)


def test_exabgp_killed_is_restarted_and_session_returns(tmp_path: Path, netns: tuple[str, str]) -> None:
    protocols = bgp_protocol("peer4", B4, A4)
    desired = node(session())

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        await rec.until("session up", lambda: rec.up(B4) and rec.bird.established("peer4"))
        old = speaker.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await rec.until("restart event", lambda: any(isinstance(e, SpeakerRestarted) for e in rec.events))
        restarted = next(i for i, e in enumerate(rec.events) if isinstance(e, SpeakerRestarted))
        # the speaker says the session ended with its own ExaBGP (local=True: bgpd is the restarting side)
        states = [dataclasses.replace(e, reason=None) for e in rec.events[:restarted]
                  if isinstance(e, PeerState)]
        assert PeerState(B4, "down", local=True) in states
        assert speaker.restarts == 1 and "SIGKILL" in (speaker.last_exit or "")
        assert speaker.pid not in (None, old)
        await rec.until("session back", lambda: rec.up(B4, after=restarted) and rec.bird.established("peer4"))
        # the caller replays its routes after a restart, then sends End-of-RIB
        await speaker.send([announce(B4, PathAttributes("self"), ["203.0.113.0/24"]),
                            end_of_rib(B4, "ipv4 unicast")])
        await rec.until("replayed route in BIRD",
                        lambda: "203.0.113.0/24" in rec.bird.birdc("show", "route", "protocol", "peer4"))

    scenario(tmp_path, protocols, ("peer4",), desired, ns=netns, body=body)


def test_reload_resets_only_the_changed_session(tmp_path: Path, netns: tuple[str, str]) -> None:
    protocols = bgp_protocol("peer4", B4, A4) + bgp_protocol("peer6", B6, A6, channel="ipv6", export="s6")
    v6 = session(name="Global_fd77_1__2", family=6, peer_ip=B6, source_address=A6)
    desired = node(session(), v6)

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        bird = rec.bird
        await rec.until("both up", lambda: rec.up(B4) and rec.up(B6) and bird.established("peer4")
                        and bird.established("peer6"))
        peer4_before, mark = bird.birdc("show", "protocols", "peer4"), len(rec.events)
        await speaker.reconfigure(node(session(), dataclasses.replace(v6, keepalive_time=5)))
        await rec.until("the changed session re-established", lambda: rec.up(B6, after=mark)
                        and bird.established("peer6"))
        assert not [e for e in rec.events[mark:] if isinstance(e, PeerState) and e.peer_ip == B4]
        assert bird.birdc("show", "protocols", "peer4") == peer4_before  # same state, same "Since"

    scenario(tmp_path, protocols, ("peer4", "peer6"), desired, ns=netns, body=body)


def test_graceful_stop_keeps_routes_at_peer_and_drain_withdraws(
    tmp_path: Path, netns: tuple[str, str]
) -> None:
    protocols = bgp_protocol("peer4", B4, A4, extra="debug { states, events };")
    desired = node(session())
    route = "203.0.113.0/24"

    def bird_has_route(rec: Recorder) -> bool:
        return route in rec.bird.birdc("show", "route", route)

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        await rec.until("session up", lambda: rec.up(B4) and rec.bird.established("peer4"))
        await speaker.send([announce(B4, PathAttributes("self"), [route]), end_of_rib(B4, "ipv4 unicast")])
        await rec.until("route in BIRD", lambda: bird_has_route(rec))
        await speaker.stop(graceful=True)
        log = tmp_path / "bird.log"
        await rec.until("BIRD sees a graceful restart", lambda: "graceful restart" in log.read_text().lower())
        assert not rec.bird.established("peer4") and bird_has_route(rec), "GR peer keeps our route as stale"
        assert "Received:" not in log.read_text(), "SIGTERM must not send a NOTIFICATION"

        again = await run_speaker(tmp_path / "again", netns[0], desired)
        rec2 = Recorder(again, rec.bird, rec.protos)
        try:
            await rec2.until("session back", lambda: rec2.up(B4) and rec2.bird.established("peer4"))
            await again.send([announce(B4, PathAttributes("self"), [route]), end_of_rib(B4, "ipv4 unicast")])
            await again.drain()
            await rec2.until("route withdrawn and session closed",
                             lambda: not bird_has_route(rec2) and not rec2.bird.established("peer4"))
        finally:
            await again.stop()
            rec2.task.cancel()

    scenario(tmp_path, protocols, ("peer4",), desired, ns=netns, body=body)


def test_gtsm_refuses_a_peer_that_does_not_send_ttl_255(tmp_path: Path, netns: tuple[str, str],
                                                        launcher: ExaBGPCommand) -> None:
    protocols = bgp_protocol("peer4", B4, A4)  # no GTSM: BIRD's packets arrive with TTL 64
    desired = node(session(ttl_security=1))
    prefix = ("ip", "netns", "exec", netns[0])

    def dropped() -> int:
        table = sh(*prefix, "nft", "list", "table", "inet", "bgpd_gtsm")
        return int(table.split("counter packets ")[1].split()[0])

    min_ttl_drops = tcp_ext(netns[0], "TCPMinTTLDrop")  # the namespace outlives single tests

    async def body(speaker: ExaBGPSpeaker, rec: Recorder) -> None:
        # BIRD's SYNs to our port die in the nft rule; its SYN-ACKs to our own SYNs die on IP_MINTTL
        await rec.until("BIRD's SYNs dropped by the GTSM rule", lambda: dropped() >= 1)
        await rec.until("BIRD's SYN-ACKs dropped by ExaBGP's minimum TTL",
                        lambda: tcp_ext(netns[0], "TCPMinTTLDrop") > min_ttl_drops)
        assert not rec.bird.established("peer4") and not rec.up(B4)

    scenario(tmp_path, protocols, ("peer4",), desired, ns=netns, body=body, launcher=launcher)
