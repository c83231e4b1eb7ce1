"""Render ExaBGP 5.0.15's configuration file and environment for one DesiredNode (pure).

Rules that come from lab findings (../shared/reference/exabgp.md) rather than taste:

- Flat neighbor blocks, never templates: template scalars *override* the neighbor's own values (§10).
- No routes here. A reload never withdraws a route removed from the file (§7); routes go over the API.
- Every neighbor has a `local-address`. ExaBGP matches inbound connections on (peer, local) address,
  binds per-neighbor listeners to it and installs the MD5 key on the listener for it. When the session
  has no `sourceAddress` (Calico's `sourceAddress: None`) we still use the node's own address of that
  family (SpeakerSettings.node_ipv4/ipv6): the kernel would pick the same address on a directly
  connected link, and the other choice (`local-address auto`) cannot listen and cannot match inbound
  connections. Only an *active* session with no known node address of its family falls back to `auto`.
- Passive sessions get their own `listen <listenPort or 179>`: the global `exabgp.tcp.bind` listener does
  not enforce GTSM, so it stays empty. Active sessions (except GTSM ones, and those with no known local
  address) listen too: Calico's node-scoped, peerSelector and reverse peerings are active at both ends,
  and a node whose sessions are all active (a route reflector once the mesh is off) would otherwise
  refuse every connection its peers open -- two such bgpd nodes never met.
- Deviation from Calico's passive rule: a GTSM session (`ttlSecurity`) is always rendered ACTIVE. ExaBGP's
  listener answers with TTL 64 (a GTSM peer that sets its minimum TTL before connecting, like FRR, can
  never get in) and a shared listener socket would impose one peer's minimum TTL on the others (§4).
  The inbound direction is still protected by bgpd's nftables rule (bgpd.speaker.gtsm).
- MD5 keys are written base64-encoded with `md5-base64 true`: the key bytes are the password's UTF-8
  bytes (as BIRD and FRR use them) and no character of the password can break ExaBGP's tokenizer.
- ExaBGP has no keepalive setting (it sends keepalives every hold/3): a session's `keepaliveTime`
  becomes `hold-time 3 * keepaliveTime`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from bgpd.desired import DEFAULT_BGP_PORT, DesiredNode, DesiredSession

PROCESS_NAME = "bgpd"
DEFAULT_RESTART_TIME = 120
GR_TIME_MAX = 4095  # 12-bit field of the GR capability (RFC 4724)
MD5_KEY_MAX = 80  # TCP_MD5SIG_MAXKEYLEN
HOLD_TIME_MIN = 3
REACTOR_SPEED = "0.5"  # ExaBGP's reactor poll timeout is this / 100 seconds (environment())
_SAFE_WORD = re.compile(r"[A-Za-z0-9_./:=+@%-]+")


class SpeakerConfigError(ValueError):
    """A DesiredNode that ExaBGP cannot be configured for (the message never contains a secret)."""


@dataclass(frozen=True)
class ExaBGPCommand:
    """How to start ExaBGP: ``argv`` + a sub-command (`server CONF`), with ``env`` added to its
    environment (bgpd.speaker.interpreter chooses between CPython and PyPy)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    interpreter: Literal["cpython", "pypy"] = "cpython"


@dataclass(frozen=True)
class SpeakerSettings:
    """The daemon-side facts the rendered config needs besides the DesiredNode."""

    bridge_command: tuple[str, ...]  # argv of the API bridge ExaBGP spawns; the socket path is appended
    api_socket: str  # the unix socket bgpd listens on for the bridge
    exabgp: str = "exabgp"
    hold_time: int = 90
    router_id: str | None = None  # used when the DesiredNode has none
    node_ipv4: str | None = None
    node_ipv6: str | None = None
    launcher: ExaBGPCommand | None = None  # None: run ``exabgp`` as it is

    @property
    def command(self) -> ExaBGPCommand:
        return self.launcher or ExaBGPCommand((self.exabgp,))


def render_config(desired: DesiredNode, settings: SpeakerSettings) -> str:
    """The whole ExaBGP configuration file text: the API process, then one block per session."""
    router_id = desired.router_id or settings.router_id or settings.node_ipv4
    if router_id is None:
        raise SpeakerConfigError(f"node {desired.node}: no router id and no IPv4 address to derive one from")
    run = " ".join(_word(arg, "bridge command") for arg in (*settings.bridge_command, settings.api_socket))
    lines = [
        f"# ExaBGP configuration for node {desired.node}, rendered by bgpd; rewritten on every change.",
        "# Routes are never configured here: bgpd announces them over the API.",
        f"process {PROCESS_NAME} {{",
        f"  run {run};",
        "  encoder json;",
        "}",
    ]
    for session in desired.sessions:
        lines.append("")
        lines.extend(_neighbor(desired, session, settings, router_id))
    return "\n".join(lines) + "\n"


def _neighbor(
    desired: DesiredNode, session: DesiredSession, settings: SpeakerSettings, router_id: str
) -> list[str]:
    where = f"session {session.name}"
    passive = _passive(session, settings)
    body = [
        f'description "{_word(session.name, where)}";',
        f"router-id {router_id};",
        f"local-address {_local_address(session, settings, passive)};",
        f"local-as {session.local_as};",
        f"peer-as {session.remote_as};",
        f"hold-time {_hold_time(session, settings)};",
    ]
    listen = f"listen {desired.listen_port or DEFAULT_BGP_PORT};"
    if passive:
        body += ["passive true;", listen]
    else:
        body += ["passive false;", f"connect {session.port or DEFAULT_BGP_PORT};"]
        if session.ttl_security is None and not body[2].endswith(" auto;"):
            body.append(listen)  # the peer may dial too (module doc)
    if session.password is not None:
        body += [f'md5-password "{_md5(session, where)}";', "md5-base64 true;"]
    if session.ttl_security is not None:
        hops = session.ttl_security
        if not 1 <= hops <= 255:
            raise SpeakerConfigError(f"{where}: ttlSecurity must be 1..255; got {hops!r}")
        body += [f"incoming-ttl {256 - hops};", "outgoing-ttl 255;"]
    restart = session.max_restart_time if session.max_restart_time is not None else DEFAULT_RESTART_TIME
    body += [
        "group-updates true;",
        "adj-rib-in false;",
        "manual-eor true;",
        f"family {{ ipv{session.family} unicast; }}",
        f"capability {{ graceful-restart {min(restart, GR_TIME_MAX)}; route-refresh; }}",
        f"api {{ processes [ {PROCESS_NAME} ]; neighbor-changes; "
        "receive { parsed; update; open; notification; } }",
    ]
    return [f"neighbor {_peer_ip(session)} {{", *(f"  {line}" for line in body), "}"]


def _peer_ip(session: DesiredSession) -> str:
    try:
        ip = ipaddress.ip_address(session.peer_ip)
    except ValueError:
        raise SpeakerConfigError(f"session {session.name}: bad peer IP; got {session.peer_ip!r}") from None
    if ip.version != session.family:
        raise SpeakerConfigError(f"session {session.name}: peer IP is not IPv{session.family}")
    return str(ip)


def _passive(session: DesiredSession, settings: SpeakerSettings) -> bool:
    """Calico's passive flag, except: GTSM sessions are active (module doc), and between two Calico
    nodes that Calico has both dial (node-scoped, peerSelector and reverse peerings) only the end with
    the smaller address as a string dials, the mesh rule. ExaBGP resolves a connection collision by
    closing its own outgoing connection at both ends, so two bgpd nodes dialling in step never meet
    (seen with route reflectors and their clients). A BIRD-based Calico node dials either way."""
    if session.ttl_security is not None:
        return False
    if session.passive:
        return True
    local = session.source_address or (settings.node_ipv4 if session.family == 4 else settings.node_ipv6)
    return session.peer_node is not None and local is not None and session.peer_ip > local


def _local_address(session: DesiredSession, settings: SpeakerSettings, passive: bool) -> str:
    node_ip = settings.node_ipv4 if session.family == 4 else settings.node_ipv6
    local = session.source_address or node_ip
    if local is None:
        if passive:
            raise SpeakerConfigError(
                f"session {session.name}: passive, but no IPv{session.family} node address to listen on"
            )
        return "auto"
    ip = ipaddress.ip_address(local)
    if ip.version != session.family:
        raise SpeakerConfigError(f"session {session.name}: local address is not IPv{session.family}")
    return str(ip)


def _hold_time(session: DesiredSession, settings: SpeakerSettings) -> int:
    hold = settings.hold_time if session.keepalive_time is None else 3 * session.keepalive_time
    return max(HOLD_TIME_MIN, min(hold, 65535))


def _md5(session: DesiredSession, where: str) -> str:
    assert session.password is not None
    key = session.password.reveal().encode()
    if not 1 <= len(key) <= MD5_KEY_MAX:
        # never print the key, only its length
        raise SpeakerConfigError(f"{where}: MD5 password must be 1..{MD5_KEY_MAX} bytes; got {len(key)}")
    return base64.b64encode(key).decode("ascii")


def _word(value: str, where: str) -> str:
    """A token ExaBGP's tokenizer reads back unchanged (no spaces, quotes, `;{}[],#`)."""
    if not _SAFE_WORD.fullmatch(value):
        raise SpeakerConfigError(f"{where}: cannot be written into ExaBGP's configuration; got {value!r}")
    return value


def environment() -> dict[str, str]:
    """ExaBGP's environment (it beats any ini file).

    Stay root (after a drop to `nobody` a reload cannot bind port 179 yet reports success); never DEBUG
    (it prints MD5 keys); no global listener (it ignores GTSM; passive sessions listen per neighbor); no
    CLI FIFOs. The API bridge is not respawned: a respawned bridge would get no replay of the state it
    missed. ExaBGP exits when it fails to write to a dead bridge (`api.terminate`), and bgpd stops an
    ExaBGP whose bridge went away in any case; its supervisor then starts a fresh pair and the caller
    replays its routes.

    Speed: `api.compact` lists unicast NLRI as plain strings (cheaper to encode there and to decode
    here); the per-neighbor `adj-rib-in false` keeps ExaBGP from caching what bgpd's RIB holds anyway.
    `reactor.speed` / 100 is how long ExaBGP's reactor waits in poll() when neither a peer nor a new
    API line woke it -- even with API routes still queued, of which it injects at most 50 per pass
    (reactor/asynchronous.py `LIMIT`). The default 10 ms left it idle between passes for much of a
    large announcement (a reflector's table to its clients: netns-lab/bench/reflect); REACTOR_SPEED
    makes it 5 ms: reflecting ~13% faster at no measurable idle cost. 2 ms was ~30% faster but cost
    2-5% more of a core on every idle node (500 wake-ups a second instead of 100). With the fast UPDATE
    paths (bgpd.speaker.fastupdate `unhurried`) the reactor no longer waits while routes are queued;
    the shorter wait still serves an ExaBGP that runs without them.
    """
    return {
        "exabgp.daemon.user": "root",
        "exabgp.daemon.drop": "false",
        "exabgp.daemon.daemonize": "false",
        "exabgp.api.ack": "true",
        "exabgp.api.cli": "false",
        "exabgp.api.respawn": "false",
        "exabgp.api.terminate": "true",
        "exabgp.api.encoder": "json",
        "exabgp.api.compact": "true",
        "exabgp.log.level": "INFO",
        "exabgp.log.processes": "false",  # a log line per route the API announces (a third of its time)
        "exabgp.log.statistics": "false",  # a log line per UPDATE received
        "exabgp.log.destination": "stdout",
        "exabgp.tcp.bind": "",
        "exabgp.reactor.speed": REACTOR_SPEED,
    }
