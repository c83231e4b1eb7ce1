"""Logs are JSON off a terminal and never carry a secret."""

from __future__ import annotations

import io
import json

import structlog

from bgpd.desired import Password
from bgpd.logging import configure


def test_secrets_never_reach_the_log() -> None:
    out = io.StringIO()
    configure("info", "auto", out)  # StringIO is not a tty: JSON
    structlog.get_logger().info("session_added", peer="Mesh_10_0_0_2", password="hunter2",
                                md5_Secret="x", key=Password("y"), nested={"a": [Password("z")]})
    structlog.get_logger().debug("not_shown")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "session_added" and record["peer"] == "Mesh_10_0_0_2"
    assert record["redacted"] == ["key", "md5_Secret", "nested", "password"]
    for secret in ("hunter2", '"x"', '"y"', '"z"'):
        assert secret not in lines[0]


def test_level_changes_at_runtime() -> None:
    from bgpd.logging import set_level  # noqa: PLC0415

    out = io.StringIO()
    configure("info", "json", out)
    log = structlog.get_logger("x")
    log.debug("hidden")
    set_level("debug")
    log.debug("shown")
    set_level("error")
    log.warning("hidden_again")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["shown"]
