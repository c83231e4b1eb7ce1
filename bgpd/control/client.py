"""A small synchronous client of the control socket, for the CLI."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from bgpd.control.protocol import MAX_LINE, ProtocolError, decode_response, encode_request

DEFAULT_TIMEOUT = 10.0


class NotRunning(Exception):
    pass


def request(path: str | Path, cmd: str, args: dict[str, Any] | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Send one request and return its result; ProtocolError carries the daemon's error text."""
    with _connect(Path(path), timeout) as sock:
        sock.sendall(encode_request(cmd, args))
        return decode_response(_read_line(sock))


def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        sock.close()
        raise NotRunning(f"bgpd is not running (no socket at {path})") from None
    except ConnectionRefusedError:
        sock.close()
        raise NotRunning(f"bgpd is not running (stale socket at {path})") from None
    except PermissionError:
        sock.close()
        raise NotRunning(f"permission denied on {path} (are you root or in group bgpd?)") from None
    except OSError:
        sock.close()
        raise
    return sock


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    try:
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = sock.recv(MAX_LINE)
            if not chunk:
                raise ProtocolError("bgpd closed the connection without an answer")
            chunks.append(chunk)
    except TimeoutError:
        raise ProtocolError("bgpd did not answer in time") from None
    return b"".join(chunks)
