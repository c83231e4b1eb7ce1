"""The asyncio unix-socket server of the control protocol.

The socket is never world-accessible: its directory is created 0750, the socket is bound under a
umask that leaves 0660 and is then chowned to group ``bgpd`` when that group exists.

A client cannot hold the daemon's file descriptors: a connection idle for IDLE_TIMEOUT seconds (no
request, or an answer it does not read) is closed, and at most MAX_CONNECTIONS are open at a time.
At the limit, the connection that has waited longest for a request makes room (it gets an error line
and is closed), so half-open connections cannot lock `bgpd status` out; when every connection is
busy with a request, the new one gets the error line and is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from bgpd.control.protocol import MAX_LINE, ProtocolError, decode_request, encode_error, encode_result

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
GROUP = "bgpd"
SOCKET_MODE = 0o660
DIR_MODE = 0o750
BACKLOG = 1024  # a burst of `bgpd status` probes must queue, not be refused
IDLE_TIMEOUT = 30.0
MAX_CONNECTIONS = 64

log = structlog.get_logger("bgpd.control")


class AlreadyRunning(Exception):
    pass


class ControlServer:
    def __init__(self, path: str | Path, handlers: Mapping[str, Handler], *,
                 idle_timeout: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> None:
        self.path = Path(path)
        self.handlers = dict(handlers)
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._open: dict[asyncio.StreamWriter, float | None] = {}  # -> idle since (None: busy)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        _remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # the socket is born 0660: no window where it is wider
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, SOCKET_MODE)
        with contextlib.suppress(KeyError, PermissionError):
            os.chown(self.path, -1, grp.getgrnam(GROUP).gr_gid)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE + 2,
                                                        backlog=BACKLOG)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= self.max_connections and not self._evict_idlest():
            log.warning("control_connection_refused", limit=self.max_connections,
                        reason="too many connections, all busy")
            writer.write(encode_error(f"too many connections (at most {self.max_connections} at a time); "
                                      "try again later"))
            await self._close(writer)  # the line fits the socket buffer: no drain to wait on
            return
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._open[writer] = loop.time()
                line = await asyncio.wait_for(_read_line(reader), self.idle_timeout)
                if line is None or writer not in self._open:  # EOF, or evicted meanwhile
                    break
                self._open[writer] = None
                writer.write(await self._answer(line))
                await asyncio.wait_for(writer.drain(), self.idle_timeout)
        except TimeoutError:
            log.info("control_connection_closed", reason=f"idle for {self.idle_timeout:g} s")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._open.pop(writer, None)
            await self._close(writer)

    @property
    def connections(self) -> int:
        return len(self._open)

    def _evict_idlest(self) -> bool:
        """Close the connection waiting longest for a request; False when every one is busy."""
        idle = [(since, id(w), w) for w, since in self._open.items() if since is not None]
        if not idle:
            return False
        _, _, writer = min(idle)
        del self._open[writer]
        log.info("control_connection_closed", reason="idle the longest at the connection limit")
        writer.write(encode_error(f"closed: too many connections (at most {self.max_connections}), "
                                  "and this one was idle the longest"))
        writer.close()  # its reader sees EOF and its task ends
        return True

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close, and drop what a client that does not read leaves unsent after the idle timeout."""
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), self.idle_timeout)
        except TimeoutError:
            writer.transport.abort()
        except ConnectionError:
            pass

    async def _answer(self, line: bytes | ProtocolError) -> bytes:
        try:
            if isinstance(line, ProtocolError):
                raise line
            request = decode_request(line)
            handler = self.handlers.get(request.cmd)
            if handler is None:
                known = ", ".join(sorted(self.handlers))
                raise ProtocolError(f"unknown command {request.cmd!r}; known: {known}")
            return encode_result(await handler(request.args))
        except ProtocolError as exc:
            return encode_error(str(exc))
        except Exception as exc:  # a handler bug must not take the daemon or the connection down
            log.exception("control_handler_failed", reason=str(exc))
            return encode_error(f"internal error: {type(exc).__name__}")


async def _read_line(reader: asyncio.StreamReader) -> bytes | ProtocolError | None:
    """The next line, a ProtocolError for an overlong one (skipped up to its newline), None at EOF."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial or None  # a last line without newline still gets its answer
    except asyncio.LimitOverrunError:
        await _skip_line(reader)
        return ProtocolError(f"request too long: more than {MAX_LINE} bytes")
    return line


async def _skip_line(reader: asyncio.StreamReader) -> None:
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return


def _remove_stale(path: Path) -> None:
    """Remove a socket left by a dead daemon; refuse to steal one a live daemon is serving."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AlreadyRunning(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise AlreadyRunning(f"another bgpd is serving {path}")
