"""What went over the wire: tcpdump in a node's namespace writes a pcap, this decodes its BGP messages.

tcpdump's own text decoder interleaves streams and hides the bytes; here every TCP stream of the capture
is reassembled per direction (in sequence order) and cut into BGP messages, so a test can ask "did a
NOTIFICATION leave?", "what restart time did the OPEN carry?" or "did End-of-RIB follow the UPDATEs?".
TCP-MD5 does not hide anything: it signs segments, their payload stays clear text.
"""

from __future__ import annotations

import ipaddress
import signal
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .wait import wait_until

OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4
_LINKTYPE_ETHERNET, _LINKTYPE_LINUX_SLL = 1, 113
_CAP_GRACEFUL_RESTART = 64
_ATTR_MP_REACH, _ATTR_MP_UNREACH = 14, 15


@dataclass(frozen=True)
class Message:
    """One BGP message of one TCP stream direction, in capture order."""

    index: int  # position in the whole capture (by the segment that completed it)
    src: str  # "ip port"
    dst: str
    type: int
    body: bytes = field(repr=False)

    @property
    def src_ip(self) -> str:
        return self.src.rsplit(" ", 1)[0]

    @property
    def dst_ip(self) -> str:
        return self.dst.rsplit(" ", 1)[0]

    def restart_time(self) -> int | None:
        """An OPEN's graceful-restart capability restart time (RFC 4724), or None without one."""
        if self.type != OPEN or len(self.body) < 10:
            return None
        params, i = self.body[10:10 + self.body[9]], 0
        while i + 2 <= len(params):
            ptype, plen = params[i], params[i + 1]
            value, i = params[i + 2:i + 2 + plen], i + 2 + plen
            j = 0
            while ptype == 2 and j + 2 <= len(value):  # capabilities
                code, clen = value[j], value[j + 1]
                if code == _CAP_GRACEFUL_RESTART and clen >= 2:
                    return int(struct.unpack("!H", value[j + 2:j + 4])[0] & 0x0FFF)
                j += 2 + clen
        return None

    def end_of_rib(self) -> bool:
        """An UPDATE that is End-of-RIB: empty (IPv4) or only an empty MP_UNREACH_NLRI (others)."""
        if self.type != UPDATE:
            return False
        withdrawn, attrs, nlri = _update_parts(self.body)
        if withdrawn or nlri:
            return False
        if not attrs:
            return True
        parsed = list(_attributes(attrs))
        return len(parsed) == 1 and parsed[0][0] == _ATTR_MP_UNREACH and len(parsed[0][1]) == 3

    def announced(self) -> list[str]:
        """Prefixes an UPDATE announces (IPv4 NLRI and MP_REACH_NLRI)."""
        if self.type != UPDATE:
            return []
        _, attrs, nlri = _update_parts(self.body)
        out = _prefixes(nlri, 4)
        for code, value in _attributes(attrs):
            if code == _ATTR_MP_REACH and len(value) >= 5:
                afi, nh_len = struct.unpack("!H", value[:2])[0], value[3]
                start = 4 + nh_len + 1  # next hop, then one reserved byte
                out += _prefixes(value[start:], 6 if afi == 2 else 4)
        return out

    def withdrawn(self) -> list[str]:
        """Prefixes an UPDATE withdraws (IPv4 withdrawn routes and MP_UNREACH_NLRI)."""
        if self.type != UPDATE:
            return []
        withdrawn, attrs, _ = _update_parts(self.body)
        out = _prefixes(withdrawn, 4)
        for code, value in _attributes(attrs):
            if code == _ATTR_MP_UNREACH and len(value) > 3:
                out += _prefixes(value[3:], 6 if struct.unpack("!H", value[:2])[0] == 2 else 4)
        return out


class Capture:
    """``with Capture(ns, "eth0", path, "tcp port 179"):`` tcpdump runs (unbuffered, full packets)
    for the block's duration; ``messages()`` decodes what the file holds (also while it runs)."""

    def __init__(self, ns: str, ifname: str, path: Path, bpf: str = "tcp") -> None:
        self.ns, self.ifname, self.path, self.bpf = ns, ifname, path, bpf
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        self.path.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            # --immediate-mode: packets are written as they come, not a buffer timeout later (those
            # still buffered at SIGINT would be lost), so messages() can also be polled while it runs
            ["ip", "netns", "exec", self.ns, "tcpdump", "-i", self.ifname, "--immediate-mode", "-U",
             "-s", "0", "-n", "-w", str(self.path), self.bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # tcpdump writes the file header once the interface is open: packets after that are caught
        wait_until(lambda: self.path.exists() and self.path.stat().st_size >= 24, 10,
                   f"tcpdump on {self.ns}/{self.ifname}")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)  # flushes what it holds
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def messages(self) -> list[Message]:
        return bgp_messages(self.path)


def bgp_messages(pcap: Path) -> list[Message]:
    """Every complete BGP message of every TCP stream direction in a pcap file, in capture order."""
    streams: dict[tuple[str, str], _Stream] = {}
    out: list[Message] = []
    for index, (src, dst, seq, syn, payload) in enumerate(_tcp_segments(pcap.read_bytes())):
        stream = streams.get((src, dst))
        if stream is None or syn:
            stream = streams[(src, dst)] = _Stream(next_seq=(seq + 1) if syn else seq)
        if payload:
            for mtype, body in stream.feed(seq, payload):
                out.append(Message(index, src, dst, mtype, body))
    return out


@dataclass
class _Stream:
    next_seq: int
    buffer: bytes = b""

    def feed(self, seq: int, payload: bytes) -> list[tuple[int, bytes]]:
        if seq != self.next_seq:  # a retransmission (or a capture that began mid-stream: resync)
            if (self.next_seq - seq) % 2**32 < 2**31 and self.buffer == b"":
                return []
            self.buffer = b""
        self.next_seq = (seq + len(payload)) % 2**32
        self.buffer += payload
        messages = []
        while len(self.buffer) >= 19 and self.buffer[:16] == b"\xff" * 16:
            length = struct.unpack("!H", self.buffer[16:18])[0]
            if len(self.buffer) < length or length < 19:
                break
            messages.append((self.buffer[18], self.buffer[19:length]))
            self.buffer = self.buffer[length:]
        return messages


def _tcp_segments(data: bytes) -> list[tuple[str, str, int, bool, bytes]]:
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    segments, i = [], 24
    while i + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[i + 8:i + 12])[0]
        if i + 16 + incl > len(data):  # a capture still being written
            break
        frame, i = data[i + 16:i + 16 + incl], i + 16 + incl
        if linktype == _LINKTYPE_ETHERNET:
            ethertype, packet = struct.unpack("!H", frame[12:14])[0], frame[14:]
        elif linktype == _LINKTYPE_LINUX_SLL:
            ethertype, packet = struct.unpack("!H", frame[14:16])[0], frame[16:]
        else:
            raise ValueError(f"unsupported pcap link type {linktype}")
        segment = _tcp(ethertype, packet)
        if segment is not None:
            segments.append(segment)
    return segments


def _tcp(ethertype: int, packet: bytes) -> tuple[str, str, int, bool, bytes] | None:
    if ethertype == 0x0800 and packet[9] == 6:
        ihl, total = (packet[0] & 0x0F) * 4, struct.unpack("!H", packet[2:4])[0]
        src, dst, tcp = ipaddress.ip_address(packet[12:16]), ipaddress.ip_address(packet[16:20]), \
            packet[ihl:total]
    elif ethertype == 0x86DD and packet[6] == 6:  # no extension headers on these links
        length = struct.unpack("!H", packet[4:6])[0]
        src, dst, tcp = ipaddress.ip_address(packet[8:24]), ipaddress.ip_address(packet[24:40]), \
            packet[40:40 + length]
    else:
        return None
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    offset, flags = (tcp[12] >> 4) * 4, tcp[13]
    return f"{src} {sport}", f"{dst} {dport}", seq, bool(flags & 0x02), tcp[offset:]


def _update_parts(body: bytes) -> tuple[bytes, bytes, bytes]:
    wlen = struct.unpack("!H", body[:2])[0]
    alen = struct.unpack("!H", body[2 + wlen:4 + wlen])[0]
    return body[2:2 + wlen], body[4 + wlen:4 + wlen + alen], body[4 + wlen + alen:]


def _attributes(attrs: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i + 3 <= len(attrs):
        flags, code = attrs[i], attrs[i + 1]
        if flags & 0x10:  # extended length
            length, start = struct.unpack("!H", attrs[i + 2:i + 4])[0], i + 4
        else:
            length, start = attrs[i + 2], i + 3
        out.append((code, attrs[start:start + length]))
        i = start + length
    return out


def _prefixes(data: bytes, family: int) -> list[str]:
    out, i, size = [], 0, 4 if family == 4 else 16
    while i < len(data):
        bits = data[i]
        nbytes = (bits + 7) // 8
        raw = data[i + 1:i + 1 + nbytes] + b"\0" * (size - nbytes)
        out.append(str(ipaddress.ip_network((raw, bits))))
        i += 1 + nbytes
    return out
