"""The control protocol: one JSON object per line, each way (pure).

Request  ``{"v": 1, "cmd": "status", "args": {...}}`` (``args`` optional)
Response ``{"v": 1, "ok": true, "result": ...}`` or ``{"v": 1, "ok": false, "error": "..."}``

A bad request gets an error response and the connection stays usable; nothing a client sends can
make the daemon do more than answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
MAX_LINE = 64 * 1024


class ProtocolError(Exception):
    """A request the daemon cannot act on; its text is sent back to the client."""


@dataclass(frozen=True)
class Request:
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)


def encode_request(cmd: str, args: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"v": VERSION, "cmd": cmd}
    if args:
        body["args"] = args
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> Request:
    if len(line) > MAX_LINE:
        raise ProtocolError(f"request too long: more than {MAX_LINE} bytes")
    try:
        body = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"request must be a JSON object; got {type(body).__name__}")
    if body.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version; got {body.get('v')!r}, speaks {VERSION}")
    cmd, args = body.get("cmd"), body.get("args", {})
    if not isinstance(cmd, str) or not cmd:
        raise ProtocolError(f"cmd must be a non-empty string; got {cmd!r}")
    if not isinstance(args, dict):
        raise ProtocolError(f"args must be a JSON object; got {type(args).__name__}")
    unknown = sorted(set(body) - {"v", "cmd", "args"})
    if unknown:
        raise ProtocolError(f"unknown request keys: {', '.join(unknown)}")
    return Request(cmd, args)


def encode_result(result: Any) -> bytes:
    return json.dumps({"v": VERSION, "ok": True, "result": result}, separators=(",", ":")).encode() + b"\n"


def encode_error(message: str) -> bytes:
    return json.dumps({"v": VERSION, "ok": False, "error": message}, separators=(",", ":")).encode() + b"\n"


def decode_response(line: bytes) -> Any:
    """The result of a response line; raises ProtocolError with the daemon's error text."""
    try:
        body = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad response from bgpd: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != VERSION or "ok" not in body:
        raise ProtocolError(f"bad response from bgpd: {line[:200]!r}")
    if not body["ok"]:
        raise ProtocolError(str(body.get("error", "unknown error")))
    return body.get("result")
