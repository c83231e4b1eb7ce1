"""The GTSM nftables script (pure part); the lab test applies it in a namespace."""

from __future__ import annotations

from bgpd.desired import DesiredNode
from bgpd.speaker.gtsm import GtsmRule, gtsm_rules, render_ruleset
from tests.unit.test_speaker_config import session


def test_rules_from_desired_node() -> None:
    desired = DesiredNode(node="n", as_number=1, router_id="10.0.0.1", listen_port=1790, sessions=(
        session(ttl_security=1), session(name="Mesh_fd00__2", family=6, peer_ip="fd00::2", ttl_security=2),
        session(name="Mesh_10_0_0_3", peer_ip="10.0.0.3"),
    ))
    assert gtsm_rules(desired) == (GtsmRule("10.0.0.2", 4, 1790, 255), GtsmRule("fd00::2", 6, 1790, 254))


def test_ruleset_replaces_the_whole_table() -> None:
    script = render_ruleset([GtsmRule("10.0.0.2", 4, 179, 255), GtsmRule("fd00::2", 6, 179, 254)])
    assert script == (
        "table inet bgpd_gtsm\n"
        "delete table inet bgpd_gtsm\n"
        "table inet bgpd_gtsm {\n"
        "  chain input {\n"
        "    type filter hook input priority -10; policy accept;\n"
        "    ip saddr 10.0.0.2 tcp dport 179 ip ttl < 255 counter drop\n"
        "    ip6 saddr fd00::2 tcp dport 179 ip6 hoplimit < 254 counter drop\n"
        "  }\n"
        "}\n"
    )


def test_empty_ruleset_removes_the_table() -> None:
    assert render_ruleset([]) == "table inet bgpd_gtsm\ndelete table inet bgpd_gtsm\n"
