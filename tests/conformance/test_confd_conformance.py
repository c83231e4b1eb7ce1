"""Calico's own confd fixtures: bgpd must compute the sessions calico-node renders.

Each case of ``../shared/conformance/confd_cases.json`` is loaded with bgpd's loader, resolved for
its node, and compared field by field with what Calico rendered (README of that folder for the
format, calico-semantics.md §2 for the rules). Cases that cannot match for a reason a user would
accept are in XFAIL with that reason; they are asserted to still differ, so the list cannot rot.
"""

from __future__ import annotations

import hashlib
import json
import re
from ipaddress import ip_network
from typing import Any

import pytest

from bgpd.desired import DesiredNode, DesiredSession
from bgpd.model.loader import build_snapshot, parse_text
from bgpd.model.resources import BGPFilter
from bgpd.resolve import LocalWorkload, resolve
from tests.conftest import SHARED

CASES_FILE = SHARED / "conformance" / "confd_cases.json"
IGNORED_KINDS = frozenset({"Service", "EndpointSlice"})

# case id -> why bgpd cannot (and should not) match it.
XFAIL: dict[str, str] = {}


def _load_cases() -> list[dict[str, Any]]:
    if not CASES_FILE.exists():
        return []
    cases: list[dict[str, Any]] = json.loads(CASES_FILE.read_text())
    return cases


CASES = _load_cases()


def _repair(resource: dict[str, Any]) -> dict[str, Any]:
    """Undo one artefact of the fixture extraction: an unquoted community ``5663:12`` in Calico's
    YAML was read as a YAML 1.1 sexagesimal integer (339792) when the JSON was made; Calico (Go)
    kept the string. Put the string back so the case tests what Calico tested."""
    if resource.get("kind") != "BGPConfiguration":
        return resource
    fixed = json.loads(json.dumps(resource))
    for adv in fixed.get("spec", {}).get("prefixAdvertisements") or []:
        adv["communities"] = [f"{c // 60}:{c % 60}" if isinstance(c, int) else c
                              for c in adv.get("communities", [])]
    return fixed


def _resolve(case: dict[str, Any]) -> tuple[DesiredNode, list[str]]:
    text = "\n---\n".join(json.dumps(_repair(r)) for r in case["resources"])
    docs, errors = parse_text(text, f"{case['id']}.yaml")
    snapshot = build_snapshot(docs, ignore_kinds=IGNORED_KINDS)
    records = case.get("extra_inputs", {}).get("endpoint_status_files", {})
    workloads = [LocalWorkload(name, r["bgpPeerName"], tuple(r.get("ipv4Nets") or ()),
                               tuple(r.get("ipv6Nets") or ()))
                 for name, r in sorted(records.items())]
    desired = resolve(snapshot, case["node_name"], case.get("env") or {}, local_workloads=workloads)
    return desired, [str(e) for e in [*errors, *snapshot.errors]]


def _filter_function(name: str, direction: str, family: int) -> str:
    """Calico's BIRD function name for one filter, direction and family (calico-semantics §2.6)."""
    if len(name) > 45:
        name = name[:28] + "_" + hashlib.sha256(name.encode()).hexdigest()[:16].upper()
    return f"bgp_{name}_{direction}FilterV{family}"


def _filter_calls(session: DesiredSession, filters: dict[str, BGPFilter], direction: str) -> list[str]:
    calls = []
    for name in session.filters:
        f = filters[name]
        rules = getattr(f, f"{direction}_v{session.family}")
        if rules:
            calls.append(_filter_function(name, direction, session.family))
    return calls


def _session_diffs(ours: DesiredSession, want: dict[str, Any], filters: dict[str, BGPFilter]) -> list[str]:
    ttl = want["multihop"] if want["ttl_security"] else None
    next_hop = "self" if want["next_hop_self"] else "keep" if want["next_hop_keep"] else "auto"
    expected = {
        "family": want["family"], "kind": want["kind"], "peer_ip": want["neighbor_ip"],
        "port": want["port"] or 179, "remote_as": want["remote_as"], "local_as": want["local_as"],
        "ibgp": want["ibgp"], "source_address": want["source_address"], "ttl_security": ttl,
        "passive": want["passive"], "max_restart_time": want["graceful_restart_time"],
        "keepalive_time": want["keepalive_time"], "rr_client": want["rr_client"],
        "rr_cluster_id": want["rr_cluster_id"], "password": want["password"], "next_hop": next_hop,
        "allow_local_as": want["allow_local_as"],
        "import": [c["function"] for c in want["import"]["bgp_filters"]],
        "export": [c["function"] for c in want["export"]["bgp_filters"]],
    }
    got = {
        "family": ours.family, "kind": ours.kind, "peer_ip": ours.peer_ip, "port": ours.port,
        "remote_as": ours.remote_as, "local_as": ours.local_as, "ibgp": ours.ibgp,
        "source_address": ours.source_address, "ttl_security": ours.ttl_security,
        "passive": ours.passive, "max_restart_time": ours.max_restart_time,
        "keepalive_time": ours.keepalive_time, "rr_client": ours.rr_client,
        "rr_cluster_id": ours.rr_cluster_id,
        "password": ours.password.reveal() if ours.password else None, "next_hop": ours.next_hop,
        "allow_local_as": ours.allow_local_as,
        "import": _filter_calls(ours, filters, "import"), "export": _filter_calls(ours, filters, "export"),
    }
    if want["local_as_override"] is not None:  # Calico's explicit `local as` is the effective one
        expected["local_as_override"], got["local_as_override"] = want["local_as_override"], ours.local_as
    return [f"{ours.name} {k}: got {got[k]!r}, want {v!r}" for k, v in expected.items() if got[k] != v]


_COMMUNITY = re.compile(r"bgp_(?:large_)?community\.add\(\(([^)]*)\)\)")


def _family_diffs(desired: DesiredNode, family: int, want: dict[str, Any]) -> list[str]:
    diffs: list[str] = []
    export = want["export"]

    def check(what: str, got: object, expected: object) -> None:
        if got != expected:
            diffs.append(f"IPv{family} {what}: got {got!r}, want {expected!r}")

    def of_family(nets: Any) -> set[str]:
        return {str(n) for n in nets if n.version == family}

    check("blocks", of_family(desired.export_policy.blocks), {b["cidr"] for b in export["blocks"]})
    check("blackholes", of_family(desired.blackholes),
          {b["cidr"] for b in export["blocks"] if b["blackhole_route"]})
    rejected = [ip_network(c) for c in export["pool_reject"]]
    exported_blocks = {b["cidr"] for b in export["blocks"]
                       if not any(ip_network(b["cidr"]).subnet_of(r) for r in rejected)}
    services = of_family(desired.export_policy.service_cidrs)
    exported = {str(e.prefix) for e in desired.exports if e.prefix.version == family}
    check("exported blocks", exported - services, exported_blocks)
    # Per-service /32 and /128 routes come from Kubernetes Services, which bgpd does not read.
    check("service CIDRs", services, {c for c in export["static_routes"]
                                       if ip_network(c).prefixlen not in (32, 128)})
    check("reachableBy routes", [r.to_json() for r in desired.static_routes if r.dst.version == family],
          [{"dst": r["dest"], "via": r["via"]} for r in export["peer_static_routes"]])
    for entry in export["communities"]:
        values = {m.replace(", ", ":") for m in _COMMUNITY.findall(" ".join(entry["add"]))}
        for e in desired.exports:
            if e.prefix.version == family and e.prefix.subnet_of(ip_network(entry["cidr"])):
                check(f"communities of {e.prefix}", set(e.communities), values)
    check("router id", desired.router_id, want["router_id"])
    check("listen port", desired.listen_port, (want["listen"] or {}).get("port"))
    return diffs


def differences(case: dict[str, Any]) -> tuple[list[str], list[str]]:
    desired, load_errors = _resolve(case)
    expected = case["expected"]
    if "ipv4_peering_count" in expected:
        count = sum(1 for s in desired.sessions if s.family == 4)
        wanted = expected["ipv4_peering_count"]
        return ([] if count == wanted else [f"IPv4 session count: got {count}, want {wanted}"]), load_errors
    filters = dict(desired.filters)
    ours = {s.name: s for s in desired.sessions}
    want = {p["name"]: p for p in expected["peerings"]}
    diffs = [f"missing session {n}" for n in sorted(want.keys() - ours.keys())]
    diffs += [f"unexpected session {n}" for n in sorted(ours.keys() - want.keys())]
    for name in sorted(ours.keys() & want.keys()):
        diffs += _session_diffs(ours[name], want[name], filters)
    for family in (4, 6):
        diffs += _family_diffs(desired, family, expected[f"ipv{family}"])
    return diffs, load_errors


if not CASES:
    def test_conformance_skipped() -> None:
        pytest.skip(f"CONFORMANCE SKIPPED: {CASES_FILE} not found (set BGPD_SHARED to the shared folder)")
else:
    @pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
    def test_confd_case(case: dict[str, Any]) -> None:
        diffs, load_errors = differences(case)
        if case["id"] in XFAIL:
            assert diffs, f"{case['id']} now matches Calico: remove it from XFAIL ({XFAIL[case['id']]})"
            return
        assert not diffs, "\n".join([*diffs, "load errors:", *load_errors])

    def test_xfail_names_real_cases() -> None:
        assert set(XFAIL) <= {c["id"] for c in CASES}
