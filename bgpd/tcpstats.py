"""Gather the evidence bgpd.diagnosis turns into words (I/O: a file, `nft`, TCP connects).

Cheap by design, and only while some session is down (the caller decides): one read of
/proc/net/netstat (the TcpExt counters of bgpd's own namespace, absolute values: `nstat`'s history
file is shared between namespaces), one `nft -j list table inet bgpd_gtsm` when a GTSM session is
down, and a TCP connect to a down peer at most every PROBE_EVERY seconds.

Probes only where they cannot mislead or disturb: an active session without a password (a peer with
one drops an unsigned SYN silently, which would read as "no answer") and without GTSM (its own
evidence is the TTL drops), that never got an OPEN; the probe sends nothing and closes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import socket
from collections.abc import Sequence
from pathlib import Path

from bgpd.diagnosis import ProbeResult, ProbeTarget, TcpCounters
from bgpd.speaker.gtsm import TABLE

NETSTAT = Path("/proc/net/netstat")
TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
SYN_SENT = "02"
PROBE_TIMEOUT = 3.0
_FIELDS = {"TCPMD5NotFound": "md5_not_found", "TCPMD5Unexpected": "md5_unexpected",
           "TCPMD5Failure": "md5_failure", "TCPMinTTLDrop": "min_ttl_drop"}


def parse_netstat(text: str) -> TcpCounters:
    """The TcpExt counters bgpd reads, from /proc/net/netstat's header/value line pairs."""
    lines = text.splitlines()
    values: dict[str, int] = {}
    for names, numbers in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:") and numbers.startswith("TcpExt:"):
            values = {n: int(v) for n, v in zip(names.split()[1:], numbers.split()[1:], strict=False)}
    return TcpCounters(**{field: values.get(name, 0) for name, field in _FIELDS.items()})


def read_counters(path: Path = NETSTAT) -> TcpCounters | None:
    try:
        return parse_netstat(path.read_text())
    except (OSError, ValueError):
        return None


def parse_syn_sent(text: str) -> tuple[tuple[str, int, int], ...]:
    """(peer IP, port, retransmissions) of each SYN-SENT socket in a /proc/net/tcp{,6} table."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 6 and fields[3] == SYN_SENT:
            address, port = fields[2].split(":")
            found.append((_proc_address(address), int(port, 16), int(fields[6], 16)))
    return tuple(found)


def _proc_address(hex_address: str) -> str:
    """The kernel prints addresses as 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def read_syn_sent(tables: Sequence[Path] = TCP_TABLES) -> tuple[tuple[str, int, int], ...]:
    found: list[tuple[str, int, int]] = []
    for table in tables:
        with contextlib.suppress(OSError, ValueError):
            found += parse_syn_sent(table.read_text())
    return tuple(found)


def parse_gtsm_drops(nft_json: str) -> tuple[tuple[str, int], ...]:
    """Packets dropped per peer address, from `nft -j list table inet bgpd_gtsm`."""
    drops: dict[str, int] = {}
    for item in json.loads(nft_json).get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        peer, packets = None, 0
        for expr in rule.get("expr", []):
            match = expr.get("match", {})
            if match.get("left", {}).get("payload", {}).get("field") == "saddr":
                peer = str(match.get("right"))
            if "counter" in expr:
                packets = int(expr["counter"].get("packets", 0))
        if peer is not None:
            drops[peer] = drops.get(peer, 0) + packets
    return tuple(sorted(drops.items()))


async def read_gtsm_drops() -> tuple[tuple[str, int], ...]:
    """() when the table is missing or nft fails: no evidence, not an error."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "nft", "-j", "list", "table", "inet", TABLE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        output, _ = await proc.communicate()
    except OSError:
        return ()
    if proc.returncode != 0:
        return ()
    try:
        return parse_gtsm_drops(output.decode())
    except (ValueError, AttributeError, TypeError):
        return ()


def classify(code: int | None) -> ProbeResult:
    """A connect's outcome from its errno (None: connected)."""
    if code is None:
        return "open"
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in (errno.ENETUNREACH,):
        return "no-route"
    if code in (errno.EHOSTUNREACH, errno.EHOSTDOWN):
        return "unreachable"
    return "timeout"


async def probe(target: ProbeTarget, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    family = socket.AF_INET6 if ":" in target.peer_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if target.source:
            with contextlib.suppress(OSError):  # e.g. the address is gone: probe from any
                sock.bind((target.source, 0))
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (target.peer_ip, target.port)), timeout)
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return classify(exc.errno)
        return "open"
    finally:
        sock.close()


async def probe_all(targets: Sequence[ProbeTarget]) -> tuple[tuple[str, ProbeResult], ...]:
    results = await asyncio.gather(*(probe(t) for t in targets))
    return tuple((t.name, r) for t, r in zip(targets, results, strict=True))
