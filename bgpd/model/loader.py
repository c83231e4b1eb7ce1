"""Parse YAML/JSON text into documents, and documents into validated resources and a Snapshot.

Every problem of every document is collected (never the first only) as a `ConfigError`; a document
with any problem is left out of the Snapshot. Document numbers count the resources of one source in
order, from 1: each YAML document is one number, and each item of a ``kind: List`` or
``kind: <Kind>List`` (as ``calicoctl get -o yaml`` prints), or of a top-level JSON array, takes its
own number.

YAML is read with YAML 1.1 rules, as calicoctl does, so an unquoted ``yes`` label value becomes the
label string ``"true"`` (calico-semantics.md §1.1) -- but without YAML 1.1's base-60 integers, so an
unquoted community ``65000:10`` stays the string it looks like.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from bgpd.model import kinds, yamltext
from bgpd.model.errors import ConfigError
from bgpd.model.reader import DocReader
from bgpd.model.resources import Resource, Secret
from bgpd.model.snapshot import DEFAULT_SECRET_NAMESPACE, Snapshot
from bgpd.model.values import type_name

MAX_PASSWORD_BYTES = 80  # Linux TCP_MD5SIG_MAXKEYLEN


@dataclass(frozen=True)
class SourceDoc:
    """One parsed YAML/JSON document: where it came from and its decoded body."""

    source: str
    doc: int
    body: Any


# ---------------------------------------------------------------- text -> documents

def parse_text(text: str, source: str) -> tuple[list[SourceDoc], list[ConfigError]]:
    """Split multi-document YAML (or JSON) text into documents; a syntax error ends the source."""
    bodies: list[Any] = []
    errors: list[ConfigError] = []
    if text.lstrip()[:1] in ("{", "["):
        try:
            decoded = json.loads(text)
            if not yamltext.too_deep(decoded):  # else YAML reports where it is too deep
                return _number(decoded if isinstance(decoded, list) else [decoded], source), errors
        except (ValueError, RecursionError):
            pass  # not JSON after all (e.g. a YAML flow mapping); YAML reports any real error
    try:
        for body in yamltext.load_all(text):
            bodies.append(body)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        docs = _number(bodies, source)
        errors.append(ConfigError(source, len(docs) + 1, "", "", "", f"YAML syntax error{where}: {problem}"))
        return docs, errors
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. an unhashable mapping key
        docs = _number(bodies, source)
        errors.append(ConfigError(source, len(docs) + 1, "", "", "", f"YAML error: {exc}"))
        return docs, errors
    return _number(bodies, source), errors


def _number(bodies: list[Any], source: str) -> list[SourceDoc]:
    """Number the resources of one source from 1, flattening list items in place: ``kind: List``
    (kubectl) and ``kind: BGPPeerList`` etc. (what ``calicoctl get -o yaml`` prints)."""
    docs: list[SourceDoc] = []
    for body in bodies:
        if body is None:
            continue
        kind = body.get("kind") if isinstance(body, dict) else None
        items = body.get("items") if isinstance(kind, str) and kind.endswith("List") else None
        for item in items if isinstance(items, list) else [body]:
            docs.append(SourceDoc(source, len(docs) + 1, item))
    return docs


# ---------------------------------------------------------------- document -> resource


def parse_resource(doc: SourceDoc) -> tuple[Resource | None, list[ConfigError]]:
    """Validate one document; returns the resource only when it has no problem at all."""
    body = doc.body
    if not isinstance(body, dict):
        error = ConfigError(doc.source, doc.doc, "", "", "",
                            f"a resource must be an object, not {type_name(body)}", body)
        return None, [error]
    kind = body.get("kind")
    meta = body.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    reader = DocReader(doc.source, doc.doc, kind if isinstance(kind, str) else "",
                       name if isinstance(name, str) else "")
    resource = kinds.parse(reader, body)
    if reader.errors:
        return None, reader.errors
    return resource, []


# ---------------------------------------------------------------- documents -> snapshot

_SNAPSHOT_FIELD = {
    "Node": "nodes", "BGPConfiguration": "bgp_configurations", "BGPPeer": "bgp_peers",
    "BGPFilter": "bgp_filters", "IPPool": "ip_pools", "BlockAffinity": "block_affinities",
    "Secret": "secrets", "CalicoNodeStatus": "node_statuses",
}


def build_snapshot(
    docs: Iterable[SourceDoc],
    revision: str = "",
    secret_namespace: str = DEFAULT_SECRET_NAMESPACE,
    ignore_kinds: frozenset[str] = frozenset(),
) -> Snapshot:
    """Validate every document; valid ones go into the Snapshot, every problem into ``errors``.

    Duplicates (same kind and name; Secrets: same namespace and name): the first in source order
    wins and the later one is reported. A Secret without a namespace lands in ``secret_namespace``.
    """
    tables: dict[str, dict[Any, Any]] = {attr: {} for attr in _SNAPSHOT_FIELD.values()}
    errors: list[ConfigError] = []
    seen: dict[tuple[str, str, str], SourceDoc] = {}
    for doc in docs:
        kind, name, namespace = _identity(doc.body, secret_namespace)
        if kind in ignore_kinds:
            continue
        if kind and name:  # duplicates by the names as written, valid or not: the first one wins
            first = seen.setdefault((kind, name, namespace), doc)
            if first is not doc:
                problem = f"duplicate {kind} name; first defined at {first.source}:{first.doc}"
                errors.append(ConfigError(doc.source, doc.doc, kind, name, "metadata.name", problem))
                continue
        resource, problems = parse_resource(doc)
        errors.extend(problems)
        if resource is not None:
            key = (namespace, name) if isinstance(resource, Secret) else name
            tables[_SNAPSHOT_FIELD[kind]][key] = resource
    errors.extend(_drop_long_passwords(tables, secret_namespace))
    return Snapshot(**tables, revision=revision, errors=tuple(errors), secret_namespace=secret_namespace)


def _identity(body: Any, secret_namespace: str) -> tuple[str, str, str]:
    """(kind, name, namespace) as written; empty strings where absent or not text."""
    if not isinstance(body, dict):
        return "", "", ""
    meta = body.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    kind, name, namespace = body.get("kind"), meta.get("name"), meta.get("namespace")
    kind = kind if isinstance(kind, str) else ""
    namespace = namespace if isinstance(namespace, str) and namespace else secret_namespace
    return kind, name if isinstance(name, str) else "", namespace if kind == "Secret" else ""


def _drop_long_passwords(tables: dict[str, dict[Any, Any]], namespace: str) -> list[ConfigError]:
    """A password the kernel cannot take (> 80 bytes) invalidates the resource that uses it."""
    secrets = tables["secrets"]
    errors: list[ConfigError] = []
    for attr, ref_field, path in (("bgp_peers", "password", "spec.password.secretKeyRef"),
                                  ("bgp_configurations", "node_mesh_password",
                                   "spec.nodeMeshPassword.secretKeyRef")):
        table = tables[attr]
        for name, resource in list(table.items()):
            ref = getattr(resource, ref_field)
            secret = secrets.get((namespace, ref.name)) if ref is not None else None
            password = secret.data.get(ref.key) if secret is not None else None
            size = len(password.encode()) if password is not None else 0
            if size > MAX_PASSWORD_BYTES:
                origin = resource.meta.origin
                errors.append(ConfigError(
                    origin.source, origin.doc, type(resource).__name__, name, path,
                    f"password in Secret {namespace}/{ref.name} key {ref.key!r} is {size} bytes; "
                    f"TCP-MD5 allows at most {MAX_PASSWORD_BYTES}"))
                del table[name]
    return errors
