"""KernelFib against a real kernel, in a throwaway namespace (root).

The namespace holds a veth pair with 10.200.0.1/24 and fd00:200::1/64 on v0, so gateways in those
subnets resolve; everything else is unreachable. Checks read the kernel back through `ip -j`,
independently of KernelFib.dump().
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from bgpd.kernel import FibChange, Route
from bgpd.kernel.fib import KernelFib
from bgpd.rib.fib import fib_grouped

pytestmark = pytest.mark.lab

GW1, GW2, GW3 = "10.200.0.2", "10.200.0.3", "10.200.0.4"
GW6A, GW6B = "fd00:200::2", "fd00:200::3"


def ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"bgk-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip(name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for dev in ("lo", "v0", "v1"):
            ip(name, "link", "set", dev, "up")
        ip(name, "addr", "add", "10.200.0.1/24", "dev", "v0")
        ip(name, "-6", "addr", "add", "fd00:200::1/64", "dev", "v0", "nodad")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def fib(ns: str) -> Iterator[KernelFib]:
    with KernelFib(254, 44, ns) as f:
        yield f


def kernel_routes(ns: str, *, proto: str | None = None, table: str = "all") -> list[dict[str, Any]]:
    """Every route in the namespace (both families), as iproute2 reports it."""
    out: list[dict[str, Any]] = []
    for family in ("-4", "-6"):
        args = [family, "-j", "route", "show", "table", table]
        out += json.loads(ip(ns, *args, *(["proto", proto] if proto else [])) or "[]")
    return out


def gateways(route: dict[str, Any]) -> tuple[str, ...]:
    if "gateway" in route:
        return (route["gateway"],)
    return tuple(hop["gateway"] for hop in route.get("nexthops", []))


def ours(ns: str) -> dict[str, tuple[str, ...] | str]:
    """Our routes per iproute2: prefix -> gateways, or 'blackhole'."""
    found: dict[str, tuple[str, ...] | str] = {}
    for r in kernel_routes(ns, proto="44"):
        dst = r["dst"] if "/" in r["dst"] else r["dst"] + ("/128" if ":" in r["dst"] else "/32")
        assert dst not in found, f"two routes of ours for {dst}: {kernel_routes(ns)}"
        assert r.get("metric") == 44, r
        found[dst] = "blackhole" if r.get("type") == "blackhole" else gateways(r)
    return found


def test_install_replace_delete_unicast_v4_v6(ns: str, fib: KernelFib) -> None:
    result = fib.apply([FibChange(("10.1.0.0/24",), (GW1,)), FibChange(("fd01::/64",), (GW6A,)),
                        FibChange(("10.1.1.1/32",), (GW1,))])
    assert result.ok, result
    assert ours(ns) == {"10.1.0.0/24": (GW1,), "fd01::/64": (GW6A,), "10.1.1.1/32": (GW1,)}
    assert fib.apply([FibChange(("10.1.0.0/24",), (GW2,)), FibChange(("fd01::/64",), (GW6B,))]).ok
    assert ours(ns) == {"10.1.0.0/24": (GW2,), "fd01::/64": (GW6B,), "10.1.1.1/32": (GW1,)}
    assert fib.apply([FibChange(("10.1.0.0/24",), None), FibChange(("fd01::/64",), None)]).ok
    assert ours(ns) == {"10.1.1.1/32": (GW1,)}
    assert fib.dump() == {"10.1.1.1/32": Route("10.1.1.1/32", (GW1,))}


def test_ecmp_and_its_replacement_both_ways(ns: str, fib: KernelFib) -> None:
    assert fib.apply([FibChange(("10.2.0.0/16",), (GW1, GW2, GW3)), FibChange(("fd02::/48",), (GW6A, GW6B)),
                      FibChange(("10.3.0.0/16",), (GW1,))]).ok
    assert ours(ns) == {"10.2.0.0/16": (GW1, GW2, GW3), "fd02::/48": (GW6A, GW6B), "10.3.0.0/16": (GW1,)}
    assert fib.apply([FibChange(("10.2.0.0/16",), (GW2,)), FibChange(("fd02::/48",), (GW6B,)),
                      FibChange(("10.3.0.0/16",), (GW1, GW3))]).ok
    assert ours(ns) == {"10.2.0.0/16": (GW2,), "fd02::/48": (GW6B,), "10.3.0.0/16": (GW1, GW3)}
    assert fib.dump()["10.3.0.0/16"] == Route("10.3.0.0/16", (GW1, GW3))


def test_blackholes_and_unicast_replacing_each_other(ns: str, fib: KernelFib) -> None:
    assert fib.apply([FibChange(("10.244.1.0/26",), (), "blackhole"),
                      FibChange(("fd10::/122",), (), "blackhole"), FibChange(("10.5.0.0/24",), (GW1,))]).ok
    assert ours(ns) == {"10.244.1.0/26": "blackhole", "fd10::/122": "blackhole", "10.5.0.0/24": (GW1,)}
    assert fib.apply([FibChange(("10.5.0.0/24",), (), "blackhole"), FibChange(("10.244.1.0/26",), (GW2,))]).ok
    assert ours(ns) == {"10.244.1.0/26": (GW2,), "fd10::/122": "blackhole", "10.5.0.0/24": "blackhole"}
    assert fib.dump()["fd10::/122"] == Route("fd10::/122", (), "blackhole")
    assert fib.apply([FibChange(("fd10::/122",), None), FibChange(("10.5.0.0/24",), None)]).ok
    assert ours(ns) == {"10.244.1.0/26": (GW2,)}


def test_errors_are_reported_per_prefix_and_the_rest_installed(ns: str, fib: KernelFib) -> None:
    result = fib.apply([FibChange(("10.6.0.0/24",), (GW1,)), FibChange(("10.6.1.0/24",), ("10.99.0.1",)),
                        FibChange(("fd06::/64",), ("fd99::1",)), FibChange(("10.6.2.1/24",), (GW1,)),
                        FibChange(("nonsense",), (GW1,)), FibChange(("10.6.3.0/24",), (GW2,)),
                        FibChange(("10.77.0.0/24",), None)])  # deleting what is not there is fine
    assert set(result.errors) == {"10.6.1.0/24", "fd06::/64", "10.6.2.1/24", "nonsense"}, result
    assert result.errors["10.6.1.0/24"] == "ENETUNREACH: Nexthop has invalid gateway"
    assert result.errors["10.6.2.1/24"].startswith("EINVAL: ")
    assert not result.overrun
    assert ours(ns) == {"10.6.0.0/24": (GW1,), "10.6.3.0/24": (GW2,)}


def test_errors_map_to_their_prefixes_across_many_chunks(ns: str, fib: KernelFib) -> None:
    n = 3 * KernelFib.CHUNK + 17  # several chunks: the pipelined sender path
    bad = {5, KernelFib.CHUNK, 2 * KernelFib.CHUNK + 3, n - 1}
    prefixes = [f"20.{i >> 8}.{i & 255}.0/24" for i in range(n)]
    # as the RIB groups them: runs of prefixes sharing next hops, the bad ones inside large changes
    changes = fib_grouped((p, ("10.99.0.1",) if i in bad else (GW1,), "unicast")
                          for i, p in enumerate(prefixes))
    assert max(len(c.prefixes) for c in changes) > KernelFib.CHUNK
    result = fib.apply(changes)
    assert set(result.errors) == {prefixes[i] for i in bad}
    assert len(fib.dump()) == n - len(bad)


def test_adoption_then_sweep_keeps_only_what_is_wanted(ns: str) -> None:
    with KernelFib(254, 44, ns) as before:
        assert before.apply([FibChange(("10.8.0.0/24",), (GW1,)), FibChange(("10.8.1.0/24",), (GW1, GW2)),
                             FibChange(("fd08::/64",), (GW6A,)),
                             FibChange(("10.8.2.0/24",), (), "blackhole")]).ok
    with KernelFib(254, 44, ns) as after:  # a restarted daemon adopts what is there
        assert after.dump() == {
            "10.8.0.0/24": Route("10.8.0.0/24", (GW1,)), "10.8.1.0/24": Route("10.8.1.0/24", (GW1, GW2)),
            "fd08::/64": Route("fd08::/64", (GW6A,)), "10.8.2.0/24": Route("10.8.2.0/24", (), "blackhole")}
        result = after.sweep({"10.8.1.0/24", "FD08:0::/64"})
        assert result.ok and result.sent == 2
    assert ours(ns) == {"10.8.1.0/24": (GW1, GW2), "fd08::/64": (GW6A,)}


def test_sweep_removes_our_routes_left_under_an_old_metric(ns: str) -> None:
    with KernelFib(254, 44, ns, metric=50) as old:
        assert old.apply([FibChange(("10.9.0.0/24",), (GW1,))]).ok
    with KernelFib(254, 44, ns) as fib:
        assert fib.apply([FibChange(("10.9.0.0/24",), (GW2,))]).ok
        assert len(kernel_routes(ns, proto="44")) == 2
        assert fib.sweep({"10.9.0.0/24"}).ok
    assert ours(ns) == {"10.9.0.0/24": (GW2,)}


def test_routes_of_other_protocols_are_never_touched(ns: str, fib: KernelFib) -> None:
    # BIRD (proto 12) holds the same prefixes in our table (its default metric 32) and in another.
    for args in (["10.10.0.0/24", "via", GW3, "metric", "32"], ["10.10.0.0/24", "via", GW3, "table", "100"],
                 ["10.11.0.0/24", "via", GW3], ["fd11::/64", "via", GW6B, "metric", "32"]):
        ip(ns, "route", "add", *args, "proto", "bird")
    bird_before = sorted(map(json.dumps, kernel_routes(ns, proto="bird")))
    assert len(bird_before) == 4
    assert fib.dump() == {}
    assert fib.apply([FibChange(("10.10.0.0/24",), (GW1,)), FibChange(("fd11::/64",), (GW6A,))]).ok
    assert fib.apply([FibChange(("10.10.0.0/24",), (GW2, GW1)),
                      FibChange(("fd11::/64",), (), "blackhole")]).ok
    assert set(fib.dump()) == {"10.10.0.0/24", "fd11::/64"}
    assert fib.apply([FibChange(("10.10.0.0/24",), None), FibChange(("fd11::/64",), None),
                      FibChange(("10.11.0.0/24",), None)]).ok
    assert fib.sweep(set()).ok
    assert sorted(map(json.dumps, kernel_routes(ns, proto="bird"))) == bird_before
    assert ours(ns) == {}


def test_another_table(ns: str) -> None:
    with KernelFib(1000, 44, ns) as fib:
        assert fib.apply([FibChange(("10.12.0.0/24",), (GW1,)), FibChange(("fd12::/64",), (GW6A,))]).ok
        assert set(fib.dump()) == {"10.12.0.0/24", "fd12::/64"}
    assert {r["dst"] for r in kernel_routes(ns, table="1000", proto="44")} == {"10.12.0.0/24", "fd12::/64"}
    with KernelFib(254, 44, ns) as main:
        assert main.dump() == {}


def test_ten_thousand_routes_in_one_batch(ns: str, fib: KernelFib) -> None:
    v4 = [FibChange((f"30.{i >> 8}.{i & 255}.0/24",), (GW1,) if i % 2 else (GW1, GW2)) for i in range(4000)]
    v4.append(FibChange(tuple(f"31.{i >> 8}.{i & 255}.0/24" for i in range(5000)), (GW1, GW2)))
    v6 = [FibChange(tuple(f"fd30:{i:x}:1::/64" for i in range(1000)), (GW6A,))]
    result = fib.apply(v4 + v6)
    assert result.ok, list(result.errors.items())[:5]
    assert fib.dump() == {p: Route(p, c.nexthops or ()) for c in v4 + v6 for p in c.prefixes}
    assert len(kernel_routes(ns, proto="44")) == 10_000
    # one delete for both families at once
    assert fib.apply([FibChange(tuple(p for c in v4 + v6 for p in c.prefixes), None)]).ok
    assert fib.dump() == {}


def test_lost_error_replies_are_reported_as_overrun(ns: str, fib: KernelFib) -> None:
    # A receive buffer far too small for one chunk of failures makes the kernel drop replies.
    fib._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    changes = [FibChange((f"40.0.{i}.0/24",), ("10.99.0.1",)) for i in range(200)]
    result = fib.apply(changes)
    assert result.overrun and not result.ok
    assert 0 < len(result.errors) < len(changes)
    assert fib.dump() == {}


def ip_netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True).stdout


def test_a_missing_namespace_is_an_error_not_created() -> None:
    name = f"bgk-{secrets.token_hex(3)}"
    with pytest.raises(OSError):
        KernelFib(254, 44, name)
    assert name not in ip_netns_list()
