"""BIRD 2 as a lab peer: one ``bird -f`` per namespace, driven through its own control socket."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .node import Speaker, run_cli, tail, write_private
from .proc import kill, wait_exit
from .topology import Neighbor, NodeSpec
from .wait import wait_until

BIRD = "bird"
BIRDC = "birdc"
# BIRD's session states are the FSM names, except that it shows "Passive" while only listening
_STATE = re.compile(r"^(\S+)\s+BGP\s+\S+\s+(\S+)\s+\S+\s+(\S+)", re.MULTILINE)


def protocol_name(ip: str) -> str:
    return "peer_" + re.sub(r"[.:]", "_", ip)


def render_config(spec: NodeSpec, router_id: str, announced: Iterable[str], log: Path) -> str:
    """The whole bird.conf of one node (pure: same inputs, same text)."""
    announced = sorted(announced)
    parts = [
        f"router id {router_id};",
        f'log "{log}" all;',
        "protocol device { scan time 10; }",
        "protocol direct { ipv4; ipv6; }",
        # learn: kernel routes (the lab's static routes) resolve multihop next hops;
        # only BGP routes go to the kernel, with every equal path (ECMP)
        *(
            f"protocol kernel kernel{v} {{ learn; merge paths on; scan time 10;"
            f" ipv{v} {{ import all; export where source = RTS_BGP; }}; }}"
            for v in (4, 6)
        ),
        *(
            f"protocol static announce{v} {{ ipv{v};"
            + "".join(f" route {p} blackhole;" for p in announced if (":" in p) == (v == 6))
            + " }"
            for v in (4, 6)
        ),
        *(_bgp(spec, n) for n in spec.neighbors),
    ]
    return "\n".join(parts) + "\n"


def _bgp(spec: NodeSpec, n: Neighbor) -> str:
    lines = [
        f"protocol bgp {protocol_name(n.ip)} {{",
        f"  description \"{n.name}\";",
        f"  local{f' {n.source}' if n.source else ''}{f' port {n.local_port}' if n.local_port else ''}"
        f" as {spec.asn};",
        f"  neighbor {n.ip} port {n.port} as {n.remote_as};",
        "  debug { states };",  # "State changed to up" lines are what transitions() counts
        "  connect delay time 1; connect retry time 2; error wait time 1, 4;",
    ]
    if n.password:
        lines.append(f'  password "{n.password}";')
    if n.ttl_security:
        lines.append("  ttl security on;")
    hops = n.multihop or (n.ttl_security if n.ttl_security and n.ttl_security > 1 else None)
    if hops:
        lines.append(f"  multihop {hops};")
    if n.passive:
        lines.append("  passive on;")
    if n.graceful_restart:
        lines.append(f"  graceful restart on; graceful restart time {n.graceful_restart};")
    nhs = " next hop self;" if n.next_hop_self else ""
    lines.append(f"  ipv{n.family} {{ import all; export where source ~ [RTS_STATIC, RTS_BGP];{nhs} }};")
    lines.append("}")
    return "\n".join(lines)


class Bird(Speaker):
    @property
    def conf(self) -> Path:
        return self.run_dir / "bird.conf"

    @property
    def sock(self) -> Path:
        return self.run_dir / "bird.ctl"

    @property
    def log(self) -> Path:
        return self.run_dir / "bird.log"

    def start(self) -> None:
        self._write_config(self.announced())
        self._spawn("bird", [BIRD, "-f", "-c", str(self.conf), "-s", str(self.sock),
                             "-P", str(self.run_dir / "bird.pid")])
        wait_until(lambda: self._running("bird") and self.birdc("show status").startswith("BIRD"),
                   10, f"{self.name}: BIRD control socket")

    def restart(self, graceful: bool = False) -> None:
        ref = self._forget("bird")
        if ref and ref.alive():
            if graceful:
                # BIRD's own graceful restart: sessions close without NOTIFICATION, kernel routes stay
                self.birdc("graceful restart")
                wait_exit(ref, timeout=10)
            else:
                kill(ref)  # SIGTERM: BIRD shuts its sessions down with a Cease NOTIFICATION
        self.start()

    def sessions(self) -> dict[str, str]:
        ips = {protocol_name(n.ip): n.ip for n in self.spec.neighbors}
        out = self.birdc("show protocols")
        return {ips[m[1]]: ("Established" if m[2] == "up" else m[3]) for m in _STATE.finditer(out)
                if m[1] in ips}

    def transitions(self, peer_ip: str) -> int:
        if not self.log.exists():
            return 0
        needle = f"{protocol_name(peer_ip)}: State changed to up"
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if line.endswith(needle))

    def announce(self, prefix: str) -> None:
        self._reconfigure(self.announced() | {prefix})

    def withdraw(self, prefix: str) -> None:
        self._reconfigure(self.announced() - {prefix})

    def rib(self) -> str:
        return self.birdc("show route all")

    def birdc(self, command: str) -> str:
        proc = run_cli([BIRDC, "-s", str(self.sock), *command.split()])
        return proc.stdout.split("\n", 1)[1] if proc.stdout.startswith("BIRD") else proc.stdout + proc.stderr

    def status_text(self) -> str:
        return self.birdc("show protocols")

    def daemon_dump(self) -> str:
        return "\n".join([
            f"--- birdc show protocols all\n{self.birdc('show protocols all')}",
            f"--- birdc show route\n{self.birdc('show route')}",
            f"--- {self.log} (tail)\n{tail(self.log)}",
            f"--- bird.out\n{tail(self.run_dir / 'bird.out', 20)}",
        ])

    def _write_config(self, announced: set[str]) -> None:
        router_id = self.topology.router_id(self.name)
        write_private(self.conf, render_config(self.spec, router_id, announced, self.log))
        self._save_announced(announced)

    def _reconfigure(self, announced: set[str]) -> None:
        self._write_config(announced)
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RuntimeError(f"{self.name}: birdc configure failed: {out}")
