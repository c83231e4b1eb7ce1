"""Writes to the YAML directory store, safely against concurrent writers and the watching daemon.

Every operation holds an exclusive ``flock`` on the directory itself (no lock file to clutter it),
re-reads the files under that lock, and replaces a file atomically (write a hidden temp file in the
same directory, fsync, rename, fsync the directory), so the daemon never reads half a file and no
update is lost. A new resource goes to ``<dir>/<plural>/<name>.yaml``; a resource that already
lives in a user's file is changed in that file: in a multi-document YAML file only its own document
is rewritten (the others keep their text and comments), a JSON file is rewritten as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bgpd.model.loader import parse_text
from bgpd.store.writer import (
    AlreadyExists,
    Body,
    KindInfo,
    NotFound,
    WriteError,
    WriteResult,
    validate,
)
from bgpd.store.yamldir import list_files


@dataclass
class _Doc:
    """One resource in a file: its body and where its text is."""

    path: Path
    body: Any
    start: int  # span of its YAML document in the file text (whole file for JSON)
    end: int
    item: int | None  # index within a ``kind: List`` document
    json_index: int | None  # index within a JSON file's documents


def _identity(body: Any) -> tuple[str, str] | None:
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        return None
    kind, name = body.get("kind"), body["metadata"].get("name")
    if body.get("kind") == "Secret":
        name = f"{body['metadata'].get('namespace') or ''}/{name}"
    return (kind, name) if isinstance(kind, str) and isinstance(name, str) else None


def _file_docs(path: Path, text: str) -> list[_Doc]:
    """The resources of one file, or none when it does not parse (the store reports that)."""
    if text.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            decoded = json.loads(text)
            bodies = decoded if isinstance(decoded, list) else [decoded]
            return [_Doc(path, b, 0, len(text), None, i) for i, b in enumerate(bodies)]
    docs: list[_Doc] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return []
    for node in nodes:
        if node is None:
            continue
        start, end = node.start_mark.index, node.end_mark.index
        found, errors = parse_text(text[start:end], str(path))
        if errors or not found:
            continue
        body = found[0].body
        if len(found) == 1 and not (isinstance(body, dict) and body.get("kind") == "List"):
            docs.append(_Doc(path, body, start, end, None, None))
        else:
            docs.extend(_Doc(path, d.body, start, end, i, None) for i, d in enumerate(found))
    return docs


def _dump(body: Any) -> str:
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=False, allow_unicode=True)


class DirWriter:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def source(self) -> str:
        return f"file://{self.root}"

    async def close(self) -> None:
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _index(self) -> dict[tuple[str, str], _Doc]:
        index: dict[tuple[str, str], _Doc] = {}
        files, _dirs = list_files(self.root)
        for path in files:
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            for doc in _file_docs(path, text):
                ident = _identity(doc.body)
                if ident is not None and ident not in index:  # the first one wins, as in the store
                    index[ident] = doc
        return index

    # ---------------------------------------------------------------- reads

    async def get(self, info: KindInfo, name: str | None = None) -> list[Body]:
        return await asyncio.to_thread(self._get, info, name)

    def _get(self, info: KindInfo, name: str | None) -> list[Body]:
        with self._locked():
            index = self._index()
        bodies = [copy.deepcopy(d.body) for (kind, n), d in sorted(index.items()) if kind == info.kind
                  and (name is None or n == name or n.endswith(f"/{name}"))]
        if name is not None and not bodies:
            raise NotFound(f"{info.kind}/{name} not found in {self.source}")
        return bodies

    # ---------------------------------------------------------------- writes

    async def create(self, body: Body, source: str = "<input>", doc: int = 1) -> WriteResult:
        return await asyncio.to_thread(self._create, body, source, doc)

    def _create(self, body: Body, source: str, doc: int) -> WriteResult:
        info, name = validate(body, source, doc)
        with self._locked():
            ident = _identity(body)
            assert ident is not None
            if ident in self._index():
                raise AlreadyExists(f"{info.kind}/{name} already exists in {self.source}")
            self._write_new(info, body)
        return WriteResult(info.kind, name, "created")

    async def apply(self, body: Body, source: str = "<input>", doc: int = 1) -> WriteResult:
        info, _name = validate(body, source, doc)
        ident = _identity(body)
        assert ident is not None
        return await asyncio.to_thread(self._modify, info, ident[1], lambda _current: _clean(body))

    async def modify(self, info: KindInfo, name: str, change: Callable[[Body | None], Body]) -> WriteResult:
        return await asyncio.to_thread(self._modify, info, name, change)

    def _modify(self, info: KindInfo, name: str, change: Callable[[Body | None], Body]) -> WriteResult:
        with self._locked():
            where = self._index().get((info.kind, name))
            body = change(copy.deepcopy(where.body) if where is not None else None)
            validate(body, f"{self.source} {info.kind}/{name}")
            if _identity(body) != (info.kind, name):
                raise WriteError(f"{info.kind}/{name}: a change must not rename the resource")
            if where is None:
                self._write_new(info, body)
                return WriteResult(info.kind, name, "created")
            self._rewrite(where, body)
        return WriteResult(info.kind, name, "updated")

    async def delete(self, info: KindInfo, name: str) -> WriteResult:
        return await asyncio.to_thread(self._delete, info, name)

    def _delete(self, info: KindInfo, name: str) -> WriteResult:
        with self._locked():
            index = self._index()
            where = index.get((info.kind, name)) or next(
                (d for (k, n), d in index.items() if k == info.kind and n.endswith(f"/{name}")), None)
            if where is None:
                raise NotFound(f"{info.kind}/{name} not found in {self.source}")
            self._rewrite(where, None)
        return WriteResult(info.kind, name, "deleted")

    # ---------------------------------------------------------------- files

    def _write_new(self, info: KindInfo, body: Body) -> None:
        meta = body["metadata"]
        stem = f"{meta['namespace']}.{meta['name']}" if info.kind == "Secret" and meta.get("namespace") \
            else meta["name"]
        path = self.root / info.plural / f"{stem}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, _dump(body), 0o600 if info.kind == "Secret" else 0o644)

    def _rewrite(self, where: _Doc, body: Body | None) -> None:
        """Replace (or, with None, remove) one resource in its file, keeping the rest of the file."""
        text = where.path.read_text()
        if where.json_index is not None:
            decoded = json.loads(text)
            bodies = decoded if isinstance(decoded, list) else [decoded]
            _replace_in(bodies, where.json_index, body)
            new = json.dumps(bodies if isinstance(decoded, list) else (bodies[0] if bodies else []),
                             indent=2) + "\n"
        else:
            if where.item is not None:
                found, _ = parse_text(text[where.start:where.end], str(where.path))
                items = [d.body for d in found]
                _replace_in(items, where.item, body)
                chunk = _dump({"apiVersion": "v1", "kind": "List", "items": items})
            else:
                chunk = _dump(body) if body is not None else ""
            if not text[where.start:where.end].endswith("\n"):
                chunk = chunk.rstrip("\n")
            new = text[:where.start] + chunk + text[where.end:]
        found, _ = parse_text(new, str(where.path))
        if not found:
            os.unlink(where.path)  # nothing left in the file
            return
        mode = os.stat(where.path).st_mode & 0o777
        _atomic_write(where.path, new, mode)


def _replace_in(items: list[Any], index: int, body: Body | None) -> None:
    if body is None:
        del items[index]
    else:
        items[index] = body


def _clean(body: Body) -> Body:
    """Store-side metadata has no meaning in files."""
    body = copy.deepcopy(body)
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("resourceVersion", None)
    return body


def _atomic_write(path: Path, text: str, mode: int) -> None:
    """Write a hidden temp file next to the real target, fsync, rename over, fsync the directory."""
    target = Path(os.path.realpath(path))
    tmp = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # the umask must not widen or narrow what was asked
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
