"""The API bridge as ExaBGP runs it (default_bridge_command): bytes both ways, exit with either side,
and nothing imported beyond what it needs (it runs beside every ExaBGP, so its size counts)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bgpd.speaker.process import default_bridge_command

EVENTS = b"".join(b'{"type": "update", "n": %d}\n' % i for i in range(20000))  # ~0.5 MB, many chunks
COMMANDS = b"".join(b"announce route 10.%d.0.0/16 next-hop self\n" % (i % 256) for i in range(20000))


@contextmanager
def bridge(tmp_path: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[bytes], socket.socket]]:
    """A running bridge (ExaBGP's pipes on our side) and bgpd's end of its socket."""
    path = str(tmp_path / "api.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        argv = default_bridge_command()
        proc = subprocess.Popen([argv[0], *flags, *argv[1:], path], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            server.settimeout(30)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(30)
                yield proc, conn
        finally:
            proc.kill()
            proc.wait()


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := sock.recv(65536)):
        data += chunk
    return data


def test_relays_both_ways_unchanged_and_exits_when_bgpd_closes(tmp_path: Path) -> None:
    with bridge(tmp_path) as (proc, conn):
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None
        to_exabgp: list[bytes] = []
        # all at once: bgpd's commands, ExaBGP's events and both readers; neither side may wait for the other
        threads = [threading.Thread(target=lambda: to_exabgp.append(stdout.read(len(COMMANDS)))),
                   threading.Thread(target=lambda: (stdin.write(EVENTS), stdin.flush())),
                   threading.Thread(target=conn.sendall, args=(COMMANDS,))]
        for thread in threads:
            thread.start()
        assert receive(conn, len(EVENTS)) == EVENTS
        for thread in threads:
            thread.join(30)
        assert to_exabgp == [COMMANDS]
        conn.shutdown(socket.SHUT_RDWR)
        assert proc.wait(30) == 0
        assert stdout.read() == b""  # ExaBGP sees its API process go away


def test_exits_and_closes_bgpds_end_when_exabgp_closes_its_pipe(tmp_path: Path) -> None:
    with bridge(tmp_path) as (proc, conn):
        assert proc.stdin is not None
        proc.stdin.write(b"last event\n")
        proc.stdin.close()
        assert receive(conn, 1 << 20) == b"last event\n"  # then end of stream
        assert proc.wait(30) == 0


def test_imports_only_os_and_the_c_socket_and_thread_modules(tmp_path: Path) -> None:
    """socket/threading would add enum, selectors, ... (1.5 MB of RSS in every bridge)."""
    bare = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", "pass"],
                          capture_output=True, text=True, check=True).stderr
    with bridge(tmp_path, "-X", "importtime") as (proc, conn):
        conn.shutdown(socket.SHUT_RDWR)
        proc.wait(30)
        assert proc.stderr is not None
        imported = proc.stderr.read().decode()

    def modules(importtime: str) -> set[str]:
        lines = importtime.splitlines()
        return {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}

    extra = modules(imported) - modules(bare) - {"module"}  # "module": the header line
    assert {"_socket", "os"} <= extra <= {"_socket", "_thread", "os", "stat", "_stat", "posixpath",
                                                    "genericpath", "_collections_abc", "abc", "_abc"}
