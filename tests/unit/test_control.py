"""The control socket for real: a unix socket in a temp dir, bad requests, permissions, the client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpd.control.client import NotRunning, request
from bgpd.control.protocol import MAX_LINE, ProtocolError, decode_request, encode_request
from bgpd.control.server import MAX_CONNECTIONS, AlreadyRunning, ControlServer


async def _status(args: dict[str, Any]) -> Any:
    return {"node": "node-1", "args": args}


async def _boom(args: dict[str, Any]) -> Any:
    raise RuntimeError("secret detail")


def serve(tmp_path: Path, body: Callable[[ControlServer], Awaitable[None]]) -> None:
    async def main() -> None:
        server = ControlServer(tmp_path / "run" / "bgpd.sock", {"status": _status, "boom": _boom})
        await server.start()
        try:
            await body(server)
        finally:
            await server.close()
    asyncio.run(main())


async def exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    answers = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        answers.append(json.loads(await reader.readline()))
    writer.close()
    await writer.wait_closed()
    return answers


def test_status_request_over_the_socket(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        result = await asyncio.to_thread(request, server.path, "status", {"verbose": True})
        assert result == {"node": "node-1", "args": {"verbose": True}}
    serve(tmp_path, body)


def test_socket_and_directory_are_never_world_accessible(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        assert stat.S_IMODE(server.path.stat().st_mode) == 0o660
        assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o750
    serve(tmp_path, body)


BAD = [
    (b"not json\n", "bad JSON"),
    (b"[1,2]\n", "request must be a JSON object; got list"),
    (b'{"cmd":"status"}\n', "unsupported protocol version; got None, speaks 1"),
    (b'{"v":2,"cmd":"status"}\n', "unsupported protocol version; got 2, speaks 1"),
    (b'{"v":1}\n', "cmd must be a non-empty string; got None"),
    (b'{"v":1,"cmd":"status","args":[]}\n', "args must be a JSON object; got list"),
    (b'{"v":1,"cmd":"status","x":1}\n', "unknown request keys: x"),
    (b'{"v":1,"cmd":"reboot"}\n', "unknown command 'reboot'; known: boom, status"),
    (b"\xff\xfe\x00garbage\n", "bad JSON"),
    (b'{"v":1,"cmd":"boom"}\n', "internal error: RuntimeError"),
    (b"x" * (MAX_LINE + 10) + b"\n", f"request too long: more than {MAX_LINE} bytes"),
    (b"x" * (3 * MAX_LINE) + b"\n", f"request too long: more than {MAX_LINE} bytes"),
]


def test_bad_requests_get_clear_errors_and_the_connection_keeps_working(tmp_path: Path) -> None:
    good = encode_request("status")

    async def body(server: ControlServer) -> None:
        lines = [line for bad, _ in BAD for line in (bad, good)]
        answers = await exchange(server.path, *lines)
        for (_, message), error, ok in zip(BAD, answers[0::2], answers[1::2], strict=True):
            assert error["ok"] is False and error["v"] == 1
            assert error["error"].startswith(message), error
            assert "secret detail" not in error["error"]
            assert ok == {"v": 1, "ok": True, "result": {"node": "node-1", "args": {}}}
    serve(tmp_path, body)


def test_hammering_with_many_clients_leaves_the_server_serving(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        slots = asyncio.Semaphore(MAX_CONNECTIONS // 2)  # many at once, within the connection limit

        async def one(i: int) -> None:
            bad, _ = BAD[i % len(BAD)]
            async with slots:
                answers = await exchange(server.path, bad, encode_request("status"))
            assert answers[0]["ok"] is False and answers[1]["ok"] is True

        async def abrupt() -> None:  # half a request, then hang up
            async with slots:
                _, writer = await asyncio.open_unix_connection(str(server.path))
                writer.write(b'{"v":1,"cmd":')
                writer.close()

        await asyncio.gather(*(one(i) for i in range(200)), *(abrupt() for _ in range(50)))
        assert await asyncio.to_thread(request, server.path, "status") == {"node": "node-1", "args": {}}
    serve(tmp_path, body)


def test_last_line_without_newline_is_answered(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b'{"v":1,"cmd":"status"}')
        writer.write_eof()
        assert json.loads(await reader.readline())["ok"] is True
        writer.close()
    serve(tmp_path, body)


def test_client_says_when_the_daemon_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "bgpd.sock"
    with pytest.raises(NotRunning, match=f"bgpd is not running \\(no socket at {path}\\)"):
        request(path, "status")


def test_stale_socket_is_replaced_and_a_live_one_is_not_stolen(tmp_path: Path) -> None:
    path = tmp_path / "run" / "bgpd.sock"
    path.parent.mkdir()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    with pytest.raises(NotRunning, match="stale socket"):
        request(path, "status")

    async def body(server: ControlServer) -> None:
        second = ControlServer(path, {})
        with pytest.raises(AlreadyRunning):
            await second.start()
        assert await asyncio.to_thread(request, path, "status") == {"node": "node-1", "args": {}}
    serve(tmp_path, body)
    assert not os.path.exists(path)


def test_client_raises_the_daemons_error_text(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        with pytest.raises(ProtocolError, match="unknown command 'nope'"):
            await asyncio.to_thread(request, server.path, "nope")
    serve(tmp_path, body)


def test_decode_request_round_trip() -> None:
    assert decode_request(encode_request("status", {"a": 1})).args == {"a": 1}


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=512),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda children: st.lists(children, max_size=4)
                 | st.dictionaries(st.sampled_from(["v", "cmd", "args", "x"]), children, max_size=4),
                 max_leaves=12).map(lambda doc: json.dumps(doc).encode()),
))
def test_decode_request_never_fails_other_than_with_a_protocol_error(line: bytes) -> None:
    try:
        request_ = decode_request(line)
    except ProtocolError as exc:
        assert str(exc)
    else:
        assert isinstance(request_.cmd, str) and request_.cmd and isinstance(request_.args, dict)


def test_bgpd_status_command_prints_the_table_and_exits_by_readiness(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bgpd.cli import main  # noqa: PLC0415
    from tests.unit.test_status_format import R, report, sess  # noqa: PLC0415

    path = tmp_path / "s.sock"

    async def run_with(answer: dict[str, Any], *argv: str) -> int:
        async def status(args: dict[str, Any]) -> Any:
            return answer
        server = ControlServer(path, {"status": status})
        await server.start()
        try:
            return await asyncio.to_thread(main, ["status", "--socket", str(path), *argv])
        finally:
            await server.close()

    assert asyncio.run(run_with(R.to_json())) == 1
    out = capsys.readouterr().out
    assert out.startswith("bgpd is running on node node-1") and "| 10.0.0.254:1790 | global" in out
    up = report(sess("Mesh_10_0_0_2", "10.0.0.2", "Mesh"))
    assert asyncio.run(run_with(up.to_json(), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["sessions"][0]["info"] == "Established"
    assert main(["status", "--socket", str(path)]) == 3
    assert capsys.readouterr().err == f"bgpd status: bgpd is not running (no socket at {path})\n"


def serve_with(tmp_path: Path, body: Callable[[ControlServer], Awaitable[None]], **limits: Any) -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def slow(args: dict[str, Any]) -> Any:
            await release.wait()
            return "slow"

        server = ControlServer(tmp_path / "run" / "bgpd.sock", {"status": _status, "slow": slow}, **limits)
        server.release = release  # type: ignore[attr-defined]
        await server.start()
        try:
            await body(server)
        finally:
            release.set()
            await server.close()
    asyncio.run(main())


async def until_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything the server still sends before it closes the connection (guarded: never hangs)."""
    return await asyncio.wait_for(reader.read(), 10)


def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(b'{"v": 1, "cm')  # half a request, then nothing
        assert await until_eof(reader) == b""
        assert server.connections == 0
        writer.close()
    serve_with(tmp_path, body, idle_timeout=0.3)


def test_at_the_limit_the_longest_idle_connection_makes_room(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        held = [await asyncio.open_unix_connection(str(server.path)) for _ in range(2)]
        for reader, writer in held:  # each answered once, then idle: the first is idle longest
            writer.write(encode_request("status"))
            assert json.loads(await reader.readline())["ok"] is True
        assert await exchange(server.path, encode_request("status")) == [
            {"v": 1, "ok": True, "result": {"node": "node-1", "args": {}}}]
        evicted = json.loads(await until_eof(held[0][0]))
        assert evicted == {"v": 1, "ok": False,
                           "error": "closed: too many connections (at most 2), and this one was idle the "
                                    "longest"}
        held[1][1].write(encode_request("status"))  # the other one still works
        assert json.loads(await held[1][0].readline())["ok"] is True
        for _, writer in held:
            writer.close()
    serve_with(tmp_path, body, max_connections=2)


def test_at_the_limit_with_every_connection_busy_a_new_one_gets_an_error(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        busy = [await asyncio.open_unix_connection(str(server.path)) for _ in range(2)]
        for _, writer in busy:
            writer.write(encode_request("slow"))
        while server.connections < 2 or any(t is not None for t in server._open.values()):
            await asyncio.sleep(0.01)  # both requests are being handled
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        assert json.loads(await until_eof(reader)) == {
            "v": 1, "ok": False, "error": "too many connections (at most 2 at a time); try again later"}
        server.release.set()  # type: ignore[attr-defined]
        for reader, writer in busy:
            assert json.loads(await reader.readline())["result"] == "slow"
            writer.close()
    serve_with(tmp_path, body, max_connections=2)
