"""KernelFib: the one place that changes kernel routes (I/O; encoding lives in codec.py).

Install path: changes are packed from templates (codec.RouteCodec) into chunks of up to CHUNK
messages, each chunk goes to the kernel in one sendto() without NLM_F_ACK, and after each chunk the
socket is drained without blocking. The kernel processes a netlink sendto() synchronously in the sender's
context, so when sendto() returns every error of that chunk is already queued: draining per chunk
bounds what waits in the receive buffer, and nothing ever blocks on a per-route reply. If the
kernel still had to drop error replies (ENOBUFS), ApplyResult.overrun says so and the caller
resyncs from dump().

Ownership: installs use our metric (see codec: NLM_F_REPLACE only replaces a route with the same
metric), deletes name our protocol, table and metric, and dump() asks the kernel for our protocol
and table only, so routes of other protocols are never read back as ours nor touched.

Limits: a route of another protocol with the same prefix AND our metric in our table would be
replaced by an install (the kernel matches REPLACE on metric, not protocol); the metric setting
exists to avoid that. Next hops are plain addresses resolved by the kernel (no link-local IPv6
next hops with an interface, no IPv4-via-IPv6).

Asyncio: the methods are synchronous and not thread-safe. Call them from ONE worker thread, e.g.
``loop.run_in_executor(fib_executor, fib.apply, changes)`` with a ThreadPoolExecutor(max_workers=1):
sendto() releases the GIL while the kernel installs routes, so the event loop keeps running on
the second core. 100k routes take about 0.3-0.4 s on an idle 2-core machine, about twice as fast
as `ip -batch` (netns-lab/bench/kernel_install).
"""

from __future__ import annotations

import errno as errnos
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyroute2 import netns as pyroute2_netns

from bgpd.kernel import codec
from bgpd.kernel.codec import FibChange, NetlinkError, Route
from bgpd.rib.fib import fib_size

SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
SOL_NETLINK = 270
NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 11, 12
BUFFER_BYTES = 32 << 20
RECV_BYTES = 1 << 20


@dataclass(frozen=True)
class ApplyResult:
    """What became of one apply(): ``errors`` maps prefix -> reason for changes that failed."""

    sent: int
    errors: dict[str, str] = field(default_factory=dict)
    overrun: bool = False  # the kernel dropped error replies: some failures may be unreported

    @property
    def ok(self) -> bool:
        return not self.errors and not self.overrun


def _reason(err: NetlinkError) -> str:
    name = errnos.errorcode.get(err.errno, str(err.errno))
    text = err.message or os.strerror(err.errno)
    return f"{name}: {text}"


class KernelFib:
    """Routes of one (table, protocol) in the current or a named network namespace."""

    CHUNK = 4096  # messages per sendto(): ~300 KB, ~10 ms of kernel time
    PIECE = 256  # messages encoded between two chances for the sender to take the GIL

    def __init__(self, table: int = codec.DEFAULT_TABLE, protocol: int = codec.DEFAULT_PROTOCOL,
                 netns: str | None = None, *, metric: int = codec.DEFAULT_METRIC,
                 overlap: bool = True) -> None:
        self.overlap = overlap  # False: encode and send in turn on the calling thread only
        self.codec = codec.RouteCodec(table, protocol, metric)
        self.table, self.protocol, self.metric = table, protocol, metric
        self._sock = _netlink_socket(netns)
        self._setup_socket()
        self._seq = 1
        self._rbuf = bytearray(RECV_BYTES)

    def _setup_socket(self) -> None:
        s = self._sock
        for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
            try:
                s.setsockopt(socket.SOL_SOCKET, force, BUFFER_BYTES)
            except PermissionError:
                s.setsockopt(socket.SOL_SOCKET, plain, BUFFER_BYTES)
        # Errors carry the kernel's text; dumps filter in the kernel. NETLINK_CAP_ACK stays off: an
        # error echoes the whole request, whose destination names the route that failed.
        for opt in (NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
            s.setsockopt(SOL_NETLINK, opt, 1)
        s.bind((0, 0))

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> KernelFib:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes
    def apply(self, changes: Iterable[FibChange]) -> ApplyResult:
        """Install/replace (nexthops set) or delete (nexthops None) routes; never waits per route."""
        return self._send(list(changes))

    def sweep(self, keep: set[str]) -> ApplyResult:
        """Delete our routes whose prefix is not in ``keep`` (or that carry an old metric)."""
        canonical: set[str] | None = None
        doomed: dict[int, list[str]] = {}
        for route in self.routes():
            if route.metric == self.metric:
                if route.prefix in keep:
                    continue
                if canonical is None:  # callers normally use the kernel's spelling; pay only if not
                    canonical = {_canonical_or_self(p) for p in keep}
                if route.prefix in canonical:
                    continue
            doomed.setdefault(route.metric, []).append(route.prefix)
        results = [self._send([FibChange(tuple(doomed_prefixes), None)], metric)
                   for metric, doomed_prefixes in doomed.items()]
        return ApplyResult(sum(r.sent for r in results),
                           {k: v for r in results for k, v in r.errors.items()},
                           any(r.overrun for r in results))

    def _send(self, changes: list[FibChange], metric: int | None = None) -> ApplyResult:
        """Encode on this thread while a sender thread has the kernel install what is encoded.

        sendto() releases the GIL while the kernel works, so the two overlap on two cores. The
        encoder works in pieces of PIECE routes and yields the GIL after each, so the sender never
        waits a whole switch interval (5 ms) for it while the kernel sits idle; the sender joins the
        pieces it finds queued into one sendto() of up to CHUNK routes. Every message of this batch
        carries one sequence number: its errors name their route in the echoed request.
        """
        seq = self._seq
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        errors: dict[str, str] = {}
        count = fib_size(changes)
        sender = _Sender(self, seq, errors) if self.overlap and count > self.CHUNK else None
        overrun = False
        try:
            for piece in codec.split(changes, self.PIECE if sender is not None else self.CHUNK):
                buf, rejected = self.codec.encode(piece, seq, metric)
                errors.update(rejected)
                if sender is not None:
                    sender.put(buf)
                    time.sleep(0)  # hand the GIL to the sender if it is back from the kernel
                else:
                    overrun |= self._send_chunk(buf, seq, errors)
        finally:
            if sender is not None:
                overrun |= sender.finish()
        return ApplyResult(count, errors, overrun)

    def _send_chunk(self, buf: bytes, seq: int, errors: dict[str, str]) -> bool:
        if buf:
            self._sock.send(buf)
        return self._drain(seq, errors)

    def _drain(self, seq: int, errors: dict[str, str]) -> bool:
        """Collect queued NLMSG_ERRORs of batch ``seq`` without blocking; True if the kernel dropped some."""
        overrun = False
        rbuf = self._rbuf
        while True:
            try:
                n = self._sock.recv_into(rbuf, RECV_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return overrun
            except OSError as exc:
                if exc.errno != errnos.ENOBUFS:
                    raise
                overrun = True
                continue
            data = bytes(rbuf[:n])
            for off, length, mtype, mseq in codec.iter_messages(data):
                if mtype != codec.NLMSG_ERROR or mseq != seq:
                    continue  # not one of this batch's requests
                err = codec.parse_error(data, off, length)
                if err.errno == 0 or (err.request_type == codec.RTM_DELROUTE and err.errno == errnos.ESRCH):
                    continue  # deleting what is already gone is success
                errors[err.prefix or f"request {seq}"] = _reason(err)

    # ------------------------------------------------------------------ reads
    def dump(self) -> dict[str, Route]:
        """Our routes (our protocol, our table), by prefix; adoption reads this on start."""
        return self.by_prefix(self.routes())

    def by_prefix(self, routes: list[Route]) -> dict[str, Route]:
        """``routes`` by prefix; of a prefix held under two metrics, the one with ours."""
        out: dict[str, Route] = {}
        for route in routes:
            if route.prefix not in out or route.metric == self.metric:
                out[route.prefix] = route
        return out

    def routes(self) -> list[Route]:
        """Every route of ours (our protocol, our table), whatever its metric."""
        routes: list[Route] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            seq = self._seq
            self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
            self._sock.send(codec.dump_request(family, self.table, self.protocol, seq))
            decoder = codec.RouteDecoder(self.table, self.protocol)
            while self._dump_part(seq, routes, decoder):
                pass
        return routes

    def _dump_part(self, seq: int, routes: list[Route], decoder: codec.RouteDecoder) -> bool:
        """Read one datagram of a dump into ``routes``; False once the dump is done."""
        n = self._sock.recv_into(self._rbuf, RECV_BYTES)
        data = bytes(self._rbuf[:n])
        more = True
        for off, length, mtype, mseq in codec.iter_messages(data):
            if mseq != seq:
                continue  # a late error from an earlier batch: already reported or moot
            if mtype == codec.NLMSG_DONE:
                more = False
            elif mtype == codec.NLMSG_ERROR:
                err = codec.parse_error(data, off, length)
                raise OSError(err.errno, f"route dump failed: {_reason(err)}")
            elif mtype == codec.RTM_NEWROUTE:
                route = decoder.decode(data, off, length)
                if route is not None:
                    routes.append(route)
        return more


class _Sender:
    """The thread that sends encoded chunks and drains their errors, in order."""

    def __init__(self, fib: KernelFib, seq: int, errors: dict[str, str]):
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)  # bounds what waits
        self._args = (seq, errors)
        self._fib = fib
        self._overrun = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kernel-fib-sender", daemon=True)
        self._thread.start()

    def put(self, buf: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        self._queue.put(buf)

    def finish(self) -> bool:
        self._queue.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self._overrun

    def _run(self) -> None:
        done = False
        while not done:
            buf = self._queue.get()
            done = buf is None
            pieces = [] if buf is None else [buf]
            while not done and len(pieces) * KernelFib.PIECE < KernelFib.CHUNK:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                done = more is None
                if more is not None:
                    pieces.append(more)
            if self._failure is not None or not pieces:
                continue  # keep consuming so put() never blocks forever
            try:
                self._overrun |= self._fib._send_chunk(b"".join(pieces), *self._args)
            except BaseException as exc:
                self._failure = exc


def _netlink_socket(netns: str | None) -> socket.socket:
    """A NETLINK_ROUTE socket in ``netns`` (a name under /run/netns; None = ours).

    A socket stays in the namespace it was created in, so a short-lived thread enters the
    namespace (setns moves only the calling thread) and creates it. Not pyroute2's create_socket:
    that forks, and a forked child that catches a signal unwinds a copy of the caller's stack.
    """
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def create() -> None:
        try:
            pyroute2_netns.setns(netns, flags=0)  # flags=0: never create the namespace
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=create, name="kernel-fib-netns")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def _canonical_or_self(prefix: str) -> str:
    try:
        return codec.canonical_prefix(prefix)
    except codec.InvalidChange:
        return prefix
