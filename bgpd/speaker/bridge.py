"""The API helper ExaBGP spawns (`process bgpd { run python -I -S .../bridge.py SOCKET; }`).

ExaBGP's only API is the stdin/stdout of a process it starts itself (reference/exabgp.md §0.1, §6.5),
so this relays bytes both ways between those pipes and bgpd's unix socket, unchanged. When either side
closes, it exits at once; ExaBGP then exits too (`exabgp.api.terminate`) and bgpd's supervisor starts a
fresh pair.

Small, because one runs beside every ExaBGP: standard library only, and of that only `os` and the C
modules under `socket` and `threading` (`_socket`, `_thread`, both documented). The Python wrappers
would pull in enum, selectors, array, weakref sets... for nothing used here: peak RSS 10.4 MB with them,
8.8 MB without (CPython 3.11 `-I -S`, whose bare start is 8.4 MB). One thread per direction, because
ExaBGP blocks on its writes to us (§0.2): a single loop blocked writing a command to ExaBGP while
ExaBGP is blocked writing an event to us would deadlock.
"""

import _socket
import _thread
import os
import sys

CHUNK = 65536


def _to_bgpd(sock: _socket.socket) -> None:
    """ExaBGP's events (our stdin) to bgpd. Never buffers: bgpd drains its end without stalling."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    try:
        while size := os.readv(0, (buffer,)):
            sock.sendall(view[:size])
    except OSError:
        pass
    os._exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -I -S bridge.py SOCKET\n")
        return 2
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.connect(argv[1])
    _thread.start_new_thread(_to_bgpd, (sock,))
    buffer = memoryview(bytearray(CHUNK))
    try:
        while size := sock.recv_into(buffer):  # bgpd's commands to ExaBGP (our stdout)
            view = buffer[:size]
            while view:
                view = view[os.write(1, view):]
    except OSError:
        pass
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
