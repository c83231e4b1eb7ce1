"""Per-kind validation: a decoded document -> one frozen resource (calico-semantics.md §1).

Each ``_kind`` function reads ``spec`` through a `DocReader`, which records every problem; the
resource is built only when the whole document had none. Fields that Calico accepts but bgpd does
not use (e.g. Node VXLAN addresses, IPPool ``natOutgoing``) are accepted and dropped.

BGPConfiguration names other than ``default`` and ``node.<name>`` are valid, as in Calico, and have
no effect (confd ignores them); ``bgpd check`` notes them. A ``node.<name>`` instance may not set the
default-only fields (Calico's ValidateDefaultOnlyFields).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from bgpd.model import values as v
from bgpd.model.reader import DocReader, parse_selector
from bgpd.model.resources import (
    BGPConfiguration,
    BGPFilter,
    BGPPeer,
    BlockAffinity,
    CalicoNodeStatus,
    Community,
    FilterOperation,
    FilterRule,
    IPPool,
    Meta,
    Node,
    NodeBGP,
    Origin,
    PrefixAdvertisement,
    PrefixLength,
    Resource,
    Secret,
    SecretKeyRef,
)

CALICO_API = "projectcalico.org/v3"
PRIORITY_MAX = 2147483646
INT32_MAX = 2147483647

_META_FIELDS = frozenset({
    "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "creationTimestamp",
    "generation", "managedFields", "ownerReferences", "finalizers", "selfLink", "generateName",
    "deletionTimestamp", "deletionGracePeriodSeconds",
})


def parse(r: DocReader, body: dict[str, Any]) -> Resource | None:
    """Validate the envelope (apiVersion, kind, metadata), then the kind's own fields."""
    kind = body.get("kind")
    if kind is None:
        r.error("kind", "required field is missing")
        return None
    spec_parser = _KINDS.get(kind) if isinstance(kind, str) else None
    if spec_parser is None or not isinstance(kind, str):
        r.error("kind", "unsupported kind; expected one of " + ", ".join(sorted(_KINDS)), kind)
        return None
    api = "v1" if kind == "Secret" else CALICO_API
    if body.get("apiVersion") != api:
        r.error("apiVersion", f"must be {api!r}", body.get("apiVersion"))
    top = _TOP_FIELDS.get(kind, frozenset({"apiVersion", "kind", "metadata", "spec"}))
    found = r.fields(body, "", top)
    meta = _meta(r, found.get("metadata"), namespaced=kind == "Secret")
    resource = spec_parser(r, meta, found)
    return resource if not r.errors else None


def _meta(r: DocReader, raw: Any, namespaced: bool) -> Meta:
    if raw is None:
        r.error("metadata", "required field is missing")
    found = r.fields(raw, "metadata", _META_FIELDS) if raw is not None else {}
    name = r.required(found, "name", "metadata", v.name) if isinstance(raw, dict) else None
    namespace = found.get("namespace")
    if namespace is not None and namespace != "":
        if not namespaced:
            r.error("metadata.namespace", "must not be set: this kind is cluster-scoped", namespace)
        else:
            r.value("metadata.namespace", namespace, v.name)
    if "annotations" in found:
        r.mapping(found["annotations"], "metadata.annotations")
    labels = _labels(r, found.get("labels"), "metadata.labels")
    return Meta(name or "", labels, namespace or None, Origin(r.source, r.doc))


def _labels(r: DocReader, raw: Any, path: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, value in (r.mapping(raw, path) if raw is not None else {}).items():
        text_key = r.value(path, key, lambda k: v.label_key(v.label_text(k)))
        if text_key is None:
            continue
        text = r.value(f"{path}.{text_key}", value, lambda x: v.label_value(v.label_text(x)))
        if text is not None:
            labels[text_key] = text
    return labels


def _spec(r: DocReader, top: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return r.fields(top.get("spec"), "spec", known)


def _opt(r: DocReader, found: dict[str, Any], key: str, parse: Callable[[Any], Any],
         path: str = "spec") -> Any:
    """The parsed value of an optional field (None when unset or invalid); untyped for brevity."""
    return r.optional(found, key, path, parse)


def _enum(*choices: str) -> Callable[[Any], str]:
    return lambda raw: v.one_of(raw, choices)


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    return lambda raw: v.expect_int(raw, lo, hi)


def _secret_ref(r: DocReader, raw: Any, path: str) -> SecretKeyRef | None:
    outer = r.fields(raw, path, frozenset({"secretKeyRef"}))
    if "secretKeyRef" not in outer:
        if isinstance(raw, dict):
            r.error(f"{path}.secretKeyRef", "required field is missing")
        return None
    path += ".secretKeyRef"
    ref = r.fields(outer["secretKeyRef"], path, frozenset({"name", "key", "optional"}))
    if not isinstance(outer["secretKeyRef"], dict):
        return None
    name = r.required(ref, "name", path, v.name)
    key = r.required(ref, "key", path, v.secret_key)
    r.optional(ref, "optional", path, v.expect_bool)
    return SecretKeyRef(name, key) if name is not None and key is not None else None


# ---------------------------------------------------------------- Node

_NODE_SPEC = frozenset({"bgp", "ipv4VXLANTunnelAddr", "ipv6VXLANTunnelAddr", "vxlanTunnelMACAddr",
                        "vxlanTunnelMACAddrV6", "orchRefs", "wireguard", "addresses"})
_NODE_BGP = frozenset({"ipv4Address", "ipv6Address", "asNumber", "routeReflectorClusterID",
                       "ipv4IPIPTunnelAddr"})


def _node(r: DocReader, meta: Meta, top: dict[str, Any]) -> Node:
    spec = _spec(r, top, _NODE_SPEC)
    if "status" in top:
        r.mapping(top["status"], "status")
    if "bgp" not in spec:
        return Node(meta)
    bgp = r.fields(spec["bgp"], "spec.bgp", _NODE_BGP)
    if isinstance(spec["bgp"], dict) and not bgp:
        r.error("spec.bgp", "must not be empty when present; omit it for a node without BGP")
    p = "spec.bgp"
    cluster_id = _opt(r, bgp, "routeReflectorClusterID", _cluster_id, p)
    return Node(meta, NodeBGP(
        ipv4_address=_opt(r, bgp, "ipv4Address", v.interface_v4, p),
        ipv6_address=_opt(r, bgp, "ipv6Address", v.interface_v6, p),
        as_number=_opt(r, bgp, "asNumber", v.as_number, p),
        route_reflector_cluster_id=cluster_id or None,
        ipv4_ipip_tunnel_addr=_opt(r, bgp, "ipv4IPIPTunnelAddr", v.ipv4_dotted, p),
    ))


def _cluster_id(raw: Any) -> str:
    """An IPv4 dotted quad; empty means "not a route reflector"."""
    return str(v.ipv4_dotted(raw)) if v.expect_str(raw) else ""


# ---------------------------------------------------------------- BGPConfiguration

_BGPCONFIG_SPEC = frozenset({
    "logSeverityScreen", "nodeToNodeMeshEnabled", "asNumber", "serviceClusterIPs", "serviceExternalIPs",
    "serviceLoadBalancerIPs", "serviceLoadBalancerAggregation", "communities", "prefixAdvertisements",
    "listenPort", "nodeMeshPassword", "nodeMeshMaxRestartTime", "bindMode", "ignoredInterfaces",
    "localWorkloadPeeringIPV4", "localWorkloadPeeringIPV6", "programClusterRoutes",
    "ipv4NormalRoutePriority", "ipv6NormalRoutePriority",
})
# ValidateDefaultOnlyFields: a node.<name> instance may not set these.
_DEFAULT_ONLY = ("nodeToNodeMeshEnabled", "asNumber", "serviceLoadBalancerIPs", "serviceExternalIPs",
                 "serviceClusterIPs", "nodeMeshPassword", "nodeMeshMaxRestartTime")
_LOG_SEVERITIES = ("trace", "debug", "info", "warning", "error", "fatal", "")


def _log_severity(raw: Any) -> str:
    if v.expect_str(raw).lower() not in _LOG_SEVERITIES:
        raise ValueError("must be one of Trace, Debug, Info, Warning, Error, Fatal")
    return str(raw)


def _bgp_configuration(r: DocReader, meta: Meta, top: dict[str, Any]) -> BGPConfiguration:
    spec = _spec(r, top, _BGPCONFIG_SPEC)
    if meta.name.startswith("node."):
        for key in _DEFAULT_ONLY:
            if key in spec:
                r.error(f"spec.{key}", "may be set only in BGPConfiguration 'default', not per node")
    if spec.get("nodeToNodeMeshEnabled") is False:
        for key in ("nodeMeshPassword", "nodeMeshMaxRestartTime"):
            if key in spec:
                r.error(f"spec.{key}", "cannot be set when nodeToNodeMeshEnabled is false")
    communities = tuple(_communities(r, spec.get("communities", [])))
    adverts = _prefix_advertisements(r, spec, {c.name for c in communities})
    if communities and not adverts:
        r.error("spec.communities", "needs prefixAdvertisements that use them")
    return BGPConfiguration(
        meta,
        log_severity_screen=_opt(r, spec, "logSeverityScreen", _log_severity),
        node_to_node_mesh_enabled=_opt(r, spec, "nodeToNodeMeshEnabled", v.expect_bool),
        as_number=_opt(r, spec, "asNumber", v.as_number),
        service_cluster_ips=_service_cidrs(r, spec, "serviceClusterIPs"),
        service_external_ips=_service_cidrs(r, spec, "serviceExternalIPs"),
        service_load_balancer_ips=_service_cidrs(r, spec, "serviceLoadBalancerIPs"),
        service_load_balancer_aggregation=_opt(r, spec, "serviceLoadBalancerAggregation",
                                               _enum("Enabled", "Disabled")),
        communities=communities,
        prefix_advertisements=adverts,
        listen_port=_opt(r, spec, "listenPort", _int(1, v.UINT16_MAX)),
        node_mesh_password=_secret_ref(r, spec["nodeMeshPassword"], "spec.nodeMeshPassword")
        if "nodeMeshPassword" in spec else None,
        node_mesh_max_restart_time=_opt(r, spec, "nodeMeshMaxRestartTime", v.duration),
        bind_mode=_opt(r, spec, "bindMode", _enum("None", "NodeIP")),
        ignored_interfaces=tuple(
            glob for path, raw in r.items(spec.get("ignoredInterfaces", []), "spec.ignoredInterfaces")
            if (glob := r.value(path, raw, lambda x: v.interface_glob(x, allow_star=False))) is not None),
        local_workload_peering_ipv4=_opt(r, spec, "localWorkloadPeeringIPV4", v.ipv4_dotted),
        local_workload_peering_ipv6=_opt(r, spec, "localWorkloadPeeringIPV6", v.ipv6),
        program_cluster_routes=_opt(r, spec, "programClusterRoutes", _enum(
            "Enabled", "Disabled", "EnabledIPIPOnly", "EnabledNoEncapOnly")),
        ipv4_normal_route_priority=_opt(r, spec, "ipv4NormalRoutePriority", _int(1, PRIORITY_MAX)),
        ipv6_normal_route_priority=_opt(r, spec, "ipv6NormalRoutePriority", _int(1, PRIORITY_MAX)),
    )


def _service_cidrs(r: DocReader, spec: dict[str, Any], key: str) -> tuple[Any, ...]:
    cidrs = []
    for path, raw in r.items(spec.get(key, []), f"spec.{key}"):
        entry = r.fields(raw, path, frozenset({"cidr"}))
        if entry.get("cidr", "") != "":  # Calico ignores empty entries
            cidr = r.value(f"{path}.cidr", entry["cidr"], v.cidr)
            if cidr is not None:
                cidrs.append(cidr)
    return tuple(cidrs)


def _communities(r: DocReader, raw: Any) -> list[Community]:
    found = []
    for path, item in r.items(raw, "spec.communities", max_items=500):
        entry = r.fields(item, path, frozenset({"name", "value"}))
        name = r.required(entry, "name", path, v.name)
        value = r.required(entry, "value", path, v.community)
        if name is not None and value is not None:
            found.append(Community(name, value))
    return found


def _prefix_advertisements(r: DocReader, spec: dict[str, Any], names: set[str]
                           ) -> tuple[PrefixAdvertisement, ...] | None:
    if "prefixAdvertisements" not in spec:
        return None
    adverts = []

    def community_or_name(raw: Any) -> str:
        text = v.expect_str(raw)
        if text in names:
            return text
        try:
            return v.community(text)
        except ValueError:
            raise ValueError("must be 'aa:nn', 'aa:nn:mm' or the name of an entry of spec.communities"
                             ) from None

    for path, item in r.items(spec["prefixAdvertisements"], "spec.prefixAdvertisements", max_items=500):
        entry = r.fields(item, path, frozenset({"cidr", "communities"}))
        cidr = r.required(entry, "cidr", path, v.cidr)
        if "communities" not in entry:
            r.error(f"{path}.communities", "required field is missing")
        communities = [c for cpath, craw in r.items(entry.get("communities", []), f"{path}.communities",
                                                    max_items=50)
                       if (c := r.value(cpath, craw, community_or_name)) is not None]
        if cidr is not None:
            adverts.append(PrefixAdvertisement(cidr, tuple(communities)))
    return tuple(adverts)


# ---------------------------------------------------------------- BGPPeer

_BGPPEER_SPEC = frozenset({
    "node", "nodeSelector", "peerIP", "asNumber", "peerSelector", "keepOriginalNextHop", "nextHopMode",
    "password", "sourceAddress", "maxRestartTime", "numAllowedLocalASNumbers", "ttlSecurity",
    "reachableBy", "filters", "localWorkloadSelector", "localASNumber", "reversePeering", "keepaliveTime",
})


def _bgp_peer(r: DocReader, meta: Meta, top: dict[str, Any]) -> BGPPeer:
    spec = _spec(r, top, _BGPPEER_SPEC)
    peer_ip = _opt(r, spec, "peerIP", v.peer_ip)
    as_number = _opt(r, spec, "asNumber", v.as_number)
    _peer_rules(r, spec, as_number)
    reachable_by = _opt(r, spec, "reachableBy", v.ip)
    if reachable_by is not None and peer_ip is not None and reachable_by.version != peer_ip.ip.version:
        r.error("spec.reachableBy", f"must be an IPv{peer_ip.ip.version} address like peerIP",
                spec["reachableBy"])
    return BGPPeer(
        meta,
        node=_opt(r, spec, "node", v.name),
        node_selector=_opt(r, spec, "nodeSelector", parse_selector),
        peer_ip=peer_ip,
        as_number=as_number,
        peer_selector=_opt(r, spec, "peerSelector", parse_selector),
        keep_original_next_hop=bool(_opt(r, spec, "keepOriginalNextHop", v.expect_bool)),
        next_hop_mode=_opt(r, spec, "nextHopMode", _enum("Auto", "Self", "Keep")),
        password=_secret_ref(r, spec["password"], "spec.password") if "password" in spec else None,
        source_address=_opt(r, spec, "sourceAddress", _enum("UseNodeIP", "None")) or "UseNodeIP",
        max_restart_time=_opt(r, spec, "maxRestartTime", v.duration),
        num_allowed_local_as_numbers=_opt(r, spec, "numAllowedLocalASNumbers", _int(0, INT32_MAX)),
        ttl_security=_opt(r, spec, "ttlSecurity", _int(0, 255)),
        reachable_by=reachable_by,
        filters=tuple(f for path, raw in r.items(spec.get("filters", []), "spec.filters")
                      if (f := r.value(path, raw, v.name)) is not None),
        local_workload_selector=_opt(r, spec, "localWorkloadSelector", parse_selector),
        local_as_number=_opt(r, spec, "localASNumber", v.as_number),
        reverse_peering=_opt(r, spec, "reversePeering", _enum("Auto", "Manual")),
        keepalive_time=_opt(r, spec, "keepaliveTime", v.duration),
    )


def _peer_rules(r: DocReader, spec: dict[str, Any], as_number: int | None) -> None:
    """The cross-field rules (CEL in Calico HEAD, Go before); each is reported on the later field."""
    def both(a: str, b: str, problem: str) -> None:
        if a in spec and b in spec:
            r.error(f"spec.{b}", problem, spec[b])

    both("node", "nodeSelector", "cannot be set together with node")
    both("peerIP", "peerSelector", "cannot be set together with peerIP")
    both("peerIP", "localWorkloadSelector", "cannot be set together with peerIP")
    both("peerSelector", "localWorkloadSelector", "cannot be set together with peerSelector")
    if "peerSelector" in spec and as_number:
        r.error("spec.asNumber", "must be unset or 0 when peerSelector is set: "
                "the remote AS is each selected node's own", spec["asNumber"])
    if "localWorkloadSelector" in spec and not as_number and "asNumber" not in spec:
        r.error("spec.asNumber", "required when localWorkloadSelector is set")
    elif "localWorkloadSelector" in spec and as_number == 0:
        r.error("spec.asNumber", "must not be 0 when localWorkloadSelector is set", spec["asNumber"])
    if "reachableBy" in spec and "peerIP" not in spec:
        r.error("spec.reachableBy", "needs peerIP", spec["reachableBy"])
    if spec.get("keepOriginalNextHop") is True and "nextHopMode" in spec:
        r.error("spec.nextHopMode", "cannot be set together with keepOriginalNextHop: true",
                spec["nextHopMode"])


# ---------------------------------------------------------------- BGPFilter

_FILTER_LISTS = (("exportV4", 4), ("importV4", 4), ("exportV6", 6), ("importV6", 6))
_RULE_FIELDS = frozenset({"action", "cidr", "matchOperator", "prefixLength", "source", "interface",
                          "peerType", "communities", "asPathPrefix", "priority", "operations"})
_MATCH_OPERATORS = ("Equal", "NotEqual", "In", "NotIn")


def _bgp_filter(r: DocReader, meta: Meta, top: dict[str, Any]) -> BGPFilter:
    spec = _spec(r, top, frozenset(key for key, _ in _FILTER_LISTS))
    rules = {}
    for key, version in _FILTER_LISTS:
        found = [_rule(r, path, raw, version) for path, raw in r.items(spec.get(key, []), f"spec.{key}")]
        rules[key] = tuple(rule for rule in found if rule is not None)
    return BGPFilter(meta, export_v4=rules["exportV4"], import_v4=rules["importV4"],
                     export_v6=rules["exportV6"], import_v6=rules["importV6"])


def _rule(r: DocReader, path: str, raw: Any, version: int) -> FilterRule | None:
    rule = r.fields(raw, path, _RULE_FIELDS)
    action = r.required(rule, "action", path, _enum("Accept", "Reject"))
    max_length = 32 if version == 4 else 128
    if ("cidr" in rule) != ("matchOperator" in rule):
        missing = "matchOperator" if "cidr" in rule else "cidr"
        r.error(f"{path}.{missing}", "cidr and matchOperator must be set together")
    cidr = _opt(r, rule, "cidr", lambda x: v.cidr(x, version), path)
    if "prefixLength" in rule and "cidr" not in rule:
        r.error(f"{path}.prefixLength", "needs cidr")
    operations = tuple(op for op_path, op_raw in r.items(rule.get("operations", []), f"{path}.operations",
                                                          max_items=10)
                       if (op := _operation(r, op_path, op_raw)) is not None)
    if "operations" in rule and action == "Reject":
        r.error(f"{path}.operations", "allowed only with action Accept")
    if "operations" in rule and not rule["operations"]:
        r.error(f"{path}.operations", "must have 1..10 entries when set")
    if action is None:
        return None
    return FilterRule(
        action,  # type: ignore[arg-type]
        match_operator=_opt(r, rule, "matchOperator", _enum(*_MATCH_OPERATORS), path),
        cidr=cidr,
        prefix_length=_prefix_length(r, rule, f"{path}.prefixLength", max_length),
        source=_opt(r, rule, "source", _enum("RemotePeers"), path),
        interface=_opt(r, rule, "interface", v.interface_glob, path),
        peer_type=_opt(r, rule, "peerType", _enum("eBGP", "iBGP"), path),
        community=_rule_community(r, rule, path),
        as_path_prefix=_as_path(r, rule.get("asPathPrefix", []), f"{path}.asPathPrefix"),
        priority=_opt(r, rule, "priority", _int(1, PRIORITY_MAX), path),
        operations=operations,
    )


def _prefix_length(r: DocReader, rule: dict[str, Any], path: str, max_length: int) -> PrefixLength | None:
    if "prefixLength" not in rule:
        return None
    found = r.fields(rule["prefixLength"], path, frozenset({"min", "max"}))
    low = _opt(r, found, "min", _int(0, max_length), path)
    high = _opt(r, found, "max", _int(0, max_length), path)
    if low is not None and high is not None and low > high:
        r.error(f"{path}.min", f"must not be greater than max ({high})", low)
    return PrefixLength(low, high)


def _rule_community(r: DocReader, rule: dict[str, Any], path: str) -> str | None:
    if "communities" not in rule:
        return None
    found = r.fields(rule["communities"], f"{path}.communities", frozenset({"values"}))
    if "values" not in found:
        r.error(f"{path}.communities.values", "required field is missing")
    values = [c for cpath, raw in r.items(found.get("values", []), f"{path}.communities.values")
              if (c := r.value(cpath, raw, v.community)) is not None]
    if isinstance(found.get("values"), list) and len(found["values"]) != 1:
        r.error(f"{path}.communities.values", "must have exactly one entry", found["values"])
    return values[0] if values else None


def _as_path(r: DocReader, raw: Any, path: str, max_items: int | None = None) -> tuple[int, ...]:
    return tuple(n for item_path, item in r.items(raw, path, max_items)
                 if (n := r.value(item_path, item, v.as_number)) is not None)


def _operation(r: DocReader, path: str, raw: Any) -> FilterOperation | None:
    op = r.fields(raw, path, frozenset({"addCommunity", "prependASPath", "setPriority"}))
    if len(op) != 1:
        r.error(path, "must set exactly one of addCommunity, prependASPath, setPriority")
        return None
    key, body = next(iter(op.items()))
    if key == "addCommunity":
        found = r.fields(body, f"{path}.addCommunity", frozenset({"value"}))
        value = r.required(found, "value", f"{path}.addCommunity", v.community)
        return FilterOperation(add_community=value) if value is not None else None
    if key == "prependASPath":
        found = r.fields(body, f"{path}.prependASPath", frozenset({"prefix"}))
        prefix = _as_path(r, found.get("prefix", []), f"{path}.prependASPath.prefix", max_items=10)
        if not found.get("prefix"):
            r.error(f"{path}.prependASPath.prefix", "must have 1..10 AS numbers")
        return FilterOperation(prepend_as_path=prefix)
    found = r.fields(body, f"{path}.setPriority", frozenset({"value"}))
    priority = r.required(found, "value", f"{path}.setPriority", _int(1, PRIORITY_MAX))
    return FilterOperation(set_priority=priority)


# ---------------------------------------------------------------- IPPool, BlockAffinity

_IPPOOL_SPEC = frozenset({"cidr", "ipipMode", "vxlanMode", "natOutgoing", "disabled", "disableBGPExport",
                          "blockSize", "nodeSelector", "namespaceSelector", "allowedUses", "assignmentMode",
                          "awsSubnetID", "ipip", "nat-outgoing"})
_ENCAP = ("Never", "Always", "CrossSubnet")


def _ip_pool(r: DocReader, meta: Meta, top: dict[str, Any]) -> IPPool | None:
    spec = _spec(r, top, _IPPOOL_SPEC)
    cidr = r.required(spec, "cidr", "spec", v.cidr)
    if cidr is not None and cidr.overlaps(v.cidr("169.254.0.0/16" if cidr.version == 4 else "fe80::/10")):
        r.error("spec.cidr", "must not overlap the link-local range", spec["cidr"])
    ipip = _opt(r, spec, "ipipMode", _enum(*_ENCAP, "")) or "Never"
    vxlan = _opt(r, spec, "vxlanMode", _enum(*_ENCAP, "")) or "Never"
    if ipip != "Never" and vxlan != "Never":
        r.error("spec.vxlanMode", "IPIP and VXLAN cannot both be enabled", vxlan)
    if ipip != "Never" and cidr is not None and cidr.version == 6:
        r.error("spec.ipipMode", "IPv6 pools cannot use IPIP", ipip)
    lo, hi = (20, 32) if cidr is None or cidr.version == 4 else (116, 128)
    uses = tuple(u for path, raw in r.items(spec.get("allowedUses", []), "spec.allowedUses")
                 if (u := r.value(path, raw, _enum("Workload", "Tunnel", "LoadBalancer"))) is not None)
    for key in ("natOutgoing", "disabled", "disableBGPExport"):
        _opt(r, spec, key, v.expect_bool)
    if "LoadBalancer" in uses:
        _load_balancer_pool_rules(r, spec, ipip, vxlan)
    if cidr is None:
        return None
    return IPPool(
        meta, cidr, ipip_mode=ipip, vxlan_mode=vxlan,  # type: ignore[arg-type]
        disable_bgp_export=spec.get("disableBGPExport") is True,
        disabled=spec.get("disabled") is True,
        block_size=_opt(r, spec, "blockSize", _int(lo, hi)),
        node_selector=_opt(r, spec, "nodeSelector", parse_selector),
        allowed_uses=uses,
    )


def _load_balancer_pool_rules(r: DocReader, spec: dict[str, Any], ipip: str, vxlan: str) -> None:
    if spec.get("disableBGPExport") is True:
        r.error("spec.disableBGPExport", "a LoadBalancer pool cannot disable BGP export", True)
    if ipip != "Never" or vxlan != "Never":
        r.error("spec.allowedUses", "a LoadBalancer pool cannot use IPIP or VXLAN")
    if spec.get("nodeSelector", "all()") != "all()":
        r.error("spec.nodeSelector", "a LoadBalancer pool must have nodeSelector 'all()'",
                spec["nodeSelector"])


def _deleted(raw: Any) -> bool:
    """``deleted`` is a boolean in v3, but the KDD CRD stores the string "true"/"false"."""
    if isinstance(raw, str) and raw in ("true", "false"):
        return raw == "true"
    return v.expect_bool(raw)


def _block_affinity(r: DocReader, meta: Meta, top: dict[str, Any]) -> BlockAffinity | None:
    spec = _spec(r, top, frozenset({"node", "cidr", "type", "state", "deleted"}))
    node = r.required(spec, "node", "spec", v.name)
    cidr = r.required(spec, "cidr", "spec", v.cidr)
    kind = _opt(r, spec, "type", _enum("host", "virtual")) or "host"
    state = _opt(r, spec, "state", _enum("", "confirmed", "pending", "pendingDeletion")) or ""
    deleted = bool(_opt(r, spec, "deleted", _deleted))
    if node is None or cidr is None:
        return None
    return BlockAffinity(meta, node, cidr, type=kind, state=state, deleted=deleted)  # type: ignore[arg-type]


# ---------------------------------------------------------------- CalicoNodeStatus, Secret


def _node_status(r: DocReader, meta: Meta, top: dict[str, Any]) -> CalicoNodeStatus | None:
    spec = _spec(r, top, frozenset({"node", "classes", "updatePeriodSeconds"}))
    if "status" in top:
        r.mapping(top["status"], "status")
    node = r.required(spec, "node", "spec", v.name)
    period = r.required(spec, "updatePeriodSeconds", "spec", _int(0, 86400))
    classes: list[str] = []
    for path, raw in r.items(spec.get("classes", []), "spec.classes"):
        name = r.value(path, raw, _enum("Agent", "BGP", "Routes"))
        if name in classes:
            r.error(path, "duplicate class", name)
        elif name is not None:
            classes.append(name)
    if node is None or period is None:
        return None
    return CalicoNodeStatus(meta, node, tuple(classes), period)  # type: ignore[arg-type]


def _secret(r: DocReader, meta: Meta, top: dict[str, Any]) -> Secret:
    """``data`` (base64) merged with ``stringData`` (which wins, as in Kubernetes). Values never
    appear in errors."""
    data: dict[str, str] = {}
    for field, decode in (("data", _base64_text), ("stringData", v.expect_str)):
        for key, raw in (r.mapping(top[field], field) if top.get(field) is not None else {}).items():
            path = f"{field}.{key}"
            if r.value(path, key, v.secret_key) is None:
                continue
            text = r.value(path, raw, decode, show=False)
            if text is not None:
                data[key] = text
    _opt(r, top, "type", v.expect_str, "")
    _opt(r, top, "immutable", v.expect_bool, "")
    return Secret(meta, data)


def _base64_text(raw: Any) -> str:
    try:
        return base64.b64decode(v.expect_str(raw), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("must be base64 of UTF-8 text") from None


_TOP_FIELDS = {
    "Node": frozenset({"apiVersion", "kind", "metadata", "spec", "status"}),
    "CalicoNodeStatus": frozenset({"apiVersion", "kind", "metadata", "spec", "status"}),
    "Secret": frozenset({"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"}),
}
_KINDS: dict[str, Callable[[DocReader, Meta, dict[str, Any]], Resource | None]] = {
    "Node": _node,
    "BGPConfiguration": _bgp_configuration,
    "BGPPeer": _bgp_peer,
    "BGPFilter": _bgp_filter,
    "IPPool": _ip_pool,
    "BlockAffinity": _block_affinity,
    "CalicoNodeStatus": _node_status,
    "Secret": _secret,
}
