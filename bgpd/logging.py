"""structlog set-up: JSON when stderr is not a terminal, readable console output when it is.

A last-line-of-defence processor removes secrets: any key named like a password or secret is
dropped, and any value that is a `bgpd.desired.Password` (also inside a list, tuple or dict) is
refused, whatever its key.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from bgpd.desired import Password

_SECRET_WORDS = ("password", "secret", "passwd")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _holds_password(value: Any, depth: int = 0) -> bool:
    if isinstance(value, Password):
        return True
    if depth >= 3:
        return False
    if isinstance(value, dict):
        return any(_holds_password(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_password(v, depth + 1) for v in value)
    return False


def drop_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    refused = [k for k, v in event.items()
               if any(w in k.lower() for w in _SECRET_WORDS) or _holds_password(v)]
    for key in refused:
        del event[key]
    if refused:
        event["redacted"] = sorted(refused)
    return event


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    json_out = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if json_out
                     else structlog.dev.ConsoleRenderer(colors=out.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_secrets,
            structlog.processors.format_exc_info if json_out else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def set_level(level: str) -> None:
    """Change the level at runtime (BGPConfiguration ``logSeverityScreen``)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)))
