"""The daemon's loop and its systemd notifications, with the reconciler's fakes and a real socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from bgpd.app import SystemdNotifier, _drive, handlers
from bgpd.model.errors import ConfigError
from bgpd.model.snapshot import Snapshot
from bgpd.speaker.codec import PeerState
from tests.unit.test_reconciler import M2, A, World


class RecordingNotifier:
    def __init__(self) -> None:
        self.turns: asyncio.Queue[None] = asyncio.Queue()

    def state(self, reconciler: Any) -> None:
        self.turns.put_nowait(None)


def test_drive_feeds_one_input_at_a_time_and_ticks_at_deadlines() -> None:
    async def main() -> None:
        w = World()
        w.nodes["a"] = A
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        notify = RecordingNotifier()
        task = asyncio.create_task(_drive(w.r, inbox, w.clock, notify))  # type: ignore[arg-type]
        inbox.put_nowait(Snapshot(revision="a"))
        await notify.turns.get()
        assert w.r.current == A
        inbox.put_nowait(PeerState("10.0.0.2", "up"))
        await notify.turns.get()
        assert w.r.status().sessions[0].established
        assert w.fib.sweeps == []
        w.clock.advance(300)  # the first-sweep deadline passes while inputs keep coming
        inbox.put_nowait(PeerState("10.0.0.3", "connected"))
        await notify.turns.get()
        assert len(w.fib.sweeps) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())


def test_status_handler_answers_the_report_json() -> None:
    w = World()
    w.apply("a", A)
    w.up(M2)
    result = asyncio.run(handlers(w.r)["status"]({}))
    assert result == w.r.status().to_json() | {"uptime": result["uptime"]}
    assert result["sessions"][0]["info"] == "Established"


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    yield sock
    sock.close()


def test_ready_after_the_first_applied_snapshot_then_status_on_change(notify_socket: socket.socket) -> None:
    w = World()
    notifier = SystemdNotifier()
    notifier.state(w.r)  # nothing applied yet: not ready
    assert notify_socket.recv(4096) == b"STATUS=waiting for a valid configuration"
    w.apply("bad", None, ConfigError("a.yaml", 1, "Node", "n", "spec", "bad"))
    notifier.state(w.r)
    assert notify_socket.recv(4096) == b"STATUS=waiting for a valid configuration (STALE: 1 error(s))"
    w.apply("a1b2c3d4e5f6a7b8", A)
    notifier.state(w.r)
    assert notify_socket.recv(4096) == (
        b"READY=1\nSTATUS=0/2 sessions established, 1 routes, revision a1b2c3d4e5f6")  # reachableBy
    notifier.state(w.r)  # unchanged: silent
    w.up(M2)
    notifier.state(w.r)
    assert notify_socket.recv(4096) == b"STATUS=1/2 sessions established, 1 routes, revision a1b2c3d4e5f6"


def test_watchdog_pings_from_the_loop(notify_socket: socket.socket) -> None:
    async def main() -> None:
        task = asyncio.create_task(SystemdNotifier().watchdog())
        data = await asyncio.get_running_loop().run_in_executor(None, notify_socket.recv, 4096)
        assert data == b"WATCHDOG=1"
        task.cancel()
    asyncio.run(main())


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = SystemdNotifier()
    notifier.send("READY=1")  # no socket: a no-op, not an error
    asyncio.run(notifier.watchdog())  # returns at once


def test_drain_is_answered_only_when_the_daemon_offers_it() -> None:
    w = World()
    calls: list[str] = []

    async def drain() -> dict[str, object]:
        calls.append("drain")
        return {"node": "n", "sessions": 1, "kernelRoutesRemoved": 2}

    assert "drain" not in handlers(w.r)
    result = asyncio.run(handlers(w.r, drain)["drain"]({}))
    assert (calls, result) == (["drain"], {"node": "n", "sessions": 1, "kernelRoutesRemoved": 2})
