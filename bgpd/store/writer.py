"""What every store writer shares: kind names, validation before writing, merge patch, labels.

A writer (`writer_yamldir.DirWriter`, `writer_etcd.EtcdWriter`) never writes a resource the loader
rejects: every body is validated by `bgpd.model.loader.parse_resource` first, and `Invalid` carries
every problem. Read-modify-write changes (`patch`, `label`) go through ``Writer.modify``, which each
store makes atomic (a directory lock, or an etcd compare-and-swap retried on conflict).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bgpd.model.errors import ConfigError
from bgpd.model.loader import SourceDoc, parse_resource
from bgpd.store.url import FileStoreConfig, StoreConfig

CALICO_API = "projectcalico.org/v3"
Body = dict[str, Any]


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    aliases: tuple[str, ...]


KINDS = (
    KindInfo("BGPConfiguration", "bgpconfigurations",
             ("bgpconfig", "bgpconfigs", "bgpconfiguration", "bgpconfigurations")),
    KindInfo("BGPPeer", "bgppeers", ("bgppeer", "bgppeers")),
    KindInfo("BGPFilter", "bgpfilters", ("bgpfilter", "bgpfilters")),
    KindInfo("Node", "nodes", ("node", "nodes", "no")),
    KindInfo("IPPool", "ippools", ("ippool", "ippools")),
    KindInfo("BlockAffinity", "blockaffinities", ("blockaffinity", "blockaffinities", "affinity")),
    KindInfo("CalicoNodeStatus", "caliconodestatuses", ("caliconodestatus", "caliconodestatuses")),
    KindInfo("Secret", "secrets", ("secret", "secrets")),
)
_BY_NAME = {alias: info for info in KINDS for alias in (*info.aliases, info.kind.lower())}
BY_KIND = {info.kind: info for info in KINDS}


class WriteError(Exception):
    """A write that cannot be done; the message names the store, resource and reason."""


class NotFound(WriteError):
    pass


class AlreadyExists(WriteError):
    pass


class Conflict(WriteError):
    """The resource changed since it was read (``metadata.resourceVersion`` no longer matches)."""


class Invalid(WriteError):
    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class WriteResult:
    kind: str
    name: str
    action: str  # "created", "updated", "deleted"
    revision: str = ""


def resolve_kind(text: str) -> KindInfo:
    """calicoctl's spellings (``bgppeer``, ``bgpconfig``, ``ippools``...) and the Kind itself."""
    info = _BY_NAME.get(text.lower())
    if info is None:
        known = ", ".join(i.aliases[0] if i.kind != "BGPConfiguration" else "bgpconfiguration" for i in KINDS)
        raise WriteError(f"unknown resource kind {text!r}; expected one of {known}")
    return info


def validate(body: Any, source: str, doc: int = 1) -> tuple[KindInfo, str]:
    """The kind and name of a valid body; raises `Invalid` with every problem otherwise."""
    resource, errors = parse_resource(SourceDoc(source, doc, body))
    if resource is None:
        raise Invalid(errors)
    return BY_KIND[body["kind"]], resource.meta.name


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def skeleton(info: KindInfo, name: str) -> Body:
    """The envelope of a new resource, for a patch that creates ``bgpconfiguration default``."""
    return {"apiVersion": CALICO_API, "kind": info.kind, "metadata": {"name": name}}


class Writer(Protocol):
    @property
    def source(self) -> str: ...

    async def get(self, info: KindInfo, name: str | None = None) -> list[Body]:
        """Resources of one kind (all, or the one named; `NotFound` if it is absent), sorted by name."""
        ...

    async def create(self, body: Body, source: str = "<input>", doc: int = 1) -> WriteResult: ...

    async def apply(self, body: Body, source: str = "<input>", doc: int = 1) -> WriteResult: ...

    async def delete(self, info: KindInfo, name: str) -> WriteResult: ...

    async def modify(self, info: KindInfo, name: str, change: Callable[[Body | None], Body]) -> WriteResult:
        """Atomically replace the resource by ``change(current)`` (``None`` when it does not exist)."""
        ...

    async def close(self) -> None: ...


async def patch(writer: Writer, info: KindInfo, name: str, merge: Body) -> WriteResult:
    """Merge-patch one resource. ``BGPConfiguration default`` is created from the patch when absent,
    as fresh clusters run ``calicoctl patch bgpconfiguration default ...``; any other missing
    resource is `NotFound`."""
    def change(current: Body | None) -> Body:
        if current is None:
            if (info.kind, name) != ("BGPConfiguration", "default"):
                raise NotFound(f"{info.kind}/{name} not found in {writer.source}")
            current = skeleton(info, name)
        result = merge_patch(current, merge)
        if not isinstance(result, dict):
            raise WriteError(f"patch for {info.kind}/{name} must be a JSON object; got {merge!r}")
        return result
    return await writer.modify(info, name, change)


def parse_label_changes(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """kubectl label syntax: ``key=value`` sets, ``key-`` removes."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for item in items:
        if item.endswith("-") and "=" not in item:
            removes.append(item[:-1])
        elif "=" in item and item.index("=") > 0:
            key, _, value = item.partition("=")
            sets[key] = value
        else:
            raise WriteError(f"label {item!r}: expected key=value to set or key- to remove")
    return sets, removes


async def label(writer: Writer, info: KindInfo, name: str, items: list[str], overwrite: bool) -> WriteResult:
    """Set/remove labels like ``kubectl label``: changing an existing value needs ``overwrite``."""
    sets, removes = parse_label_changes(items)

    def change(current: Body | None) -> Body:
        if current is None:
            raise NotFound(f"{info.kind}/{name} not found in {writer.source}")
        body = copy.deepcopy(current)
        meta = body.setdefault("metadata", {})
        labels = dict(meta.get("labels") or {})
        for key, value in sets.items():
            old = labels.get(key)
            if old is not None and old != value and not overwrite:
                raise WriteError(f"{info.kind}/{name} already has label {key}={old!r}; "
                                 "use --overwrite to change it")
            labels[key] = value
        for key in removes:
            labels.pop(key, None)
        meta["labels"] = labels
        return body
    return await writer.modify(info, name, change)


def open_writer(config: StoreConfig) -> Writer:
    """The writer for a parsed store URL."""
    # Imported on use: the directory writer needs no etcd client library loaded.
    if isinstance(config, FileStoreConfig):
        from bgpd.store.writer_yamldir import DirWriter  # noqa: PLC0415

        return DirWriter(config.path)
    from bgpd.store.writer_etcd import EtcdWriter  # noqa: PLC0415

    return EtcdWriter(config)
