"""The API helper ExaBGP spawns (`process bgpd { run python -m bgpd.speaker.bridge SOCKET; }`).

ExaBGP's only API is the stdin/stdout of a process it starts itself (reference/exabgp.md §0.1, §6.5),
so this relays bytes both ways between those pipes and bgpd's unix socket, unchanged. Standard library
only: it starts for every ExaBGP start and must start fast. When either side closes, it exits at once;
ExaBGP then exits too (`exabgp.api.terminate`) and bgpd's supervisor starts a fresh pair.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

CHUNK = 65536


def _to_bgpd(sock: socket.socket) -> None:
    """ExaBGP's events (our stdin) to bgpd. Never buffers: bgpd drains its end without stalling."""
    try:
        while chunk := os.read(0, CHUNK):
            sock.sendall(chunk)
    except OSError:
        pass
    os._exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m bgpd.speaker.bridge SOCKET\n")
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(argv[1])
    threading.Thread(target=_to_bgpd, args=(sock,), daemon=True).start()
    try:
        while chunk := sock.recv(CHUNK):  # bgpd's commands to ExaBGP (our stdout)
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view):]
    except OSError:
        pass
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
