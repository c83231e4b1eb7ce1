"""The YAML directory store: the embedded default (``/etc/bgpd/resources.d``).

Reads ``*.yaml``, ``*.yml`` and ``*.json`` below a directory, recursively, in sorted path order,
following symlinked directories. Names starting with ``.`` are skipped: a Kubernetes ConfigMap mount
holds each file once as ``name -> ..data/name`` plus the hidden ``..data`` and ``..<timestamp>``
directories, so skipping hidden entries reads every file exactly once.

`watch` uses inotify on the directories (never on files, so an atomic ``..data`` symlink swap is
seen), debounces bursts, and yields a Snapshot only when the content changed.

The last-good rule: once a fully valid snapshot has been seen, a later content with any error yields
that last good snapshot's resources unchanged, with the new ``errors`` and ``revision``; nothing
that runs is disturbed, and the next fully valid content replaces it. Before anything valid was
seen, the partial snapshot (valid documents plus errors) is yielded as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from bgpd.model.errors import ConfigError
from bgpd.model.loader import SourceDoc, build_snapshot, parse_text
from bgpd.model.snapshot import DEFAULT_SECRET_NAMESPACE, Snapshot
from bgpd.store.inotify import Inotify

DEFAULT_DIR = "/etc/bgpd/resources.d"
SUFFIXES = (".yaml", ".yml", ".json")
RETRY_MISSING = 1.0  # seconds between looks for a directory that does not exist yet


def list_files(root: Path) -> tuple[list[Path], set[str]]:
    """The resource files below ``root`` in sorted order, and the real directories walked."""
    if not root.is_dir():
        return ([root] if root.exists() else []), ({str(root.parent.resolve())} if root.exists() else set())
    files: list[Path] = []
    directories: set[str] = set()

    def walk(directory: Path) -> None:
        real = os.path.realpath(directory)
        if real in directories:  # a symlink loop, or the same directory linked twice
            return
        directories.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = directory / entry.name
            if entry.is_dir():  # follows symlinks
                walk(path)
            elif entry.name.endswith(SUFFIXES) and entry.is_file():
                files.append(path)

    walk(root)
    if root.is_symlink():  # the link itself may be swapped: its directory sees that
        directories.add(os.path.dirname(os.path.abspath(root)))
    return files, directories


def read_sources(root: Path) -> tuple[list[tuple[str, str]], list[ConfigError], str, set[str]]:
    """(source, text) per file, read errors, the content revision and the directories to watch."""
    files, directories = list_files(root)
    sources: list[tuple[str, str]] = []
    errors: list[ConfigError] = []
    digest = hashlib.sha256()
    if not files and not root.exists():
        errors.append(ConfigError(str(root), 0, "", "", "", "no such file or directory"))
    for path in files:
        try:
            data = path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(ConfigError(str(path), 0, "", "", "", f"cannot read: {exc}"))
            continue
        digest.update(f"{path}\0{len(data)}\0".encode())
        digest.update(data)
        sources.append((str(path), text))
    for error in errors:
        digest.update(str(error).encode())
    return sources, errors, digest.hexdigest(), directories


def load(path: str | Path, secret_namespace: str = DEFAULT_SECRET_NAMESPACE,
         ignore_kinds: frozenset[str] = frozenset()) -> Snapshot:
    """One Snapshot of a directory (or a single file); ``revision`` is the sha256 of the content."""
    snapshot, _ = _load(Path(path), secret_namespace, ignore_kinds)
    return snapshot


def _load(root: Path, secret_namespace: str, ignore_kinds: frozenset[str]) -> tuple[Snapshot, set[str]]:
    sources, errors, revision, directories = read_sources(root)
    docs: list[SourceDoc] = []
    for source, text in sources:
        found, problems = parse_text(text, source)
        docs.extend(found)
        errors.extend(problems)
    snapshot = build_snapshot(docs, revision, secret_namespace, ignore_kinds)
    if errors:
        snapshot = dataclasses.replace(snapshot, errors=(*errors, *snapshot.errors))
    return snapshot, directories


def keep_last_good(last_good: Snapshot | None, new: Snapshot) -> Snapshot:
    """The snapshot to publish for ``new``: see the module docstring for the rule."""
    if not new.errors or last_good is None:
        return new
    return dataclasses.replace(last_good, revision=new.revision, errors=new.errors)


async def watch(path: str | Path, debounce: float = 0.2, secret_namespace: str = DEFAULT_SECRET_NAMESPACE,
                ignore_kinds: frozenset[str] = frozenset()) -> AsyncIterator[Snapshot]:
    """Yield the current Snapshot, then a new one after each change of content (debounced)."""
    root = Path(path)
    loop = asyncio.get_running_loop()
    inotify = Inotify()
    changed = asyncio.Event()

    def on_readable() -> None:
        if inotify.drain():
            changed.set()

    loop.add_reader(inotify.fd, on_readable)
    try:
        last_good: Snapshot | None = None
        revision = None
        while True:
            # Loading may take a second for a big cluster: off the loop, so sessions keep running.
            snapshot, directories = await asyncio.to_thread(_load, root, secret_namespace, ignore_kinds)
            inotify.watch_exactly(directories)
            if snapshot.revision != revision:
                revision = snapshot.revision
                published = keep_last_good(last_good, snapshot)
                if not snapshot.errors:
                    last_good = snapshot
                yield published
            await _next_change(changed, debounce, None if directories else RETRY_MISSING)
    finally:
        loop.remove_reader(inotify.fd)
        inotify.close()


async def _next_change(changed: asyncio.Event, debounce: float, timeout: float | None) -> None:
    """Wait for a change, then until ``debounce`` seconds pass without another one."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(changed.wait(), timeout)
    changed.clear()
    while True:
        try:
            await asyncio.wait_for(changed.wait(), debounce)
        except TimeoutError:
            return
        changed.clear()


@dataclasses.dataclass(frozen=True)
class YamlDirStore:
    """The StorePort adapter (bgpd.ports) over `watch`."""

    path: Path
    debounce: float = 0.2
    secret_namespace: str = DEFAULT_SECRET_NAMESPACE

    @property
    def source(self) -> str:
        return f"file://{self.path}"

    def watch(self) -> AsyncIterator[Snapshot]:
        return watch(self.path, self.debounce, self.secret_namespace)
