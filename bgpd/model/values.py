"""Scalar formats of Calico v3 resources (calico-semantics.md §1.10, §1.4, §1.1).

Each parser takes the raw decoded value and returns the normalised value, or raises `ValueError`
whose message is the *problem* part of a ConfigError ("must be ...", "port must be 1..65535"); the
loader adds where and what was given. Type checks are included: a parser that wants a string says
"expected string" for anything else, so YAML surprises (``on`` -> True) are reported, not coerced.
"""

from __future__ import annotations

import re
import socket
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Any

from bgpd.model.resources import IPAddress, IPNetwork, PeerAddress

AS_MAX = 4294967295
UINT16_MAX = 65535

_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_INTERFACE_RE = re.compile(r"[a-zA-Z0-9_.*-]{1,15}")
_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_ASDOT_RE = re.compile(r"(\d+)\.(\d+)")
_DECIMAL_RE = re.compile(r"\d+")
# Calico recognises a port form only with these two shapes (its first regex has unescaped dots).
_V4_PORT_RE = re.compile(r"(\d+).(\d+).(\d+).(\d+):(\d+)")
_V6_PORT_RE = re.compile(r"\[([0-9a-fA-F:.]+)\]:(\d+)")
_DURATION_PART_RE = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}


def type_name(value: Any) -> str:
    """The JSON-ish name of a decoded value's type, for "expected X, got Y" style problems."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def expect_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected string, not {type_name(value)}")
    return value


def expect_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected boolean, not {type_name(value)}")
    return value


def expect_int(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected integer, not {type_name(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"must be {lo}..{hi}")
    return value


def one_of(value: Any, choices: tuple[str, ...]) -> str:
    text = expect_str(value)
    if text not in choices:
        raise ValueError("must be one of " + ", ".join(repr(c) for c in choices))
    return text


# ---------------------------------------------------------------- AS numbers, durations


def as_number(value: Any) -> int:
    """``numorstring.ASNumber``: integer, decimal string or asdot ``"X.Y"`` (X, Y 0..65535)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"AS number must be an integer or a string, not {type_name(value)}")
    if isinstance(value, int):
        if not 0 <= value <= AS_MAX:
            raise ValueError(f"AS number must be 0..{AS_MAX}")
        return value
    if _DECIMAL_RE.fullmatch(value):
        number = int(value)
        if number > AS_MAX:
            raise ValueError(f"AS number must be 0..{AS_MAX}")
        return number
    dotted = _ASDOT_RE.fullmatch(value)
    if dotted is None:
        raise ValueError("AS number must be a decimal number or asdot 'X.Y'")
    high, low = int(dotted[1]), int(dotted[2])
    if high > UINT16_MAX or low > UINT16_MAX:
        raise ValueError("asdot AS number parts must each be 0..65535")
    return (high << 16) + low


def duration(value: Any) -> float:
    """A Go ``time.ParseDuration`` string, as seconds; negative durations are rejected here."""
    text = expect_str(value)
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        part = _DURATION_PART_RE.match(body, pos)
        if part is None:
            break
        total += float(part[1]) * _DURATION_UNITS[part[2]]
        pos = part.end()
    if not body or pos != len(body):
        raise ValueError("must be a duration such as '120s', '2m30s' or '1h'")
    if text.startswith("-") and total:
        raise ValueError("must not be negative")
    return total


# ---------------------------------------------------------------- addresses


def ip(value: Any, version: int | None = None) -> IPAddress:
    """A plain IPv4 or IPv6 address (no zone, no mask); ``version`` restricts the family."""
    text = expect_str(value)
    family = version or (6 if ":" in text else 4)
    # inet_pton: strict like Go's ParseIP (no zones, no leading zeros) and far quicker than
    # ipaddress's own parser, which matters for thousands of Nodes.
    try:
        packed = socket.inet_pton(socket.AF_INET6 if family == 6 else socket.AF_INET, text)
        return IPv6Address(packed) if family == 6 else IPv4Address(packed)
    except (OSError, ValueError):
        pass
    raise ValueError(f"must be an IPv{version} address" if version else "must be an IP address")


def peer_ip(value: Any) -> PeerAddress:
    """BGPPeer ``peerIP``: ``ip``, ``a.b.c.d:port`` or ``[ip]:port`` (Calico's `processIPPort`)."""
    text = expect_str(value)
    if len(text) > 64:
        raise ValueError("must be at most 64 characters")
    v4 = _V4_PORT_RE.fullmatch(text)
    v6 = _V6_PORT_RE.fullmatch(text)
    if v4 is None and v6 is None:
        return PeerAddress(ip(text))
    host, port = (text.rsplit(":", 1)[0], v4[5]) if v4 else (v6[1], v6[2])  # type: ignore[index]
    number = int(port)
    if not 1 <= number <= UINT16_MAX:
        raise ValueError("port must be 1..65535")
    try:
        return PeerAddress(ip(host), number)
    except ValueError:
        raise ValueError("must be an IP address, optionally with a port: ip:port or [ipv6]:port") from None


def cidr(value: Any, version: int | None = None, strict: bool = True) -> IPNetwork:
    """A CIDR, or a plain address meaning a full mask (Calico's ``net`` and ``netv4``/``netv6``).

    ``strict`` rejects host bits (``10.0.0.1/24``), as those Calico fields do.
    """
    text = expect_str(value)
    address_text, slash, length = text.partition("/")
    try:
        address = ip(address_text, version)
        if slash and not (_DECIMAL_RE.fullmatch(length) and int(length) <= address.max_prefixlen):
            raise ValueError
    except ValueError:
        article = f"an IPv{version} " if version else "a "
        example = "'fd00::/64'" if version == 6 else "'10.0.0.0/24'"
        raise ValueError(f"must be {article}CIDR such as {example}") from None
    kind = IPv4Network if address.version == 4 else IPv6Network
    network = kind((int(address), int(length) if slash else address.max_prefixlen), strict=False)
    if strict and network.network_address != address:
        raise ValueError(f"host bits set; the network is {network}")
    return network


def interface_v4(value: Any) -> IPv4Interface:
    """Node ``ipv4Address`` (``cidrv4``): a plain IPv4 address or one with a prefix length."""
    return _interface(value, 4)  # type: ignore[return-value]


def interface_v6(value: Any) -> IPv6Interface:
    return _interface(value, 6)  # type: ignore[return-value]


def _interface(value: Any, version: int) -> IPv4Interface | IPv6Interface:
    text = expect_str(value)
    address, slash, length = text.partition("/")
    kind = IPv4Interface if version == 4 else IPv6Interface
    try:
        parsed = ip(address, version)
        if slash and not (_DECIMAL_RE.fullmatch(length) and int(length) <= parsed.max_prefixlen):
            raise ValueError
        # An int, not the address object: ipaddress would format and re-parse the object.
        return kind((int(parsed), int(length) if slash else parsed.max_prefixlen))
    except ValueError:
        raise ValueError(f"must be an IPv{version} address or address/prefix-length") from None


def ipv4_dotted(value: Any) -> IPv4Address:
    return ip(value, 4)  # type: ignore[return-value]


def ipv6(value: Any) -> IPv6Address:
    return ip(value, 6)  # type: ignore[return-value]


# ---------------------------------------------------------------- names, labels, communities


def name(value: Any) -> str:
    """A DNS-1123 subdomain of at most 253 characters (Kubernetes object names)."""
    text = expect_str(value)
    if len(text) > 253:
        raise ValueError("must be at most 253 characters")
    if not _NAME_RE.fullmatch(text):
        raise ValueError("must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'; "
                         "starting and ending with a letter or digit")
    return text


def label_key(value: str) -> str:
    prefix, slash, rest = value.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _NAME_RE.fullmatch(prefix)):
        raise ValueError("label key prefix must be a DNS-1123 subdomain")
    if not rest or len(rest) > 63 or not _LABEL_NAME_RE.fullmatch(rest):
        raise ValueError("label key name must be at most 63 characters: letters, digits, '-', '_', '.'; "
                         "starting and ending with a letter or digit")
    return value


def label_value(value: str) -> str:
    if value and (len(value) > 63 or not _LABEL_NAME_RE.fullmatch(value)):
        raise ValueError("label value must be empty or at most 63 characters: letters, digits, '-', '_', "
                         "'.'; starting and ending with a letter or digit")
    return value


def label_text(value: Any) -> str:
    """A label key or value as Calico stores it: YAML 1.1 booleans and numbers become strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected string, not {type_name(value)}")
    return value


def community(value: Any) -> str:
    """``aa:nn`` (two 16-bit parts) or ``aa:nn:mm`` (three 32-bit parts)."""
    text = expect_str(value)
    parts = text.split(":")
    limit = {2: UINT16_MAX, 3: AS_MAX}.get(len(parts))
    if limit is None or not all(_DECIMAL_RE.fullmatch(p) and int(p) <= limit for p in parts):
        raise ValueError("community must be 'aa:nn' (16-bit parts) or 'aa:nn:mm' (32-bit parts)")
    return text


def interface_glob(value: Any, allow_star: bool = True) -> str:
    """An interface name or glob: ``[a-zA-Z0-9_.*-]{1,15}``; a lone ``*`` only where allowed."""
    text = expect_str(value)
    if not _INTERFACE_RE.fullmatch(text):
        raise ValueError("must be an interface name or glob of 1..15 characters from a-z A-Z 0-9 _ . * -")
    if text == "*" and not allow_star:
        raise ValueError("must not be '*'")
    return text


def secret_key(value: Any) -> str:
    text = expect_str(value)
    if len(text) > 253 or not _SECRET_KEY_RE.fullmatch(text):
        raise ValueError("must be a Secret key: letters, digits, '-', '_' and '.'")
    return text
