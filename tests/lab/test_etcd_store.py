"""The etcd store and writer against a REAL etcd (Debian's etcd-server), started per test on
127.0.0.1 with free ports and stopped after: list + watch, Calico's key layout, compare-and-swap,
compaction -> re-list, and an outage (last snapshot kept, stale with a reason, changes after)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aetcd
import pytest

from bgpd.cli import main
from bgpd.model.snapshot import Snapshot
from bgpd.store.etcd import EtcdStore, connect, load
from bgpd.store.url import EtcdEndpoint, EtcdStoreConfig
from bgpd.store.writer import Conflict, label, resolve_kind
from bgpd.store.writer_etcd import EtcdWriter

pytestmark = pytest.mark.lab
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
NEXT = 30.0  # seconds to wait for the store's next snapshot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Etcd:
    """One etcd member on loopback; `stop`/`start` keep its data and ports."""

    def __init__(self, data: Path, tls: Path | None = None) -> None:
        self.data = data
        self.tls = tls
        self.client_port, self.peer_port = free_port(), free_port()
        self.name = f"bgpd-test-{os.getpid()}-{self.client_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config = EtcdStoreConfig((EtcdEndpoint("127.0.0.1", self.client_port),))
        if tls is not None:
            self.config = EtcdStoreConfig(self.config.endpoints, True, str(tls / "ca.pem"),
                                          str(tls / "client.pem"), str(tls / "client.key"))

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"
        tls = [] if self.tls is None else [
            "--cert-file", str(self.tls / "server.pem"), "--key-file", str(self.tls / "server.key"),
            "--trusted-ca-file", str(self.tls / "ca.pem"), "--client-cert-auth"]
        self.proc = subprocess.Popen(
            [ETCD, "--name", self.name, "--data-dir", str(self.data / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"{self.name}={peer}", *tls],
            stdout=open(self.data / "etcd.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited:\n" + (self.data / "etcd.log").read_text()[-3000:])
            if asyncio.run(self._healthy()):
                return
            time.sleep(0.1)
        raise RuntimeError("etcd did not answer:\n" + (self.data / "etcd.log").read_text()[-3000:])

    async def _healthy(self) -> bool:
        try:
            client = await connect(self.config, self.config.endpoints[0], timeout=1)
        except Exception:
            return False
        await client.close()
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    if not Path(ETCD).exists():
        pytest.skip("LAB TEST SKIPPED: no etcd binary (apt-get install etcd-server)")
    server = Etcd(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def peer(name: str, asn: int = 64600, ip: str = "10.0.0.9") -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": name},
            "spec": {"peerIP": ip, "asNumber": asn}}


NODE = {"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "node-1"},
        "spec": {"bgp": {"ipv4Address": "10.0.0.1/24"}}}


async def raw(etcd: Etcd) -> dict[str, Any]:
    async with aetcd.Client("127.0.0.1", etcd.client_port, timeout=5) as client:
        return {kv.key.decode(): kv.value for kv in await client.get_prefix(b"/calico/")}


async def next_snapshot(it: AsyncIterator[Snapshot]) -> Snapshot:
    return await asyncio.wait_for(anext(it), NEXT)


async def until(it: AsyncIterator[Snapshot], check: Any) -> Snapshot:
    """The first snapshot for which ``check`` holds (polled with a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + NEXT
    while time.monotonic() < deadline:
        snapshot = await next_snapshot(it)
        if check(snapshot):
            return snapshot
    raise AssertionError("no snapshot satisfied the check in time")


def test_writer_uses_calicos_key_layout_and_json_values(etcd: Etcd) -> None:
    async def go() -> None:
        writer = EtcdWriter(etcd.config)
        try:
            created = await writer.create(peer("peer-1"))
            await writer.apply(NODE)
            keys = await raw(etcd)
            assert set(keys) == {"/calico/resources/v3/projectcalico.org/bgppeers/peer-1",
                                 "/calico/resources/v3/projectcalico.org/nodes/node-1"}
            value = json.loads(keys["/calico/resources/v3/projectcalico.org/bgppeers/peer-1"])
            assert value["kind"] == "BGPPeer" and value["apiVersion"] == "projectcalico.org/v3"
            assert value["spec"] == {"peerIP": "10.0.0.9", "asNumber": 64600}
            assert "resourceVersion" not in value["metadata"]
            assert value["metadata"]["uid"] and value["metadata"]["creationTimestamp"]
            got = (await writer.get(resolve_kind("bgppeer"), "peer-1"))[0]
            assert got["metadata"]["resourceVersion"] == created.revision
            updated = await writer.apply(peer("peer-1", asn=64601))
            again = json.loads((await raw(etcd))["/calico/resources/v3/projectcalico.org/bgppeers/peer-1"])
            assert again["metadata"]["uid"] == value["metadata"]["uid"]  # an update keeps it
            assert int(updated.revision) > int(created.revision)
        finally:
            await writer.close()
    asyncio.run(go())


def test_compare_and_swap_never_loses_an_update_and_rejects_a_stale_version(etcd: Etcd) -> None:
    info = resolve_kind("node")

    async def bump(key: str, times: int) -> None:
        writer = EtcdWriter(etcd.config)  # one client each: truly concurrent writers

        def change(current: dict[str, Any] | None) -> dict[str, Any]:
            assert current is not None
            labels = current["metadata"].setdefault("labels", {})
            labels[key] = str(int(labels.get(key, "0")) + 1)
            return current
        try:
            for _ in range(times):
                await writer.modify(info, "node-1", change)
        finally:
            await writer.close()

    async def go() -> None:
        writer = EtcdWriter(etcd.config)
        try:
            first = await writer.create(NODE)
            await asyncio.gather(*(bump("count", 10) for _ in range(4)), bump("other", 3))
            labels = (await writer.get(info, "node-1"))[0]["metadata"]["labels"]
            assert labels == {"count": "40", "other": "3"}
            stale = {**NODE, "metadata": {"name": "node-1", "resourceVersion": first.revision}}
            with pytest.raises(Conflict, match="Node/node-1 changed since resourceVersion"):
                await writer.apply(stale)
            await label(writer, info, "node-1", ["rack=a"], overwrite=False)
        finally:
            await writer.close()
    asyncio.run(go())


def test_list_then_watch_sees_every_change(etcd: Etcd) -> None:
    async def go() -> None:
        writer = EtcdWriter(etcd.config)
        store = EtcdStore(etcd.config, backoff_initial=0.1, backoff_max=0.5)
        it = store.watch()
        try:
            await writer.create(peer("peer-1"))
            first = await next_snapshot(it)
            assert set(first.bgp_peers) == {"peer-1"} and not first.errors
            listed = await raw(etcd)
            assert listed and first.revision.isdigit()
            result = await writer.create(peer("peer-2", ip="10.0.0.10"))
            second = await until(it, lambda s: "peer-2" in s.bgp_peers)
            assert second.revision == result.revision
            await writer.delete(resolve_kind("bgppeer"), "peer-1")
            await until(it, lambda s: set(s.bgp_peers) == {"peer-2"})
            async with aetcd.Client("127.0.0.1", etcd.client_port) as client:  # what Calico IPAM writes
                await client.put(b"/calico/ipam/v2/host/node-1/ipv4/block/10.244.1.0-26",
                                 b'{"state":"confirmed","deleted":false}')
                await client.put(b"/calico/felix/v2/whatever", b"not ours")
            snap = await until(it, lambda s: bool(s.block_affinities))
            (affinity,) = snap.block_affinities.values()
            assert (affinity.node, str(affinity.cidr), affinity.state) == ("node-1", "10.244.1.0/26",
                                                                           "confirmed")
            ba = await writer.get(resolve_kind("blockaffinities"))
            assert [b["spec"]["cidr"] for b in ba] == ["10.244.1.0/26"]
            # A bad value keeps the last good resources and reports the key.
            async with aetcd.Client("127.0.0.1", etcd.client_port) as client:
                await client.put(b"/calico/resources/v3/projectcalico.org/bgppeers/broken", b"{nope")
            bad = await until(it, lambda s: bool(s.errors))
            assert set(bad.bgp_peers) == {"peer-2"}
            assert str(bad.errors[0]).startswith("/calico/resources/v3/projectcalico.org/bgppeers/broken:1 "
                                                 "BGPPeer/broken: value is not valid JSON")
            assert (await load(etcd.config)).bgp_peers.keys() == {"peer-2"}
        finally:
            await it.aclose()
            await writer.close()
    asyncio.run(go())


def test_a_compacted_watch_relists(etcd: Etcd) -> None:
    async def go() -> None:
        writer = EtcdWriter(etcd.config)
        store = EtcdStore(etcd.config, backoff_initial=0.1)
        it = store.watch()
        try:
            await writer.create(peer("peer-1"))
            first = await next_snapshot(it)  # listed; the watch starts only when we ask for more
            await writer.create(peer("peer-2", ip="10.0.0.10"))
            last = await writer.delete(resolve_kind("bgppeer"), "peer-1")
            async with aetcd.Client("127.0.0.1", etcd.client_port) as client:
                await client.compact(int(last.revision))
            snap = await until(it, lambda s: s.revision != first.revision)
            assert set(snap.bgp_peers) == {"peer-2"}
            assert snap.revision == last.revision
            assert store.lists == 2 and not store.stale
        finally:
            await it.aclose()
            await writer.close()
    asyncio.run(go())


def test_outage_keeps_the_last_snapshot_marks_stale_and_recovers(etcd: Etcd) -> None:
    async def go() -> None:
        writer = EtcdWriter(etcd.config)
        store = EtcdStore(etcd.config, timeout=2.0, backoff_initial=0.2, backoff_max=1.0)
        it = store.watch()
        try:
            await writer.create(peer("peer-1"))
            first = await next_snapshot(it)
            await writer.close()
            await asyncio.to_thread(etcd.stop)
            stale = await next_snapshot(it)
            assert store.stale and "unreachable" in store.stale_reason
            assert stale.bgp_peers == first.bgp_peers and stale.revision == first.revision
            assert [str(e) for e in stale.errors] == [f"{store.source}: {store.stale_reason}"]
            await asyncio.to_thread(etcd.start)
            fresh = await next_snapshot(it)
            assert not fresh.errors and not store.stale and store.stale_reason == ""
            assert fresh.bgp_peers.keys() == {"peer-1"}
            await writer.create(peer("peer-2", ip="10.0.0.10"))
            await until(it, lambda s: s.bgp_peers.keys() == {"peer-1", "peer-2"})
            assert store.lists == 1  # resumed the watch, no re-list needed
        finally:
            await it.aclose()
            await writer.close()
    asyncio.run(go())


def test_cli_against_etcd(etcd: Etcd, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", f"etcd://127.0.0.1:{etcd.client_port}"]
    (tmp_path / "node.yaml").write_text(json.dumps(NODE))
    assert main(["apply", "-f", str(tmp_path / "node.yaml"), *store]) == 0
    assert main(["label", "node", "node-1", "rack=a", *store]) == 0
    assert main(["patch", "bgpconfiguration", "default", "-p", '{"spec": {"asNumber": 64513}}', *store]) == 0
    assert main(["get", "node", "node-1", "-o", "json", *store]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("{"):])
    assert shown["metadata"]["labels"] == {"rack": "a"}
    keys = asyncio.run(raw(etcd))
    assert "/calico/resources/v3/projectcalico.org/bgpconfigurations/default" in keys
    assert main(["delete", "node", "node-1", *store]) == 0
    assert main(["get", "node", "node-1", *store]) == 1
    assert "Node/node-1 not found in etcd://127.0.0.1:" in capsys.readouterr().err


def make_certs(directory: Path) -> Path:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    directory.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=bgpd-test-ca")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        ssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=bgpd-{name}")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")
    return directory


def test_tls_with_client_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("LAB TEST SKIPPED: no openssl to make test certificates")
    pki = make_certs(tmp_path / "pki")
    server = Etcd(tmp_path, tls=pki)
    server.start()
    try:
        async def go() -> None:
            writer = EtcdWriter(server.config)
            try:
                await writer.create(peer("peer-1"))
            finally:
                await writer.close()
            assert (await load(server.config)).bgp_peers.keys() == {"peer-1"}
        asyncio.run(go())
        url = f"etcd://127.0.0.1:{server.client_port}"
        monkeypatch.setenv("ETCD_CA_CERT_FILE", str(pki / "ca.pem"))
        monkeypatch.setenv("ETCD_CERT_FILE", str(pki / "client.pem"))
        monkeypatch.setenv("ETCD_KEY_FILE", str(pki / "client.key"))
        assert main(["get", "bgppeers", "--store", url]) == 0
        assert "peer-1" in capsys.readouterr().out
        # Without a client certificate the server refuses: a clear error, exit 1, no traceback.
        monkeypatch.delenv("ETCD_CERT_FILE")
        monkeypatch.delenv("ETCD_KEY_FILE")
        assert main(["get", "bgppeers", "--store", url]) == 1
        assert capsys.readouterr().err.startswith(f"bgpd get: {url}: ")
    finally:
        server.stop()


def test_username_and_password(etcd: Etcd, capsys: pytest.CaptureFixture[str]) -> None:
    async def enable_auth() -> None:
        async with aetcd.Client("127.0.0.1", etcd.client_port, timeout=5) as client:
            auth = aetcd.rpc.AuthStub(client.channel)
            await auth.RoleAdd(aetcd.rpc.AuthRoleAddRequest(name="root"))
            await auth.UserAdd(aetcd.rpc.AuthUserAddRequest(name="root", password="Sekr1t-pw"))
            await auth.UserGrantRole(aetcd.rpc.AuthUserGrantRoleRequest(user="root", role="root"))
            await auth.AuthEnable(aetcd.rpc.AuthEnableRequest())
    asyncio.run(enable_auth())
    good = EtcdStoreConfig(etcd.config.endpoints, username="root", password="Sekr1t-pw")
    bad = EtcdStoreConfig(etcd.config.endpoints, username="root", password="wrong-pw")

    async def go() -> None:
        writer = EtcdWriter(good)
        try:
            await writer.create(peer("peer-1"))
        finally:
            await writer.close()
        assert (await load(good)).bgp_peers.keys() == {"peer-1"}
        store = EtcdStore(bad, backoff_initial=0.1)
        it = store.watch()
        try:
            snap = await next_snapshot(it)
        finally:
            await it.aclose()
        assert store.stale and "wrong-pw" not in store.stale_reason
        assert "authentication failed" in store.stale_reason and snap.errors
    asyncio.run(go())


def test_secrets_for_bgp_passwords(etcd: Etcd) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bgp", "namespace": "kube-system"},
              "stringData": {"pw": "s3cret"}}
    with_password = {**peer("peer-1"), "spec": {**peer("peer-1")["spec"],
                                                "password": {"secretKeyRef": {"name": "bgp", "key": "pw"}}}}

    async def go() -> None:
        writer = EtcdWriter(etcd.config)
        try:
            await writer.create(secret)
            await writer.create(with_password)
        finally:
            await writer.close()
        assert "/calico/resources/v3/projectcalico.org/secrets/kube-system/bgp" in await raw(etcd)
        snapshot = await load(etcd.config)
        assert snapshot.secrets[("kube-system", "bgp")].data == {"pw": "s3cret"}
        assert not snapshot.errors
    asyncio.run(go())
