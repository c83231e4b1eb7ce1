"""Writes to the etcd store, as libcalico-go does: create = "version == 0 then put", update =
"mod_revision == rv then put", delete = "mod_revision == rv then delete". A read-modify-write
(`modify`: patch, label) re-reads and retries when another writer got in between."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aetcd

from bgpd.model.loader import SourceDoc
from bgpd.model.snapshot import DEFAULT_SECRET_NAMESPACE
from bgpd.store import etcd_layout as layout
from bgpd.store.etcd import connect_any
from bgpd.store.url import EtcdStoreConfig
from bgpd.store.writer import (
    AlreadyExists,
    Body,
    Conflict,
    KindInfo,
    NotFound,
    WriteError,
    WriteResult,
    validate,
)

MAX_ATTEMPTS = 20  # compare-and-swap retries of one read-modify-write before giving up


def key_of(body: Body) -> str:
    """The etcd key of a valid body."""
    meta = body["metadata"]
    if body["kind"] == "BlockAffinity":
        spec = body["spec"]
        return layout.affinity_key(spec["node"], spec["cidr"], spec.get("type", "host"))
    return layout.resource_key(body["kind"], meta["name"], meta.get("namespace") or DEFAULT_SECRET_NAMESPACE)


class EtcdWriter:
    def __init__(self, config: EtcdStoreConfig, timeout: float = 5.0) -> None:
        self.config = config
        self.timeout = timeout
        self._client: aetcd.Client | None = None

    @property
    def source(self) -> str:
        return self.config.url

    async def _conn(self) -> aetcd.Client:
        if self._client is None:
            self._client = await connect_any(self.config, timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # ---------------------------------------------------------------- reads

    async def _read(self, key: str) -> tuple[Body | None, int]:
        """The body at ``key`` (with ``resourceVersion``) and its mod_revision (0: absent)."""
        got = await (await self._conn()).get(key.encode())
        if got is None:
            return None, 0
        doc = layout.decode(key, got.value, got.mod_revision)
        if not isinstance(doc, SourceDoc):
            raise WriteError(f"{key}: the stored value cannot be read: {doc}")
        body: Body = doc.body
        return body, got.mod_revision

    async def get(self, info: KindInfo, name: str | None = None) -> list[Body]:
        client = await self._conn()
        prefixes = (layout.IPAM_HOST, layout.IPAM_VIRTUAL) if info.kind == "BlockAffinity" \
            else (layout.kind_prefix(info.kind),)
        bodies: list[Body] = []
        for prefix in prefixes:
            for kv in await client.get_prefix(prefix.encode()):
                doc = layout.decode(kv.key.decode(), kv.value, kv.mod_revision)
                body: Any = getattr(doc, "body", None)
                if isinstance(body, dict) and body.get("kind") == info.kind:
                    bodies.append(body)
        bodies.sort(key=lambda b: str((b.get("metadata") or {}).get("name", "")))
        if name is None:
            return bodies
        found = [b for b in bodies if (b.get("metadata") or {}).get("name") == name]
        if not found:
            raise NotFound(f"{info.kind}/{name} not found in {self.source}")
        return found

    # ---------------------------------------------------------------- writes

    async def _put(self, key: str, body: Body, expect: int) -> int | None:
        """Put when the key's mod_revision is ``expect`` (0: the key must not exist); the new
        revision, or None when the comparison failed."""
        client = await self._conn()
        tx = client.transactions
        compare = tx.version(key.encode()) == 0 if expect == 0 else tx.mod(key.encode()) == expect
        ok, responses = await client.transaction(compare=[compare], success=[tx.put(key.encode(),
                                                                                  layout.encode(body))],
                                                 failure=[])
        return int(responses[0].response_put.header.revision) if ok else None

    async def create(self, body: Body, source: str = "<input>", doc: int = 1) -> WriteResult:
        info, name = validate(body, source, doc)
        key = key_of(body)
        revision = await self._put(key, _stamped(body, None), 0)
        if revision is None:
            raise AlreadyExists(f"{info.kind}/{name} already exists in {self.source}")
        return WriteResult(info.kind, name, "created", str(revision))

    async def apply(self, body: Body, source: str = "<input>", doc: int = 1) -> WriteResult:
        info, name = validate(body, source, doc)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted not in (None, ""):
            return await self._update_at(info, name, body, str(wanted))
        return await self.modify(info, name, lambda _current: body, key=key_of(body))

    async def _update_at(self, info: KindInfo, name: str, body: Body, wanted: str) -> WriteResult:
        if not wanted.isdigit():
            raise WriteError(f"{info.kind}/{name} metadata.resourceVersion: must be an etcd revision; "
                             f"got {wanted!r}")
        current, _ = await self._read(key_of(body))
        revision = await self._put(key_of(body), _stamped(body, current), int(wanted))
        if revision is None:
            raise Conflict(f"{info.kind}/{name} changed since resourceVersion {wanted} (or was deleted); "
                           "get it again and re-apply")
        return WriteResult(info.kind, name, "updated", str(revision))

    async def modify(self, info: KindInfo, name: str, change: Callable[[Body | None], Body],
                     key: str | None = None) -> WriteResult:
        key = key or self._key_for(info, name)
        for _attempt in range(MAX_ATTEMPTS):
            current, mod = await self._read(key)
            body = change(copy.deepcopy(current) if current is not None else None)
            validate(body, f"{self.source} {info.kind}/{name}")
            revision = await self._put(key, _stamped(body, current), mod)
            if revision is not None:
                return WriteResult(info.kind, name, "updated" if current else "created", str(revision))
        raise Conflict(f"{info.kind}/{name}: still changing under us after {MAX_ATTEMPTS} attempts")

    def _key_for(self, info: KindInfo, name: str) -> str:
        if info.kind == "BlockAffinity":
            raise WriteError("BlockAffinity resources are IPAM keys; write them whole with apply")
        if info.kind == "Secret":
            namespace, _, secret = name.rpartition("/")
            return layout.resource_key("Secret", secret, namespace or DEFAULT_SECRET_NAMESPACE)
        return layout.resource_key(info.kind, name)

    async def delete(self, info: KindInfo, name: str) -> WriteResult:
        client = await self._conn()
        if info.kind == "BlockAffinity":
            body = (await self.get(info, name))[0]
            key = key_of(body)
        else:
            key = self._key_for(info, name)
        tx = client.transactions
        for _attempt in range(MAX_ATTEMPTS):
            got = await client.get(key.encode())
            if got is None:
                raise NotFound(f"{info.kind}/{name} not found in {self.source}")
            ok, responses = await client.transaction(compare=[tx.mod(key.encode()) == got.mod_revision],
                                                     success=[tx.delete(key.encode())], failure=[])
            if ok:
                return WriteResult(info.kind, name, "deleted",
                                   str(responses[0].response_delete_range.header.revision))
        raise Conflict(f"{info.kind}/{name}: still changing under us after {MAX_ATTEMPTS} attempts")


def _stamped(body: Body, current: Body | None) -> Body:
    """Calico's create sets ``uid`` and ``creationTimestamp``; an update keeps the stored ones."""
    body = copy.deepcopy(body)
    meta = body.setdefault("metadata", {})
    old = (current or {}).get("metadata") or {}
    if not meta.get("uid"):
        meta["uid"] = old.get("uid") or str(uuid.uuid4())
    if not meta.get("creationTimestamp"):
        meta["creationTimestamp"] = old.get("creationTimestamp") or \
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return body
