"""ExaBGP config rendering: golden files (regenerate with BGPD_UPDATE_GOLDEN=1) and ExaBGP's own parser."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bgpd.desired import DesiredNode, DesiredSession, Password
from bgpd.speaker.config import SpeakerConfigError, SpeakerSettings, environment, render_config

GOLDEN = Path(__file__).parent / "golden"
EXABGP = Path(sys.executable).parent / "exabgp"
SETTINGS = SpeakerSettings(
    bridge_command=("/usr/bin/python3", "-I", "-S", "/opt/bgpd/bgpd/speaker/bridge.py"),
    api_socket="/run/bgpd/exabgp/api.sock",
    node_ipv4="10.0.0.1", node_ipv6="fd00::1",
)


def session(**changes: object) -> DesiredSession:
    base = DesiredSession(
        name="Mesh_10_0_0_2", family=4, kind="Mesh", peer_ip="10.0.0.2", port=179, remote_as=64512,
        local_as=64512, ibgp=True, passive=False, rr_client=False, rr_cluster_id=None, password=None,
        ttl_security=None, max_restart_time=None, keepalive_time=None, source_address="10.0.0.1",
        next_hop="auto", allow_local_as=None, filters=(), reachable_by=None,
        origin=("BGPConfiguration/default",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def node(*sessions: DesiredSession, listen_port: int | None = None) -> DesiredNode:
    return DesiredNode(node="node-1", as_number=64512, router_id="10.0.0.1", listen_port=listen_port,
                       sessions=sessions)


CASES = {
    "mesh": node(
        session(),
        # the passive side of a mesh pair listens per neighbor on 179
        session(name="Mesh_10_0_0_3", peer_ip="10.0.0.3", passive=True, max_restart_time=300),
    ),
    "ebgp": node(session(name="Global_192_0_2_1", kind="Global", peer_ip="192.0.2.1", port=1179,
                         remote_as=65001, ibgp=False, source_address=None, keepalive_time=10)),
    "passive_listen_port": node(
        session(name="Node_10_0_0_9", kind="Node", peer_ip="10.0.0.9", passive=True), listen_port=1790,
    ),
    "md5": node(session(name="Node_10_0_0_5", kind="Node", peer_ip="10.0.0.5",
                        password=Password('s3cr3t "pa;ss} #word\\'))),
    "gtsm": node(
        # passive by Calico's rule, rendered active: ExaBGP's listener cannot do GTSM
        session(name="Global_10_0_1_1", kind="Global", peer_ip="10.0.1.1", remote_as=65010, ibgp=False,
                passive=True, ttl_security=2),
    ),
    "ipv6": node(
        session(name="Mesh_fd00__2", family=6, peer_ip="fd00::2", source_address="fd00::1"),
        session(name="Global_fd00__1_2", kind="Global", family=6, peer_ip="fd00::1:2", remote_as=65002,
                ibgp=False, source_address=None, passive=True),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    text = render_config(CASES[name], SETTINGS)
    path = GOLDEN / f"exabgp_{name}.conf"
    if os.environ.get("BGPD_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_exabgp_accepts_the_rendered_config(name: str, tmp_path: Path) -> None:
    conf = tmp_path / "exabgp.conf"
    conf.write_text(render_config(CASES[name], SETTINGS))
    env = {"PATH": os.environ.get("PATH", ""), **environment()}
    result = subprocess.run([str(EXABGP), "validate", str(conf)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_md5_is_base64_of_the_utf8_key_and_never_plain() -> None:
    text = render_config(CASES["md5"], SETTINGS)
    assert "s3cr3t" not in text
    assert 'md5-password "czNjcjN0ICJwYTtzc30gI3dvcmRc";' in text
    assert "md5-base64 true;" in text


def test_gtsm_session_is_active_with_ttl_255_out_and_min_ttl_in() -> None:
    text = render_config(CASES["gtsm"], SETTINGS)
    assert "passive false;" in text and "connect 179;" in text and "listen" not in text
    assert "incoming-ttl 254;" in text and "outgoing-ttl 255;" in text


def test_only_the_smaller_address_dials_another_calico_node_that_calico_has_dial_too() -> None:
    """ExaBGP at both ends of a collision closes both connections: one end must listen only."""
    higher = render_config(node(session(name="Node_10_0_0_2", kind="Node", peer_node="n2")), SETTINGS)
    assert "passive true;" in higher and "connect" not in higher
    lower = dataclasses.replace(SETTINGS, node_ipv4="10.0.0.3")
    text = render_config(node(session(name="Node_10_0_0_2", kind="Node", peer_node="n2",
                                      source_address=None)), lower)
    assert "passive false;" in text and "connect 179;" in text
    external = render_config(node(session(name="Node_10_0_0_2", kind="Node")), SETTINGS)
    assert "passive false;" in external  # a router that is no Calico node may wait for us


def test_no_source_address_uses_the_node_address_of_the_family_or_auto_when_active() -> None:
    text = render_config(CASES["ipv6"], SETTINGS)
    assert text.count("local-address fd00::1;") == 2
    bare = dataclasses.replace(SETTINGS, node_ipv4=None, router_id="10.0.0.1")
    active = node(session(source_address=None))
    assert "local-address auto;" in render_config(active, bare)
    with pytest.raises(SpeakerConfigError, match="passive, but no IPv4 node address"):
        render_config(node(session(source_address=None, passive=True)), bare)


@pytest.mark.parametrize(
    ("desired", "settings", "error"),
    [
        (node(session(password=Password("x" * 81))), SETTINGS,
         "session Mesh_10_0_0_2: MD5 password must be 1..80 bytes; got 81"),
        (node(session(ttl_security=0)), SETTINGS, "session Mesh_10_0_0_2: ttlSecurity must be 1..255; got 0"),
        (node(session(peer_ip="fd00::2")), SETTINGS, "session Mesh_10_0_0_2: peer IP is not IPv4"),
        (node(session(source_address="fd00::1")), SETTINGS,
         "session Mesh_10_0_0_2: local address is not IPv4"),
        (node(session(name="bad name")), SETTINGS, "session bad name: cannot be written"),
        (node(session()), dataclasses.replace(SETTINGS, bridge_command=("/a b/python",)),
         "bridge command: cannot be written"),
        (dataclasses.replace(node(session()), router_id=None),
         dataclasses.replace(SETTINGS, node_ipv4=None), "node node-1: no router id"),
    ],
)
def test_refused(desired: DesiredNode, settings: SpeakerSettings, error: str) -> None:
    with pytest.raises(SpeakerConfigError, match="^" + re.escape(error)) as info:
        render_config(desired, settings)
    assert "xxxx" not in str(info.value)


def test_environment_is_safe() -> None:
    env = environment()
    assert env["exabgp.log.level"] == "INFO"
    assert env["exabgp.daemon.user"] == "root" and env["exabgp.daemon.drop"] == "false"
    assert env["exabgp.tcp.bind"] == "" and env["exabgp.api.cli"] == "false"
    assert env["exabgp.api.ack"] == "true"
    assert env["exabgp.api.compact"] == "true"  # bare NLRI strings (the codec reads both forms)
    # no log line per route announced or UPDATE received
    assert env["exabgp.log.processes"] == env["exabgp.log.statistics"] == "false"


def test_exabgp_reactor_waits_a_few_milliseconds_per_idle_pass() -> None:
    """ExaBGP reads reactor.speed; its poll timeout (speed / 100 s, truncated to whole milliseconds)
    is shorter than the default 10 ms, which left it idle while API routes were still queued, but
    not 0 ms, which would make an idle ExaBGP spin."""
    env = {"PATH": os.environ.get("PATH", ""), **environment()}
    shown = subprocess.run([str(EXABGP), "env"], env=env, capture_output=True, text=True, timeout=60,
                           check=True)
    found = re.search(r"^speed = (\S+)$", shown.stdout.split("[exabgp.reactor]", 1)[1], re.MULTILINE)
    assert found is not None, shown.stdout
    assert 1 <= int(float(found[1]) / 100 * 1000) < 10
