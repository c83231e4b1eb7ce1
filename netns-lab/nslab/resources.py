"""The lab's Calico datastore for bgpd nodes: one YAML directory shared by every bgpd node, like the
cluster-wide datastore a real deployment shares.

Documents come from the topology's ``resources`` list; a ``Node`` resource is generated for each bgpd node
the list does not describe itself (addresses from the node's first link, ``as`` and ``labels`` from the
node); prefixes a bgpd node ``announce``s become host ``BlockAffinity`` documents (an ``IPPool`` covering
them must be among the resources for bgpd to export them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .topology import NodeSpec, Topology

API = "projectcalico.org/v3"


def node_document(spec: NodeSpec, topology: Topology) -> dict[str, Any]:
    bgp: dict[str, Any] = {}
    for family, key in ((4, "ipv4Address"), (6, "ipv6Address")):
        addresses = topology.addresses(spec.name, family)
        if addresses:
            bgp[key] = addresses[0]
    if spec.asn is not None:
        bgp["asNumber"] = spec.asn
    meta: dict[str, Any] = {"name": spec.name}
    if spec.labels:
        meta["labels"] = dict(spec.labels)
    return {"apiVersion": API, "kind": "Node", "metadata": meta, "spec": {"bgp": bgp}}


def block_document(node: str, cidr: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "BlockAffinity",
            "metadata": {"name": block_name(node, cidr)},
            "spec": {"node": node, "cidr": cidr, "state": "confirmed", "deleted": "false"}}


def block_name(node: str, cidr: str) -> str:
    return f"{node}-{re.sub(r'[./:]', '-', cidr)}"


def initial_documents(topology: Topology) -> dict[str, list[Mapping[str, Any]]]:
    """File name -> documents for a fresh store."""
    described = {(d.get("kind"), (d.get("metadata") or {}).get("name")) for d in topology.resources}
    bgpd_nodes = [s for s in topology.nodes.values() if s.kind == "bgpd"]
    files: dict[str, list[Mapping[str, Any]]] = {}
    if topology.resources:
        files["00-topology.yaml"] = list(topology.resources)
    generated: list[Mapping[str, Any]] = [
        node_document(s, topology) for s in bgpd_nodes if ("Node", s.name) not in described
    ]
    if generated:
        files["10-nodes.yaml"] = generated
    for spec in bgpd_nodes:
        for cidr in spec.announce:
            files[f"20-block-{block_name(spec.name, cidr)}.yaml"] = [block_document(spec.name, cidr)]
    return files


def write_documents(directory: Path, name: str, documents: Iterable[Mapping[str, Any]]) -> None:
    """Replace one file atomically: a watcher never reads half a file (the temporary name is hidden)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.tmp"
    tmp.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(directory / name)
