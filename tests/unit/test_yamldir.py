"""The YAML directory store on real temp directories, watched with real inotify."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from bgpd.model.errors import ConfigError
from bgpd.model.snapshot import Snapshot
from bgpd.store.yamldir import YamlDirStore, keep_last_good, list_files, load, watch

DEADLINE = 10.0  # seconds a change may take to show up before the test fails


def pool(name: str, cidr: str) -> str:
    return (f"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: {name}}}\n"
            f"spec: {{cidr: {cidr}}}\n")


def write(path: Path, text: str) -> None:
    """Atomically (a hidden temp file, which the store skips, then a rename): no half-written reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_load_reads_resource_files_recursively_once_in_sorted_order(tmp_path: Path) -> None:
    root = tmp_path / "res"
    write(root / "b.yaml", pool("b", "10.2.0.0/16"))
    write(root / "a" / "a.yml", pool("a", "10.1.0.0/16"))
    write(root / "c.json", '{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", '
                           '"metadata": {"name": "c"}, "spec": {"cidr": "10.3.0.0/16"}}')
    write(root / "notes.txt", "not a resource")
    write(root / ".hidden.yaml", pool("hidden", "10.9.0.0/16"))
    write(tmp_path / "elsewhere" / "d.yaml", pool("d", "10.4.0.0/16"))
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    (root / "loop").symlink_to(root)
    files, _ = list_files(root)
    assert [p.relative_to(root).as_posix() for p in files] == ["a/a.yml", "b.yaml", "c.json", "linked/d.yaml"]
    snap = load(root)
    assert sorted(snap.ip_pools) == ["a", "b", "c", "d"] and not snap.errors
    assert len(snap.revision) == 64 and load(root).revision == snap.revision
    write(root / "b.yaml", pool("b", "10.5.0.0/16"))
    assert load(root).revision != snap.revision


def test_load_single_file_and_missing_path(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", pool("a", "10.1.0.0/16"))
    assert list(load(tmp_path / "one.yaml").ip_pools) == ["a"]
    missing = load(tmp_path / "nope")
    assert [str(e) for e in missing.errors] == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_errors_name_the_file_and_document(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", pool("a", "10.1.0.0/16") + "---\n" + pool("b", "10.1.0.1/16"))
    snap = load(tmp_path)
    assert [str(e) for e in snap.errors] == [
        f"{tmp_path / 'p.yaml'}:2 IPPool/b spec.cidr: host bits set; the network is 10.1.0.0/16; "
        "got '10.1.0.1/16'"]
    assert list(snap.ip_pools) == ["a"]


def configmap(root: Path, stamp: str, files: dict[str, str]) -> None:
    """What kubelet does: a new timestamped dir, then an atomic rename of the ``..data`` symlink."""
    data = root / stamp
    for name, text in files.items():
        write(data / name, text)
    tmp = root / "..data_tmp"
    tmp.symlink_to(stamp)
    os.replace(tmp, root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(Path("..data") / name)


def test_configmap_layout_reads_each_file_once(tmp_path: Path) -> None:
    configmap(tmp_path, "..2026_01_01", {"pools.yaml": pool("a", "10.1.0.0/16")})
    files, _ = list_files(tmp_path)
    assert [p.name for p in files] == ["pools.yaml"]
    assert list(load(tmp_path).ip_pools) == ["a"]


class Watcher:
    def __init__(self, stream: AsyncIterator[Snapshot]) -> None:
        self.stream = stream

    async def next(self) -> Snapshot:
        return await asyncio.wait_for(anext(self.stream), DEADLINE)


def run_watch(root: Path, scenario: Callable[[Watcher], Awaitable[None]], debounce: float = 0.2) -> None:
    async def main() -> None:
        stream = watch(root, debounce=debounce)
        try:
            await scenario(Watcher(stream))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())


def test_watch_follows_a_configmap_symlink_swap(tmp_path: Path) -> None:
    configmap(tmp_path, "..2026_01_01", {"pools.yaml": pool("a", "10.1.0.0/16")})

    async def scenario(w: Watcher) -> None:
        assert list((await w.next()).ip_pools) == ["a"]
        configmap(tmp_path, "..2026_01_02", {"pools.yaml": pool("b", "10.2.0.0/16")})
        assert list((await w.next()).ip_pools) == ["b"]

    run_watch(tmp_path, scenario)


def test_watch_debounces_a_burst_and_ignores_unchanged_content(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "p0.yaml", pool("p0", "10.0.0.0/16"))

    async def scenario(w: Watcher) -> None:
        assert list((await w.next()).ip_pools) == ["p0"]
        for i in range(1, 20):  # a burst far shorter than the debounce: one snapshot with all of it
            write(tmp_path / "sub" / f"p{i}.yaml", pool(f"p{i}", f"10.{i}.0.0/16"))
        assert len((await w.next()).ip_pools) == 20
        (tmp_path / "sub" / "p0.yaml").touch()  # same content: nothing is yielded for this
        write(tmp_path / "new" / "q.yaml", pool("q", "10.99.0.0/16"))
        assert str((await w.next()).ip_pools["q"].cidr) == "10.99.0.0/16"
        write(tmp_path / "new" / "q.yaml", pool("q", "10.98.0.0/16"))  # the new directory is watched too
        assert str((await w.next()).ip_pools["q"].cidr) == "10.98.0.0/16"

    run_watch(tmp_path, scenario, debounce=0.5)


def test_watch_keeps_the_last_good_snapshot_when_a_document_breaks(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", pool("a", "10.1.0.0/16"))
    write(tmp_path / "b.yaml", pool("b", "10.2.0.0/16"))

    async def scenario(w: Watcher) -> None:
        good = await w.next()
        assert sorted(good.ip_pools) == ["a", "b"] and not good.errors
        write(tmp_path / "b.yaml", pool("b", "10.2.0.1/16") + "---\n" + pool("c", "10.3.0.0/16"))
        stale = await w.next()
        assert [e.field for e in stale.errors] == ["spec.cidr"]
        assert stale.ip_pools == good.ip_pools and stale.revision != good.revision
        write(tmp_path / "b.yaml", "kind: [\n")  # still bad, differently: the errors are updated
        worse = await w.next()
        assert "YAML syntax error" in str(worse.errors[0]) and worse.ip_pools == good.ip_pools
        write(tmp_path / "b.yaml", pool("c", "10.3.0.0/16"))
        fixed = await w.next()
        assert sorted(fixed.ip_pools) == ["a", "c"] and not fixed.errors

    run_watch(tmp_path, scenario)


def test_watch_a_symlinked_root_and_a_directory_that_appears_later(tmp_path: Path) -> None:
    write(tmp_path / "v1" / "p.yaml", pool("a", "10.1.0.0/16"))
    write(tmp_path / "v2" / "p.yaml", pool("b", "10.2.0.0/16"))
    link = tmp_path / "current"
    link.symlink_to("v1")
    later = tmp_path / "later"

    async def swap(w: Watcher) -> None:
        assert list((await w.next()).ip_pools) == ["a"]
        tmp = tmp_path / "current.tmp"
        tmp.symlink_to("v2")
        os.replace(tmp, link)
        assert list((await w.next()).ip_pools) == ["b"]

    async def appear(w: Watcher) -> None:
        assert [e.problem for e in (await w.next()).errors] == ["no such file or directory"]
        write(tmp_path / "staging" / "p.yaml", pool("c", "10.3.0.0/16"))
        os.rename(tmp_path / "staging", later)
        assert list((await w.next()).ip_pools) == ["c"]

    run_watch(link, swap)
    run_watch(later, appear)


def test_keep_last_good_rule() -> None:
    error = ConfigError("f", 1, "IPPool", "p", "spec.cidr", "bad")
    good = Snapshot(revision="1")
    bad = Snapshot(revision="2", errors=(error,))
    assert keep_last_good(None, bad) is bad
    assert keep_last_good(good, bad) == Snapshot(revision="2", errors=(error,))
    fresh = Snapshot(revision="3")
    assert keep_last_good(good, fresh) is fresh


def test_store_port_adapter(tmp_path: Path) -> None:
    write(tmp_path / "s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n")
    store = YamlDirStore(tmp_path, secret_namespace="calico-system")
    assert store.source == f"file://{tmp_path}"

    async def first() -> Snapshot:
        stream = store.watch()
        try:
            return await asyncio.wait_for(anext(stream), DEADLINE)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    assert list(asyncio.run(first()).secrets) == [("calico-system", "s")]
