"""Metrics: the reconciler's state scraped over real HTTP, changing with the events it handles."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bgpd.metrics import Metrics
from bgpd.model.errors import ConfigError
from bgpd.speaker.codec import PeerState, SpeakerRestarted
from tests.unit.test_reconciler import M2, M3, P1, P2, A, World

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(all_: Samples, name: str, **labels: str) -> float:
    matching = [v for (n, ls), v in all_.items() if n == name and labels.items() <= dict(ls).items()]
    assert len(matching) == 1, (name, labels, matching)
    return matching[0]


def http_get(port: int, request: bytes) -> bytes:
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:  # the server may close on a request it refuses before reading all of it: a reset
            sock.sendall(request)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def scrape(metrics: Metrics, *requests: bytes) -> list[bytes]:
    """Serve on an ephemeral port on a real loop, send each request from a thread, return the answers."""
    async def body() -> list[bytes]:
        await metrics.start("127.0.0.1:0")
        assert metrics._server is not None
        port = metrics._server.sockets[0].getsockname()[1]
        try:
            return [await asyncio.to_thread(http_get, port, r) for r in requests]
        finally:
            await metrics.close()
    return asyncio.run(body())


GET = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


def scraped(metrics: Metrics) -> Samples:
    answer = scrape(metrics, GET)[0]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"text/plain; version=0.0.4" in head
    return samples(body.decode())


def world() -> tuple[World, Metrics]:
    w = World()
    m = Metrics(w.r, kernel_errors=lambda: 3)
    return w, m


def step(w: World, m: Metrics, kind: str, action: Any) -> None:
    action()
    m.observe(kind, 0.002)


def test_sessions_routes_and_transitions_follow_the_events() -> None:
    w, m = world()
    step(w, m, "snapshot", lambda: w.apply("a", A))
    s = scraped(m)
    assert value(s, "bgpd_bgp_session_up", peer=M2, peer_ip="10.0.0.2", type="mesh") == 0
    assert value(s, "bgpd_session_state", peer=M2, state="Connect") == 1
    assert value(s, "bgpd_session_transitions_total", peer=M2) == 0
    step(w, m, "event", lambda: w.up(M2, M3))
    step(w, m, "event", lambda: w.receive(M2, P1, P2))
    s = scraped(m)
    assert value(s, "bgpd_bgp_session_up", peer=M2) == 1
    assert value(s, "bgpd_session_state", peer=M2, state="Established") == 1
    assert value(s, "bgpd_session_transitions_total", peer=M2) == 1
    assert value(s, "bgpd_routes_received", peer=M2) == 2 and value(s, "bgpd_routes_accepted", peer=M2) == 2
    assert value(s, "bgpd_routes_installed", peer=M2) == 2
    assert value(s, "bgpd_kernel_routes") == 3  # with the node's reachableBy route
    assert value(s, "bgpd_bgp_announced_prefixes_total", peer=M2) == 1  # the node's block
    assert value(s, "bgpd_routes_received", peer=M3) == 0
    step(w, m, "event", lambda: w.event(PeerState("10.0.0.2", "down", "peer closed")))
    s = scraped(m)
    assert value(s, "bgpd_bgp_session_up", peer=M2) == 0
    assert value(s, "bgpd_session_transitions_total", peer=M2) == 2
    assert value(s, "bgpd_routes_received", peer=M2) == 0 and value(s, "bgpd_kernel_routes") == 1


def test_store_exabgp_kernel_and_duration() -> None:
    w, m = world()
    step(w, m, "snapshot", lambda: w.apply("a", A))
    s = scraped(m)
    assert value(s, "bgpd_store_info", revision="a", source="file:///res") == 1
    assert value(s, "bgpd_store_stale") == value(s, "bgpd_store_errors") == 0
    assert value(s, "bgpd_configured") == 1
    assert value(s, "bgpd_kernel_install_errors_total") == 3
    assert value(s, "bgpd_exabgp_restarts_total") == 0 and value(s, "bgpd_exabgp_up") == 1
    error = ConfigError("peers.yaml", 2, "BGPPeer", "tor", "spec.asNumber", "not an AS number", "x")
    step(w, m, "snapshot", lambda: w.apply("bad", None, error, error))
    step(w, m, "event", lambda: w.event(SpeakerRestarted(2, "killed by SIGKILL")))
    s = scraped(m)
    assert value(s, "bgpd_store_info", revision="a") == 1  # the last good one still runs
    assert (value(s, "bgpd_store_stale"), value(s, "bgpd_store_errors")) == (1, 2)
    assert value(s, "bgpd_exabgp_restarts_total") == 2
    assert value(s, "bgpd_reconcile_duration_seconds_count", input="snapshot") == 2
    assert value(s, "bgpd_reconcile_duration_seconds_count", input="event") == 1
    assert value(s, "bgpd_reconcile_duration_seconds_bucket", input="event", le="0.005") == 1
    assert value(s, "bgpd_build_info", node="node-1") == 1


def test_a_removed_session_takes_its_series_with_it() -> None:
    from tests.unit.test_plan import node, session  # noqa: PLC0415

    w, m = world()
    step(w, m, "snapshot", lambda: w.apply("a", A))
    step(w, m, "event", lambda: w.up(M2))
    step(w, m, "snapshot", lambda: w.apply("b", node(session("10.0.0.3"))))
    s = scraped(m)
    assert not [k for k in s if ("peer", M2) in k[1]]
    assert value(s, "bgpd_bgp_session_up", peer=M3) == 0


def test_only_get_metrics_is_served() -> None:
    _w, m = world()
    answers = scrape(m, b"GET / HTTP/1.1\r\n\r\n", b"POST /metrics HTTP/1.1\r\n\r\n",
                     b"\x00\xff garbage\r\n\r\n", b"HEAD /metrics HTTP/1.0\r\n\r\n", GET)
    assert [a.split(b"\r\n")[0] for a in answers] == [
        b"HTTP/1.1 404 Not Found", b"HTTP/1.1 405 Method Not Allowed", b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"]
    assert answers[3].endswith(b"\r\n\r\n") and b"bgpd_configured 0.0" in answers[4]


def test_a_huge_or_unfinished_request_does_not_stop_the_endpoint() -> None:
    _w, m = world()
    answers = scrape(m, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n", GET)
    assert answers[0] == b"" and answers[1].startswith(b"HTTP/1.1 200 OK")
