"""encode_outbound: the RIB's announcements as few ExaBGP API commands as possible."""

from __future__ import annotations

from bgpd.bgp import PathAttributes
from bgpd.reconciler import MAX_NLRI_PER_COMMAND, encode_outbound
from bgpd.rib import Announce, Outbound, Withdraw

IPS = {"c1": "10.0.0.11", "c2": "10.0.0.12", "c3": "10.0.0.13"}
REFLECTED = PathAttributes("10.0.9.1", originator_id="10.0.9.1", cluster_list=("10.0.0.1",))


def test_clients_getting_the_same_routes_share_one_command_per_chunk() -> None:
    prefixes = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(MAX_NLRI_PER_COMMAND + 1)]
    # equal, not identical, attributes: the RIB rewrites per target
    out = [Announce(peer, p, PathAttributes("10.0.9.1", originator_id="10.0.9.1", cluster_list=("10.0.0.1",)))
           for peer in ("c1", "c2") for p in prefixes]
    commands = encode_outbound(out, IPS.__getitem__)
    assert len(commands) == 2
    assert all(c.startswith("neighbor 10.0.0.11 , neighbor 10.0.0.12 announce attributes ") for c in commands)
    assert commands[1].endswith(f"nlri {prefixes[-1]}")


def test_different_prefixes_or_attributes_stay_apart_and_withdraws_come_first() -> None:
    out: list[Outbound] = [Announce("c1", "10.1.0.0/24", REFLECTED), Announce("c2", "10.1.0.0/24", REFLECTED),
                           Announce("c2", "10.2.0.0/24", REFLECTED),
                           Announce("c3", "10.1.0.0/24", PathAttributes("10.0.9.2")),
                           Withdraw("c1", "10.3.0.0/24")]
    commands = encode_outbound(out, IPS.__getitem__)
    assert commands[0] == "neighbor 10.0.0.11 withdraw route 10.3.0.0/24"
    assert [c.split(" announce ")[0] for c in commands[1:]] == [
        "neighbor 10.0.0.11", "neighbor 10.0.0.12", "neighbor 10.0.0.13"]
    assert commands[2].endswith("nlri 10.1.0.0/24 10.2.0.0/24")
