"""FRR as a lab peer: zebra + bgpd per namespace, every path private to the node's run directory.

bgpd needs zebra next to it: without zebra's view of connected routes it never initiates a session.
The daemons drop privileges to the ``frr`` user, so the run directory and configs belong to it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
from collections.abc import Iterable
from pathlib import Path

from .node import Speaker, run_cli, tail, write_private
from .proc import kill
from .topology import Neighbor, NodeSpec
from .wait import wait_until

FRR_DIR = Path("/usr/lib/frr")
VTYSH = "vtysh"
FRR_USER = "frr"


def render_bgpd_config(spec: NodeSpec, router_id: str, announced: Iterable[str]) -> str:
    """The whole bgpd.conf of one node (pure)."""
    announced = sorted(announced)
    lines = [
        f"hostname {spec.name}",
        f"router bgp {spec.asn}",
        f" bgp router-id {router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        " no bgp default ipv4-unicast",
        " bgp log-neighbor-changes",
    ]
    restart_times = [n.graceful_restart for n in spec.neighbors if n.graceful_restart]
    if restart_times:
        lines.append(f" bgp graceful-restart restart-time {max(restart_times)}")
    for n in spec.neighbors:
        lines += _neighbor(n)
    for family in (4, 6):
        lines += _family(spec.neighbors, [p for p in announced if (":" in p) == (family == 6)], family)
    return "\n".join(lines) + "\n"


def _neighbor(n: Neighbor) -> list[str]:
    out = [f" neighbor {n.ip} remote-as {n.remote_as}", f" neighbor {n.ip} description {n.name}",
           f" neighbor {n.ip} timers connect 1"]
    if n.port != 179:
        out.append(f" neighbor {n.ip} port {n.port}")
    if n.password:
        out.append(f" neighbor {n.ip} password {n.password}")
    if n.ttl_security:
        out.append(f" neighbor {n.ip} ttl-security hops {n.ttl_security}")
    elif n.multihop:
        out.append(f" neighbor {n.ip} ebgp-multihop {n.multihop}")
    if n.passive:
        out.append(f" neighbor {n.ip} passive")
    if n.source:
        out.append(f" neighbor {n.ip} update-source {n.source}")
    if n.graceful_restart:
        out.append(f" neighbor {n.ip} graceful-restart")
    return out


def _family(neighbors: Iterable[Neighbor], prefixes: list[str], family: int) -> list[str]:
    members = [n for n in neighbors if n.family == family]
    if not members and not prefixes:
        return []
    out = [f" address-family ipv{family} unicast"]
    out += [f"  network {p}" for p in prefixes]
    for n in members:
        out.append(f"  neighbor {n.ip} activate")
        if n.next_hop_self:
            out.append(f"  neighbor {n.ip} next-hop-self")
    return [*out, " exit-address-family"]


class Frr(Speaker):
    @property
    def log(self) -> Path:
        return self.run_dir / "bgpd.log"

    @property
    def _owner(self) -> tuple[int, int]:
        user = pwd.getpwnam(FRR_USER)
        return user.pw_uid, user.pw_gid

    def prepare(self) -> None:
        super().prepare()
        # the daemons run as frr: they create their sockets, pid files and logs in here
        os.chown(self.run_dir, *self._owner)

    def start(self) -> None:
        self.prepare()
        zserv = self.run_dir / "zserv.api"
        write_private(self.run_dir / "zebra.conf", f"hostname {self.name}\n", self._owner)
        if not self._alive("zebra"):
            zserv.unlink(missing_ok=True)
            self._spawn("zebra", [str(FRR_DIR / "zebra"), *self._opts("zebra"), "-s", "90000000"])
            wait_until(lambda: self._running("zebra") and zserv.exists(), 10, f"{self.name}: zebra socket")
        self._start_bgpd()

    def _start_bgpd(self) -> None:
        router_id = self.topology.router_id(self.name)
        conf = render_bgpd_config(self.spec, router_id, self.announced())
        write_private(self.run_dir / "bgpd.conf", conf, self._owner)
        self._save_announced(self.announced())
        self._spawn("bgpd", [str(FRR_DIR / "bgpd"), *self._opts("bgpd")])
        wait_until(lambda: self._running("bgpd") and self._neighbors() is not None, 10,
                   f"{self.name}: bgpd answering on its vty socket")

    def _opts(self, daemon: str) -> list[str]:
        d = self.run_dir
        return ["-N", self.ns, "-f", str(d / f"{daemon}.conf"), "-i", str(d / f"{daemon}.pid"),
                "-z", str(d / "zserv.api"), "--vty_socket", str(d), "-P", "0",
                "-u", FRR_USER, "-g", FRR_USER, "--log", f"file:{d / (daemon + '.log')}",
                "--log-level", "info"]

    def _alive(self, name: str) -> bool:
        return any(p.name == name and p.alive() for p in self.procs())

    def restart(self, graceful: bool = False) -> None:
        """Restart bgpd (zebra stays). Graceful: SIGKILL, so no NOTIFICATION leaves and GR peers keep
        our routes; otherwise SIGTERM, on which bgpd sends a Cease NOTIFICATION to every peer."""
        ref = self._forget("bgpd")
        if ref:
            kill(ref, sig=signal.SIGKILL if graceful else signal.SIGTERM)
        self._start_bgpd()

    def sessions(self) -> dict[str, str]:
        return {ip: str(info.get("bgpState")) for ip, info in (self._neighbors() or {}).items()}

    def transitions(self, peer_ip: str) -> int:
        if not self.log.exists():
            return 0
        up = re.compile(rf"%ADJCHANGE: neighbor {re.escape(peer_ip)}[( ].* Up\b")
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if up.search(line))

    def announce(self, prefix: str) -> None:
        self._network(prefix, "")
        self._save_announced(self.announced() | {prefix})

    def withdraw(self, prefix: str) -> None:
        self._network(prefix, "no ")
        self._save_announced(self.announced() - {prefix})

    def _network(self, prefix: str, negate: str) -> None:
        family = 6 if ":" in prefix else 4
        self.vtysh("configure terminal", f"router bgp {self.spec.asn}",
                   f"address-family ipv{family} unicast", f"{negate}network {prefix}")

    def rib(self) -> str:
        return self.vtysh("show bgp ipv4 unicast") + self.vtysh("show bgp ipv6 unicast")

    def vtysh(self, *commands: str, daemon: str = "bgpd") -> str:
        argv = [VTYSH, "--vty_socket", str(self.run_dir), "-d", daemon]
        for command in commands:
            argv += ["-c", command]
        proc = run_cli(argv)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name}: vtysh {commands!r} -> {proc.returncode}: "
                               f"{proc.stdout}{proc.stderr}")
        return proc.stdout

    def _neighbors(self) -> dict[str, dict[str, object]] | None:
        try:
            out = self.vtysh("show bgp neighbors json")
            data = json.loads(out) if out.strip() else {}
        except (RuntimeError, ValueError):
            return None
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def status_text(self) -> str:
        return self.vtysh("show bgp summary")

    def daemon_dump(self) -> str:
        def safe(*cmd: str) -> str:
            try:
                return self.vtysh(*cmd)
            except RuntimeError as exc:
                return str(exc)

        return "\n".join([
            f"--- show bgp summary\n{safe('show bgp summary')}",
            f"--- show bgp neighbors\n{safe('show bgp neighbors')}",
            f"--- show bgp ipv4/ipv6 unicast\n{safe('show bgp ipv4 unicast')}{safe('show bgp ipv6 unicast')}",
            f"--- {self.log} (tail)\n{tail(self.log)}",
            f"--- zebra.log (tail)\n{tail(self.run_dir / 'zebra.log', 15)}",
            f"--- bgpd.out\n{tail(self.run_dir / 'bgpd.out', 15)}",
        ])
