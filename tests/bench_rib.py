"""Micro-benchmark of the RIB (not a test): N prefixes from one eBGP session into the RIB.

Usage: .venv/bin/python tests/bench_rib.py [N ...]   (default: 100000 1000000)

Then the converge bench's case (section "converge path"): one ToR, UPDATEs of 1,000 prefixes sharing
one attribute set, with 0 and 10 established mesh peers, and packing the kernel's netlink messages.

Prefixes arrive as ExaBGP delivers them: UPDATEs of 100 NLRI sharing one attribute object, with
1,000 distinct attribute sets in all. A second, iBGP session is established so every route also goes
through the export decision (a Calico node with a ToR and a mesh peer). Reports CPU µs per prefix
(process time, so other load on the machine skews it less than wall time) for insert, withdraw,
a graceful restart of the ToR (a quarter of its routes re-sent as before, a quarter with other
attributes, then the End-of-RIB sweep of the rest) and bgpd's own restart (every route adopted from
the kernel, then re-learned: half with the adopted next hop, half with another), and the memory the
RIB holds (RSS growth, and tracemalloc's count at the smaller sizes), prefix strings included.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from ipaddress import ip_network

from bgpd.bgp import PathAttributes
from bgpd.desired import ExportPolicy
from bgpd.kernel.codec import RouteCodec
from bgpd.rib import LocalInfo, PeerInfo, Rib, fib_size

BATCH = 100
DISTINCT_ATTRS = 1000


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def prefixes(n: int) -> list[str]:
    return [f"{11 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24" for i in range(n)]


def build() -> Rib:
    local = LocalInfo(as_number=64512, router_id="10.0.0.1",
                      export_policy=ExportPolicy(pools=(ip_network("10.244.0.0/16"),)))
    rib = Rib(local)
    rib.peer_up(PeerInfo("tor", "10.0.1.1", 65001, 64512, ibgp=False, router_id="10.0.1.1",
                         gr_restart_time=120.0, max_prefixes=None, local_address="10.0.0.1"))
    rib.peer_up(PeerInfo("Mesh_10_0_0_2", "10.0.0.2", 64512, 64512, ibgp=True, router_id="10.0.0.2"))
    return rib


def insert(rib: Rib, names: list[str], attrs: list[PathAttributes]) -> int:
    installed = 0
    for k, start in enumerate(range(0, len(names), BATCH)):
        installed += fib_size(rib.update("tor", names[start:start + BATCH], attrs[k % DISTINCT_ATTRS]).fib)
    return installed


def adopted_relearn(n: int, attrs: list[PathAttributes]) -> tuple[float, int]:
    """bgpd restarted: the kernel's routes adopted, then the ToR's table again (CPU s, kernel writes).
    The first half of the adopted routes has the next hop the ToR sends, the rest an older one."""
    names = prefixes(n)
    hops = {name: (attrs[(i // BATCH) % DISTINCT_ATTRS].next_hop,) for i, name in enumerate(names[: n // 2])}
    hops.update(dict.fromkeys(names[n // 2:], ("10.0.1.254",)))
    rib = build()
    rib.adopt(hops, 60.0)
    t0 = time.process_time()
    written = insert(rib, names, attrs)
    return time.process_time() - t0, written


def memory(n: int, attrs: list[PathAttributes]) -> float:
    """tracemalloc's count of what the RIB holds after the insert (slow: separate pass)."""
    gc.collect()
    tracemalloc.start()
    rib = build()
    insert(rib, prefixes(n), attrs)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / 2**20


def run(n: int, trace: bool) -> None:
    attrs = [PathAttributes(f"10.0.1.{1 + i % 200}", as_path=(65001, i)) for i in range(DISTINCT_ATTRS)]
    gc.collect()
    rss0 = rss_mib()
    names = prefixes(n)  # counted: in the daemon the RIB owns the prefix strings the decoder made
    rib = build()
    t0 = time.process_time()
    installed = insert(rib, names, attrs)
    t_insert = time.process_time() - t0
    gc.collect()
    rss1 = rss_mib()
    assert installed == n == rib.installed

    t0 = time.process_time()
    stale = rib.peer_down("tor", 0.0, graceful=True)
    t_down = time.process_time() - t0
    rib.peer_up(rib.best(names[0])[0])  # type: ignore[index,arg-type]
    quarter = n // 4
    t0 = time.process_time()
    for k, start in enumerate(range(0, quarter, BATCH)):  # as before the restart: nothing changes
        assert not rib.update("tor", names[start:start + BATCH], attrs[k % DISTINCT_ATTRS])
    t_refresh = time.process_time() - t0
    t0 = time.process_time()
    for start in range(quarter, n // 2, BATCH):  # the second quarter comes back with other attributes
        rib.update("tor", names[start:start + BATCH], attrs[0])
    t_changed = time.process_time() - t0
    t0 = time.process_time()
    swept = rib.end_of_rib("tor", "ipv4 unicast")
    t_eor = time.process_time() - t0
    assert not stale.fib and fib_size(swept.fib) == n - n // 2
    t0 = time.process_time()
    for start in range(0, n // 2, BATCH):
        rib.withdraw("tor", names[start:start + BATCH])
    t_withdraw = time.process_time() - t0
    assert rib.installed == 0
    del rib, names
    t_adopted, written = adopted_relearn(n, attrs)
    assert written == n - n // 2  # only the routes whose next hop changed are written again
    traced = memory(n, attrs) if trace else None

    us = 1e6
    print(f"N={n:>9,}  insert {t_insert:6.2f} s = {t_insert / n * us:5.2f} µs/prefix"
          f"  | RSS +{rss1 - rss0:6.1f} MiB = {(rss1 - rss0) * 2**20 / n:5.0f} B/prefix"
          + (f"  (tracemalloc {traced:6.1f} MiB)" if traced is not None else ""))
    half, rest = n // 2, n - n // 2
    print(f"{'':13}graceful down {t_down:5.2f} s; refresh {t_refresh / quarter * us:5.2f},"
          f" with other attributes {t_changed / (half - quarter) * us:5.2f} µs/prefix;"
          f" EoR sweep {t_eor / rest * us:5.2f} µs/prefix; withdraw {t_withdraw / half * us:5.2f} µs/prefix")
    print(f"{'':13}own restart: adopted then re-learned {t_adopted / n * us:5.2f} µs/prefix")


def converge_path(n: int, mesh_peers: int) -> None:
    """The converge bench's case (one ToR, UPDATEs of 1,000 prefixes with one attribute set) on a node
    with ``mesh_peers`` established iBGP mesh peers, plus packing the kernel's netlink messages."""
    local = LocalInfo(as_number=64512, router_id="10.0.0.1",
                      export_policy=ExportPolicy(pools=(ip_network("10.244.0.0/16"),)))
    rib = Rib(local)
    rib.peer_up(PeerInfo("tor", "10.0.1.1", 65001, 64512, ibgp=False, router_id="10.0.1.1",
                         max_prefixes=None, local_address="10.0.0.1"))
    for m in range(mesh_peers):
        rib.peer_up(PeerInfo(f"Mesh_10_0_2_{m + 1}", f"10.0.2.{m + 1}", 64512, 64512, ibgp=True,
                             router_id=f"10.0.2.{m + 1}"))
    attrs = PathAttributes("10.0.1.1", as_path=(65001,))
    updates = [tuple(u) for u in (prefixes(n)[s:s + 1000] for s in range(0, n, 1000))]
    codec = RouteCodec()
    t0 = time.process_time()
    diffs = [rib.update("tor", u, attrs) for u in updates]
    t_rib = time.process_time() - t0
    t0 = time.process_time()
    for d in diffs:
        codec.encode(d.fib, 1)
    t_pack = time.process_time() - t0
    t0 = time.process_time()
    for u in updates[: len(updates) // 2]:
        rib.withdraw("tor", u)
    t_withdraw = time.process_time() - t0
    t0 = time.process_time()
    rib.peer_down("tor", 0.0, graceful=False)
    t_down = time.process_time() - t0
    us, half = 1e6, len(updates) // 2 * 1000
    print(f"N={n:>9,}  {mesh_peers:2} mesh peers: RIB update {t_rib / n * us:5.2f},"
          f" pack {t_pack / n * us:5.2f},"
          f" withdraw {t_withdraw / half * us:5.2f}, session loss {t_down / (n - half) * us:5.2f} µs/prefix")


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]
    print(f"python {sys.version.split()[0]}, {BATCH} prefixes per UPDATE, {DISTINCT_ATTRS} attribute sets")
    for n in sizes:
        run(n, trace=n <= 100_000)
    print("converge path: one ToR, 1,000 prefixes per UPDATE, one attribute set")
    for n in sizes:
        for mesh_peers in (0, 10):
            converge_path(n, mesh_peers)


if __name__ == "__main__":
    main()
