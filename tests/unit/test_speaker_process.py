"""ExaBGPSpeaker's channel and supervision, against a stand-in `exabgp` (no root, no BGP).

The stand-in behaves like ExaBGP towards its API process: it starts the `run` command of the config,
writes event lines to its stdin and answers every command line with `done` (or `error` for `bogus`).
What it does is set per run by files next to it, so each test can make ExaBGP flood, crash or idle.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bgpd.desired import DesiredNode
from bgpd.speaker.codec import PeerState, RoutesReceived, SpeakerRestarted
from bgpd.speaker.config import ExaBGPCommand, SpeakerSettings
from bgpd.speaker.process import ExaBGPSpeaker, SpeakerUnavailable, default_bridge_command
from tests.unit.test_speaker_config import session

FAKE = r'''#!PYTHON
import os, re, subprocess, sys, threading
here = os.path.dirname(os.path.abspath(__file__))
if sys.argv[1] == "validate":
    sys.exit(0)
runs = os.path.join(here, "runs")
n = int(open(runs).read()) + 1 if os.path.exists(runs) else 1
open(runs, "w").write(str(n))
mode_file = os.path.join(here, f"mode{n}")
mode = open(mode_file).read().strip() if os.path.exists(mode_file) else "idle"
print(f"fake exabgp run {n} mode {mode}", flush=True)
if mode == "segv":
    import signal
    os.kill(os.getpid(), signal.SIGSEGV)
if mode == "crash":
    print("boom: something broke", flush=True)
    sys.exit(3)
conf = open(sys.argv[2]).read()
argv = re.search(r"run (.*);", conf).group(1).split()
helper = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def answer():
    for line in helper.stdout:
        helper.stdin.write(b"error\n" if b"bogus" in line else b"done\n")
        helper.stdin.flush()
threading.Thread(target=answer, daemon=True).start()
NEIGHBOR = '"neighbor": { "address": { "local": "10.0.0.1", "peer": "10.0.0.2" }, '
STATE = '{ "exabgp": "5.0.0", "type": "state", ' + NEIGHBOR + '"state": "up" } }\n'
NLRIS = ", ".join('{ "nlri": "10.%d.%d.0/24" }' % (i // 256, i % 256) for i in range(200))
UPDATE = ('{ "exabgp": "5.0.0", "type": "update", ' + NEIGHBOR + '"direction": "receive", "message": { '
          '"update": { "attribute": { "origin": "igp" }, "announce": { "ipv4 unicast": { "10.0.0.2": [ '
          + NLRIS + ' ] } } } } } }\n')
helper.stdin.write(STATE.encode()); helper.stdin.flush()
if mode.startswith("flood"):
    for _ in range(int(mode.split()[1])):
        helper.stdin.write(UPDATE.encode())   # blocks, as ExaBGP does, if nobody reads
    helper.stdin.flush()
    open(os.path.join(here, "flooded"), "w").close()
threading.Event().wait()
'''


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    script = tmp_path / "fake" / "exabgp"
    script.parent.mkdir()
    script.write_text(FAKE.replace("PYTHON", sys.executable))
    script.chmod(0o755)
    return script


def speaker_for(fake: Path, tmp_path: Path) -> tuple[ExaBGPSpeaker, DesiredNode]:
    run_dir = tmp_path / "run"
    settings = SpeakerSettings(bridge_command=default_bridge_command(), api_socket=str(run_dir / "api.sock"),
                               exabgp=str(fake), node_ipv4="10.0.0.1")
    desired = DesiredNode(node="n", as_number=64512, router_id="10.0.0.1", listen_port=None,
                          sessions=(session(),))
    return ExaBGPSpeaker(settings, run_dir, manage_gtsm=False), desired


async def until(what: str, check: Callable[[], bool], deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_reader_never_stalls_exabgp_while_nobody_consumes_events(fake: Path, tmp_path: Path) -> None:
    (fake.parent / "mode1").write_text("flood 3000")  # ~20 MB: far beyond every pipe and socket buffer

    async def main() -> None:
        speaker, desired = speaker_for(fake, tmp_path)
        await speaker.start(desired)
        try:
            await until("the stand-in wrote everything", (fake.parent / "flooded").exists)
            received = 0
            async for event in speaker.events():  # only now does anyone consume
                if isinstance(event, RoutesReceived):
                    received += len(event.prefixes)
                    if received == 3000 * 200:
                        break
            assert speaker.established == {"10.0.0.2"}
        finally:
            await speaker.stop()

    asyncio.run(main())


def test_send_counts_unordered_acks(fake: Path, tmp_path: Path) -> None:
    async def main() -> None:
        speaker, desired = speaker_for(fake, tmp_path)
        await speaker.start(desired)
        try:
            result = await speaker.send(["neighbor 10.0.0.2 announce eor ipv4 unicast", "bogus", "version"])
            assert (result.done, result.errors) == (2, 1)
            assert (await speaker.send([])).done == 0
        finally:
            await speaker.stop()
        with pytest.raises(SpeakerUnavailable):
            await ExaBGPSpeaker(speaker._settings, tmp_path / "other", manage_gtsm=False).send(["version"])

    asyncio.run(main())


def test_crashed_exabgp_is_restarted_with_reason_and_restart_event(fake: Path, tmp_path: Path) -> None:
    (fake.parent / "mode1").write_text("idle")
    (fake.parent / "mode2").write_text("crash")

    async def main() -> None:
        speaker, desired = speaker_for(fake, tmp_path)
        await speaker.start(desired)
        events = []

        async def consume() -> None:
            async for event in speaker.events():
                events.append(event)

        task = asyncio.create_task(consume())
        try:
            await until("up", lambda: PeerState("10.0.0.2", "up") in events)
            first = speaker.pid
            assert first is not None
            os.kill(first, 9)
            await until("two restarts", lambda: sum(isinstance(e, SpeakerRestarted) for e in events) >= 2)
            restarts = [e for e in events if isinstance(e, SpeakerRestarted)]
            assert restarts[0] == SpeakerRestarted(1, "killed by signal SIGKILL: fake exabgp run 1 mode idle")
            assert restarts[1] == SpeakerRestarted(2, "exit status 3: boom: something broke")
            assert PeerState("10.0.0.2", "down", "exabgp exited (killed by signal SIGKILL: fake exabgp run 1 "
                             "mode idle)", local=True) in events[:events.index(restarts[0])]
            await until("up again on the third run", lambda: events.count(PeerState("10.0.0.2", "up")) == 2)
            assert speaker.restarts == 2 and (await speaker.send(["version"])).done == 1
        finally:
            await speaker.stop()
            task.cancel()
        assert not speaker.config_path.exists() and not Path(speaker._settings.api_socket).exists()

    asyncio.run(main())


def test_a_crashed_pypy_exabgp_is_restarted_under_cpython(fake: Path, tmp_path: Path) -> None:
    (fake.parent / "mode1").write_text("segv")

    async def main() -> None:
        speaker, desired = speaker_for(fake, tmp_path)
        pypy = ExaBGPCommand((sys.executable, str(fake)), (("PYPY_GC_NURSERY", "16M"),), "pypy")
        speaker._settings = replace(speaker._settings, launcher=pypy)
        await speaker.start(desired)
        try:
            await until("restarted", lambda: speaker.restarts == 1 and speaker.pid is not None)
            assert speaker.last_exit is not None and "SIGSEGV" in speaker.last_exit
            assert speaker._settings.command == ExaBGPCommand((str(fake),))  # CPython from now on
            assert (await speaker.send(["version"])).done == 1
        finally:
            await speaker.stop()

    asyncio.run(main())


def test_lost_bridge_makes_the_speaker_restart_exabgp(fake: Path, tmp_path: Path) -> None:
    async def main() -> None:
        speaker, desired = speaker_for(fake, tmp_path)
        await speaker.start(desired)
        events = []

        async def consume() -> None:
            async for event in speaker.events():
                events.append(event)

        task = asyncio.create_task(consume())
        try:
            await until("up", lambda: PeerState("10.0.0.2", "up") in events)
            exabgp = speaker.pid
            bridges = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                       and _ppid(p) == exabgp]
            assert len(bridges) == 1
            os.kill(bridges[0], 9)  # ExaBGP itself would keep running without its API
            await until("restart", lambda: any(isinstance(e, SpeakerRestarted) for e in events))
            assert speaker.last_exit == "killed by signal SIGTERM: stopped by bgpd: the API bridge went away"
            assert (await speaker.send(["version"])).done == 1
        finally:
            await speaker.stop()
            task.cancel()

    asyncio.run(main())


def _ppid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return None
