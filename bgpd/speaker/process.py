"""Run and supervise the ExaBGP child and talk to it over the API bridge (asyncio, I/O).

Life cycle: `start()` opens the API unix socket in a private run directory, writes the rendered config
(0600) and starts ExaBGP (own process group, SIGTERM when bgpd dies, no secret in its argv). ExaBGP
spawns the bridge (`bgpd.speaker.bridge`), which connects to the socket; from then on events flow in
and commands flow out.

Rules from the lab (reference/exabgp.md):
- ExaBGP's writes to the bridge block its whole reactor (§0.2): the socket is read by a task that only
  appends raw bytes to an internal queue; decoding runs in another task and events wait in an unbounded
  queue, so a slow consumer of `events()` can never stall keepalives.
- Acks are bare, unordered `done`/`error` lines (§0.3): `send()` serialises batches and counts them.
- Reload (SIGUSR1) adds, removes and changes neighbors without touching the others (§7), which is how a
  config change resets only the sessions whose parameters changed.
- ExaBGP keeps no state across its own restart. After a restart the speaker emits `SpeakerRestarted`;
  the caller must announce every route again and only then send End-of-RIB per session and family
  (`manual-eor`), so GR peers keep our stale routes until the replay is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from bgpd.desired import DesiredNode
from bgpd.speaker import bridge
from bgpd.speaker.coalesce import coalesce
from bgpd.speaker.codec import (
    Ack,
    CodecError,
    Event,
    PeerState,
    SpeakerRestarted,
    decode_line,
    teardown,
)
from bgpd.speaker.config import SpeakerSettings, environment, render_config
from bgpd.speaker.gtsm import GtsmRule, apply_rules, gtsm_rules, remove_rules

log = structlog.get_logger("bgpd.speaker")

PR_SET_PDEATHSIG = 1
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
STABLE_RUN = 60.0  # a run this long resets the backoff
STOP_TIMEOUT = 10.0
BRIDGE_GRACE = 1.0  # for ExaBGP to exit by itself when its bridge went away
CONNECT_TIMEOUT = 30.0  # how long send() waits for a (re)starting ExaBGP's bridge
DRAIN_FLUSH = 1.0  # seconds for ExaBGP to put queued withdraws on the wire (see drain())
LOG_TAIL = 20
RELOADED = "loaded new configuration successfully"  # ExaBGP's reactor log line after a reload
RELOAD_CONFIRM = 1.0  # seconds to wait for it before signalling again
# An interpreter crash, not an exit ExaBGP chose or a signal someone sent: PyPy was seen to SIGSEGV
# under heavy load. Once is enough to stop trusting it on this host: later runs use CPython.
_CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT})
RELOAD_ATTEMPTS = 10
VALIDATE_ATTEMPTS = 3  # `exabgp validate` runs killed by a signal before it counts as a refusal


class SpeakerUnavailable(ConnectionError):
    """ExaBGP went away while commands were waiting for their acks."""


@dataclass(frozen=True)
class SendResult:
    done: int
    errors: int


def default_bridge_command() -> tuple[str, ...]:
    """The bridge by file path, isolated (-I) and without site (-S): it needs only the stdlib."""
    return (sys.executable, "-I", "-S", str(Path(bridge.__file__).resolve()))


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when bgpd dies (GR-friendly: no NOTIFICATION is sent)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ExaBGPSpeaker:
    """One supervised ExaBGP child for one node."""

    def __init__(self, settings: SpeakerSettings, run_dir: Path, command_prefix: Sequence[str] = (),
                 manage_gtsm: bool = True) -> None:
        # command_prefix runs ExaBGP (and nft) elsewhere (e.g. `ip netns exec NS`); it must exec, not fork.
        # manage_gtsm=False leaves nftables alone (tests without a namespace of their own).
        self._settings = settings
        self._run_dir = run_dir
        self._prefix = tuple(command_prefix)
        self.config_path = run_dir / "exabgp.conf"
        self.restarts = 0
        self.last_exit: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._raw: deque[bytes] = deque()
        self._raw_ready = asyncio.Event()
        self._acks = 0
        self._errors = 0
        self._ack_changed = asyncio.Condition()
        self._generation = 0
        self._send_lock = asyncio.Lock()
        self._up: set[str] = set()
        self._state_changed = asyncio.Condition()
        self._log_tail: deque[str] = deque(maxlen=LOG_TAIL)
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._gtsm: tuple[GtsmRule, ...] = ()
        self._manage_gtsm = manage_gtsm
        self._kill_reason: str | None = None  # why bgpd itself stopped the child, for last_exit
        self._reloaded = asyncio.Event()  # ExaBGP logged that it loaded the configuration again
        self._reload_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------- public interface

    @property
    def pid(self) -> int | None:
        return None if self._proc is None or self._proc.returncode is not None else self._proc.pid

    @property
    def established(self) -> frozenset[str]:
        return frozenset(self._up)

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start(self, desired: DesiredNode) -> None:
        """Listen on the API socket and start ExaBGP. ValueError when ExaBGP refuses the config."""
        self._run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._run_dir, 0o700)
        await self._validate(desired)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._settings.api_socket)
        self._server = await asyncio.start_unix_server(self._on_bridge, path=self._settings.api_socket)
        os.chmod(self._settings.api_socket, 0o600)
        self._write_config(desired)
        await self._apply_gtsm(desired, force=True)  # also clears what a crashed run left behind
        self._tasks.append(asyncio.create_task(self._decode_loop(), name="exabgp-decode"))
        await self._spawn()
        self._tasks.append(asyncio.create_task(self._supervise(), name="exabgp-supervise"))

    async def events(self) -> AsyncIterator[Event]:
        """Decoded events (acks excluded) until the speaker is stopped."""
        while True:
            event = await self._events.get()
            yield event  # runs until the consumer stops iterating (stop() does not end it)

    async def send(self, commands: Sequence[str]) -> SendResult:
        """Write the commands and wait until each has its ack. Raises SpeakerUnavailable if ExaBGP dies."""
        if not commands:
            return SendResult(0, 0)
        if not self.started:
            raise SpeakerUnavailable("the speaker is not started")
        async with self._send_lock:
            try:
                await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)
            except TimeoutError:
                raise SpeakerUnavailable(f"ExaBGP not connected ({self.last_exit or 'starting'})") from None
            generation, writer = self._generation, self._writer
            assert writer is not None
            acks_before, errors_before = self._acks, self._errors
            writer.write("".join(f"{c}\n" for c in commands).encode())
            await writer.drain()
            async with self._ack_changed:
                await self._ack_changed.wait_for(
                    lambda: self._acks - acks_before >= len(commands) or self._generation != generation
                )
            if self._acks - acks_before < len(commands):
                raise SpeakerUnavailable("ExaBGP restarted before acknowledging every command")
            errors = self._errors - errors_before
            if errors:
                log.warning("exabgp_command_errors", errors=errors, commands=len(commands))
            return SendResult(len(commands) - errors, errors)

    async def reconfigure(self, desired: DesiredNode) -> None:
        """Rewrite the config and reload: only added, removed or changed neighbors are touched.

        The first call starts the speaker. ValueError (nothing changed) when ExaBGP refuses the config.
        """
        if not self.started:
            await self.start(desired)
            return
        await self._validate(desired)
        self._write_config(desired)
        await self._apply_gtsm(desired)
        if self._reload_task is not None:
            self._reload_task.cancel()  # the newest file is the one to load
        self._reload_task = asyncio.create_task(self._reload(), name="exabgp-reload")

    async def _reload(self) -> None:
        """SIGUSR1 until ExaBGP logs that it reloaded. It drops a SIGUSR1 that comes while it still has
        updates queued for a peer (reactor/loop.py: the signal is re-armed, then `_pending_adjribout()`
        skips the reload) or while it handles another signal: seen in the 5-node lab as a node keeping a
        peer's old AS (NOTIFICATION 2/2 forever) after `bgpd patch node ... asNumber`."""
        for _attempt in range(RELOAD_ATTEMPTS):
            pid = self.pid
            if pid is None:
                return  # a restarting ExaBGP reads the new file anyway
            self._reloaded.clear()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reloaded.wait(), RELOAD_CONFIRM)
                return
        log.warning("exabgp_reload_unconfirmed", attempts=RELOAD_ATTEMPTS)

    async def stop(self, graceful: bool = True) -> None:
        """SIGTERM ExaBGP: sessions close without NOTIFICATION, so GR peers keep our routes as stale.

        graceful=False first tears every established session down (`teardown`) and waits until they are
        down. ExaBGP sends the Cease only where graceful restart was not negotiated: with GR it closes
        silently whatever we ask, so withdrawing routes from GR peers is `drain()`'s job.
        """
        if not graceful and self._connected.is_set() and self._up:
            with contextlib.suppress(SpeakerUnavailable, ConnectionError, TimeoutError):
                await asyncio.wait_for(self._teardown_all(), STOP_TIMEOUT)
        self._stopping = True
        if self._reload_task is not None:
            self._reload_task.cancel()
        await self._terminate()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._settings.api_socket)
        with contextlib.suppress(FileNotFoundError):
            self.config_path.unlink()
        if self._gtsm:
            with contextlib.suppress(RuntimeError, OSError):
                await remove_rules(self._prefix)
            self._gtsm = ()

    async def _teardown_all(self) -> None:
        """Cease every session and wait until ExaBGP reports them down (an ack only means queued)."""
        await self.send([teardown(peer) for peer in sorted(self._up)])
        async with self._state_changed:
            await self._state_changed.wait_for(lambda: not self._up)

    async def drain(self) -> None:
        """Withdraw everything we announced from every peer, then stop (a deliberate, non-GR exit).

        `clear adj-rib out` queues a withdraw of every route ExaBGP holds for each peer. Its ack means
        queued, not sent, and ExaBGP gives no signal when the UPDATEs are on the wire, so the speaker
        waits DRAIN_FLUSH before closing; a withdraw still queued then leaves that route stale at a GR
        peer until its restart timer (at most maxRestartTime) runs out.
        """
        if self._connected.is_set():
            with contextlib.suppress(SpeakerUnavailable, ConnectionError, TimeoutError):
                await asyncio.wait_for(self.send(["clear adj-rib out"]), STOP_TIMEOUT)
                await asyncio.sleep(DRAIN_FLUSH)
        await self.stop(graceful=False)

    # ------------------------------------------------------------------------------- child process

    async def _apply_gtsm(self, desired: DesiredNode, force: bool = False) -> None:
        """The inbound half of GTSM (bgpd.speaker.gtsm), in the namespace ExaBGP runs in."""
        rules = gtsm_rules(desired)
        if not self._manage_gtsm or (rules == self._gtsm and not force):
            return
        try:
            await apply_rules(rules, self._prefix)
        except (RuntimeError, OSError) as exc:
            # sessions still get GTSM on the connections ExaBGP opens; only the inbound check is missing
            (log.error if rules else log.debug)("gtsm_rules_failed", reason=str(exc))
            return
        self._gtsm = rules

    def _write_config(self, desired: DesiredNode) -> None:
        """Atomically replace the config; created 0600 so the MD5 keys are never world-readable."""
        text = render_config(desired, self._settings)
        tmp = self.config_path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.config_path)

    def _child_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **environment(),
                **dict(self._settings.command.env)}

    async def _validate(self, desired: DesiredNode) -> None:
        """Ask ExaBGP to parse the new config first: a rejected reload would leave it silently stale."""
        text = render_config(desired, self._settings)
        probe = self._run_dir / "validate.conf"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        try:
            for _attempt in range(VALIDATE_ATTEMPTS):
                proc = await asyncio.create_subprocess_exec(
                    *self._settings.command.argv, "validate", str(probe), env=self._child_env(),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                output, _ = await proc.communicate()
                # Killed by a signal (seen: PyPy's SIGSEGV under load) is no verdict on the config:
                # a false refusal would leave the node on its old configuration until the next change.
                if proc.returncode is None or proc.returncode >= 0:
                    break
                log.warning("exabgp_validate_crashed", reason=_exit_status(proc.returncode))
        finally:
            probe.unlink()
        if proc.returncode != 0:
            # its output names keywords and line numbers; the MD5 key only appears at DEBUG
            raise ValueError(f"ExaBGP rejected the configuration ({_exit_status(proc.returncode)}): "
                             f"{output.decode(errors='replace')[-500:]}")

    async def _spawn(self) -> None:
        self._connected.clear()
        self._proc = await asyncio.create_subprocess_exec(
            *self._prefix, *self._settings.command.argv, "server", str(self.config_path),
            env=self._child_env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.info("exabgp_started", pid=self._proc.pid, restarts=self.restarts,
                 interpreter=self._settings.command.interpreter)
        assert self._proc.stdout is not None
        self._tasks.append(asyncio.create_task(self._pump_log(self._proc.stdout), name="exabgp-log"))

    async def _pump_log(self, stream: asyncio.StreamReader) -> None:
        """ExaBGP logs to stdout at INFO (never DEBUG: it prints MD5 keys); a full pipe would block it."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line beyond the stream limit: skipped, the pipe keeps draining
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            self._log_tail.append(text)
            if RELOADED in text:
                self._reloaded.set()
            log.debug("exabgp_log", line=text)

    async def _supervise(self) -> None:
        delay = BACKOFF_MIN
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            proc = self._proc
            code = await proc.wait() if proc is not None else None
            if self._stopping:
                return
            self.restarts += 1
            if code is not None:
                self.last_exit = self._describe_exit(code)
            log.warning("exabgp_exited", reason=self.last_exit, restarts=self.restarts)
            self._leave_crashed_interpreter(code)
            await self._channel_lost()
            if loop.time() - started >= STABLE_RUN:
                delay = BACKOFF_MIN
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                await self._spawn()
            except OSError as exc:
                self._proc, self.last_exit = None, f"cannot start ExaBGP: {exc}"
                continue
            self._events.put_nowait(SpeakerRestarted(self.restarts, self.last_exit or ""))

    def _leave_crashed_interpreter(self, code: int | None) -> None:
        if code is None or code >= 0 or -code not in _CRASH_SIGNALS:
            return
        if self._settings.command.interpreter != "pypy":
            return
        self._settings = replace(self._settings, launcher=None)  # the configured CPython `exabgp`
        log.warning("exabgp_interpreter", interpreter="cpython", setting="pypy",
                    reason=f"ExaBGP under PyPy crashed ({self.last_exit}); CPython from now on")

    def _describe_exit(self, code: int) -> str:
        what = _exit_status(code)
        if self._kill_reason is not None:
            reason, self._kill_reason = self._kill_reason, None
            return f"{what}: {reason}"
        tail = next((line for line in reversed(self._log_tail) if line.strip()), "")
        return f"{what}: {tail}" if tail else what

    async def _channel_lost(self) -> None:
        """Every session ended with the child: say so per peer, and fail the waiting senders."""
        for peer in sorted(self._up):
            self._events.put_nowait(PeerState(peer, "down", f"exabgp exited ({self.last_exit})", local=True))
        self._up.clear()
        self._connected.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        async with self._ack_changed:
            self._generation += 1
            self._ack_changed.notify_all()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    # ------------------------------------------------------------------------------- API channel

    async def _on_bridge(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # a stale bridge of a previous child
            self._writer.close()
        self._writer = writer
        self._connected.set()
        log.info("exabgp_api_connected", pid=self.pid)
        try:
            while chunk := await reader.read(1 << 16):
                self._raw.append(chunk)  # nothing else on the read path: ExaBGP must never block
                self._raw_ready.set()
        except ConnectionError:
            pass
        finally:
            self._raw.append(b"\n")  # end a partial line here, not glued to the next channel's first
            self._raw_ready.set()
            if self._writer is writer:
                self._connected.clear()
                self._bridge_lost()
            writer.close()

    def _bridge_lost(self) -> None:
        """Without its API channel ExaBGP would run blind (events lost, commands impossible), and it
        does not exit by itself: stop it (SIGTERM keeps GR peers' routes) so the supervisor starts a
        fresh ExaBGP and bridge pair and the caller replays its routes. Usually the channel closed
        because ExaBGP itself died, so give it a moment to be reaped first."""
        proc = self._proc
        if proc is not None and proc.returncode is None and not self._stopping:
            self._tasks.append(asyncio.create_task(self._stop_blind(proc), name="exabgp-blind"))

    async def _stop_blind(self, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), BRIDGE_GRACE)
            return
        if proc is self._proc and not self._stopping:
            self._kill_reason = "stopped by bgpd: the API bridge went away"
            log.warning("exabgp_api_lost", pid=proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    async def _decode_loop(self) -> None:
        pending = b""
        while True:
            await self._raw_ready.wait()
            self._raw_ready.clear()
            while self._raw:
                pending += self._raw.popleft()
                *lines, pending = pending.split(b"\n")
                # one event for a run of small UPDATEs of one session (bgpd.speaker.coalesce)
                for event in coalesce(event for line in lines for event in self._decoded(line)):
                    await self._dispatch(event)
                await asyncio.sleep(0)  # let the reader run between chunks

    @staticmethod
    def _decoded(line: bytes) -> list[Event]:
        try:
            return decode_line(line.decode(errors="replace"))
        except CodecError as exc:
            log.warning("exabgp_line_undecodable", error=str(exc))
            return []

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, Ack):
            async with self._ack_changed:
                self._acks += 1
                self._errors += 0 if event.ok else 1
                self._ack_changed.notify_all()
            return
        if isinstance(event, PeerState):
            async with self._state_changed:
                (self._up.add if event.state == "up" else self._up.discard)(event.peer_ip)
                self._state_changed.notify_all()
        self._events.put_nowait(event)


def _exit_status(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
