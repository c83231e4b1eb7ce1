"""Calico's etcdv3 key layout (calico-semantics.md §4), both ways, as pure functions.

- v3 resources: ``/calico/resources/v3/projectcalico.org/<plural>/<name>``, the value the JSON of
  the whole resource with ``resourceVersion`` and ``selfLink`` cleared (etcd's ModRevision is the
  resource version clients see).
- Block affinities are IPAM keys, not v3 resources: ``/calico/ipam/v2/host/<node>/ipv4/block/<cidr
  with - for />`` (``virtual`` affinities under ``/calico/ipam/v2/virtual/``), the value
  ``{"state": "confirmed", "deleted": false}`` (empty counts as ``{}``). They are presented as
  ``BlockAffinity`` resources, as calicoctl does in etcd mode.

Secrets are not Calico resources and Calico keeps none in etcd; bgpd reads them (for BGP passwords)
from ``/calico/resources/v3/projectcalico.org/secrets/<namespace>/<name>``, the one namespaced kind.
"""

from __future__ import annotations

import json
from typing import Any

from bgpd.model.errors import ConfigError
from bgpd.model.loader import SourceDoc
from bgpd.store.writer import BY_KIND, CALICO_API, KINDS, Body

RESOURCES = "/calico/resources/v3/projectcalico.org/"
IPAM_HOST = "/calico/ipam/v2/host/"
IPAM_VIRTUAL = "/calico/ipam/v2/virtual/"
PREFIXES = (RESOURCES, IPAM_HOST, IPAM_VIRTUAL)
_KIND_OF_PLURAL = {info.plural: info.kind for info in KINDS if info.kind != "BlockAffinity"}
_CLEARED_META = ("resourceVersion", "selfLink")


def resource_key(kind: str, name: str, namespace: str | None = None) -> str:
    middle = f"{namespace}/" if kind == "Secret" else ""
    return f"{RESOURCES}{BY_KIND[kind].plural}/{middle}{name}"


def kind_prefix(kind: str) -> str:
    """The prefix that lists every resource of ``kind``."""
    if kind == "BlockAffinity":
        raise ValueError("block affinities live under two IPAM prefixes")
    return f"{RESOURCES}{BY_KIND[kind].plural}/"


def affinity_key(node: str, cidr: str, kind: str = "host") -> str:
    family = "ipv6" if ":" in cidr else "ipv4"
    base = IPAM_VIRTUAL if kind == "virtual" else IPAM_HOST
    return f"{base}{node}/{family}/block/{cidr.replace('/', '-')}"


def affinity_name(node: str, cidr: str) -> str:
    """A stable name for an affinity (Calico's KDD names: node and CIDR with ``.:/`` as ``-``)."""
    return f"{node}-" + cidr.replace(".", "-").replace(":", "-").replace("/", "-")


def encode(body: Body) -> bytes:
    """The etcd value of a v3 resource (or an affinity's IPAM value)."""
    if body.get("kind") == "BlockAffinity":
        spec = body.get("spec") or {}
        value: Any = {"state": spec.get("state", "confirmed"), "deleted": spec.get("deleted", False)}
    else:
        meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in _CLEARED_META}
        value = {**body, "metadata": meta}
    return json.dumps(value, separators=(",", ":"), sort_keys=False).encode()


def decode(key: str, value: bytes, mod_revision: int) -> SourceDoc | ConfigError | None:
    """The document a key holds, an error naming the key, or None for keys bgpd does not read."""
    if key.startswith(RESOURCES):
        return _resource(key, value, mod_revision)
    if key.startswith((IPAM_HOST, IPAM_VIRTUAL)):
        return _affinity(key, value, mod_revision)
    return None


def _resource(key: str, value: bytes, mod_revision: int) -> SourceDoc | ConfigError | None:
    plural, _, rest = key[len(RESOURCES):].partition("/")
    kind = _KIND_OF_PLURAL.get(plural)
    if kind is None:  # felixconfigurations, clusterinformations, ...: not bgpd's business
        return None
    name = rest.rpartition("/")[2]
    try:
        body = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        return ConfigError(key, 1, kind, name, "", f"value is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return ConfigError(key, 1, kind, name, "", "value must be a JSON object", type(body).__name__)
    if body.get("kind") != kind:
        return ConfigError(key, 1, kind, name, "kind", f"must be {kind!r} under {plural}/", body.get("kind"))
    meta = body.get("metadata")
    if isinstance(meta, dict):
        body["metadata"] = {**meta, "resourceVersion": str(mod_revision)}
    return SourceDoc(key, 1, body)


def _affinity(key: str, value: bytes, mod_revision: int) -> SourceDoc | ConfigError | None:
    base = IPAM_VIRTUAL if key.startswith(IPAM_VIRTUAL) else IPAM_HOST
    parts = key[len(base):].split("/")
    if len(parts) != 4 or parts[1] not in ("ipv4", "ipv6") or parts[2] != "block":
        return None  # e.g. a host's other IPAM keys
    node, _, _, block = parts
    address, _, length = block.rpartition("-")
    cidr = f"{address}/{length}"
    name = affinity_name(node, cidr)
    try:
        data = json.loads(value) if value.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        return ConfigError(key, 1, "BlockAffinity", name, "", f"value is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return ConfigError(key, 1, "BlockAffinity", name, "", "value must be a JSON object",
                           type(data).__name__)
    spec = {"node": node, "cidr": cidr, "type": "virtual" if base == IPAM_VIRTUAL else "host",
            "state": data.get("state", ""), "deleted": data.get("deleted", False)}
    body = {"apiVersion": CALICO_API, "kind": "BlockAffinity",
            "metadata": {"name": name, "resourceVersion": str(mod_revision)}, "spec": spec}
    return SourceDoc(key, 1, body)
