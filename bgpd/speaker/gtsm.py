"""Close ExaBGP's inbound GTSM gap with nftables (I/O: runs `nft`).

ExaBGP enforces a minimum TTL only on sockets it opens itself (reference/exabgp.md §4), and bgpd renders
GTSM sessions active for that reason. A GTSM peer can still try to connect *in* to our BGP port, where
no minimum TTL applies; this table drops such packets when their TTL (IPv6: hop limit) is below
256 - ttlSecurity. bgpd owns the whole table `inet bgpd_gtsm` and replaces it in one nft transaction
from the desired set, so applying the same set twice changes nothing and a removed peer loses its rule.
Each rule counts what it drops (`nft list table inet bgpd_gtsm`), evidence of a peer too many hops away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bgpd.desired import DEFAULT_BGP_PORT, DesiredNode

TABLE = "bgpd_gtsm"


@dataclass(frozen=True, order=True)
class GtsmRule:
    peer_ip: str
    family: int
    port: int  # our listening port the peer would connect to
    min_ttl: int


def gtsm_rules(desired: DesiredNode) -> tuple[GtsmRule, ...]:
    port = desired.listen_port or DEFAULT_BGP_PORT
    return tuple(sorted({
        GtsmRule(s.peer_ip, s.family, port, 256 - s.ttl_security)
        for s in desired.sessions if s.ttl_security is not None
    }))


def render_ruleset(rules: Iterable[GtsmRule]) -> str:
    """An nft script that atomically replaces our table (or removes it when there are no rules)."""
    lines = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    body = [
        f"    {'ip saddr' if r.family == 4 else 'ip6 saddr'} {r.peer_ip} tcp dport {r.port} "
        f"{'ip ttl' if r.family == 4 else 'ip6 hoplimit'} < {r.min_ttl} counter drop"
        for r in rules
    ]
    if body:
        lines += [
            f"table inet {TABLE} {{",
            "  chain input {",
            "    type filter hook input priority -10; policy accept;",
            *body,
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


async def apply_rules(rules: Iterable[GtsmRule], command_prefix: Sequence[str] = ()) -> None:
    """Make the kernel hold exactly these rules (command_prefix: e.g. `ip netns exec NS`)."""
    await _nft(render_ruleset(rules), command_prefix)


async def remove_rules(command_prefix: Sequence[str] = ()) -> None:
    await _nft(render_ruleset(()), command_prefix)


async def _nft(script: str, command_prefix: Sequence[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command_prefix, "nft", "-f", "-", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise RuntimeError(f"nft failed ({proc.returncode}): {output.decode(errors='replace').strip()}")
