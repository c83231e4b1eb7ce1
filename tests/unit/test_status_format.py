"""StatusReport -> the JSON of DESIGN.md §4 and the calicoctl-like table, exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bgpd.control.status import SessionStatus, StatusReport, format_duration, format_report

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC).timestamp()


def sess(name: str, ip: str, kind: Any, *, state: str = "up", info: str = "Established", port: int = 179,
         since: float | None = NOW - 3600, rx: int = 0, inst: int = 0) -> SessionStatus:
    return SessionStatus(name=name, family=6 if ":" in ip else 4, kind=kind, peer_ip=ip, port=port,
                         state=state, since=since, info=info, routes_received=rx, routes_installed=inst)


def report(*sessions: SessionStatus, **kw: Any) -> StatusReport:
    base: dict[str, Any] = dict(
        node="node-1", as_number=64512, router_id="10.0.0.1", store_source="file:///etc/bgpd/resources.d",
        revision="abc123", stale=False, errors=(), sessions=sessions, routes_installed=7, routes_stale=0,
        exabgp_pid=4242, exabgp_restarts=0, exabgp_last_exit=None, started=NOW - 3723, now=NOW)
    base.update(kw)
    return StatusReport(**base)


R = report(
    sess("Mesh_10_0_0_2", "10.0.0.2", "Mesh", rx=5, inst=4),
    sess("Global_10_0_0_254_port_1790", "10.0.0.254", "Global", port=1790, state="start",
         info="Active Socket: Connection refused", since=NOW - 86400 * 2),
    sess("Node_fd00__1", "fd00::1", "Node", state="start", info="Connect", since=None),
)


def test_json_has_exactly_the_contract_keys() -> None:
    assert R.to_json() == {
        "node": "node-1", "asNumber": 64512, "routerID": "10.0.0.1",
        "store": {"source": "file:///etc/bgpd/resources.d", "revision": "abc123", "stale": False,
                  "errors": []},
        "sessions": [
            {"name": "Mesh_10_0_0_2", "peerIP": "10.0.0.2", "port": 179, "type": "node-to-node mesh",
             "state": "up", "since": "2026-11-22T11:00:00Z", "info": "Established",
             "routesReceived": 5, "routesInstalled": 4},
            {"name": "Global_10_0_0_254_port_1790", "peerIP": "10.0.0.254", "port": 1790, "type": "global",
             "state": "start", "since": "2026-11-20T12:00:00Z", "info": "Active Socket: Connection refused",
             "routesReceived": 0, "routesInstalled": 0},
            {"name": "Node_fd00__1", "peerIP": "fd00::1", "port": 179, "type": "node specific",
             "state": "start", "since": None, "info": "Connect", "routesReceived": 0, "routesInstalled": 0},
        ],
        "routes": {"installed": 7, "stale": 0},
        "exabgp": {"pid": 4242, "restarts": 0, "lastExit": None},
        "uptime": 3723.0,
    }


def test_table_is_calicoctl_like() -> None:
    assert format_report(R, UTC) == """\
bgpd is running on node node-1 (uptime 1h02m03s).
Router ID 10.0.0.1, AS 64512
Store file:///etc/bgpd/resources.d revision abc123
ExaBGP pid 4242, restarts 0
Routes installed 7 (stale 0)

IPv4 BGP status
+-----------------+-------------------+-------+------------+-----------------------------------+
|  PEER ADDRESS   |     PEER TYPE     | STATE |   SINCE    |               INFO                |
+-----------------+-------------------+-------+------------+-----------------------------------+
| 10.0.0.2        | node-to-node mesh | up    | 11:00:00   | Established                       |
| 10.0.0.254:1790 | global            | start | 2026-11-20 | Active Socket: Connection refused |
+-----------------+-------------------+-------+------------+-----------------------------------+
Routes: 5 received, 4 installed.

IPv6 BGP status
+--------------+---------------+-------+-------+---------+
| PEER ADDRESS |   PEER TYPE   | STATE | SINCE |  INFO   |
+--------------+---------------+-------+-------+---------+
| fd00::1      | node specific | start | -     | Connect |
+--------------+---------------+-------+-------+---------+
Routes: 0 received, 0 installed.
"""


def test_calicoctl_header_centring() -> None:
    text = format_report(report(sess("Mesh_172_17_8_102", "172.17.8.102", "Mesh", since=NOW - 1)), UTC)
    assert "| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |" in text
    assert "+--------------+-------------------+-------+----------+-------------+" in text
    assert "IPv6 BGP status\nNo IPv6 peers found.\n" in text


def test_stale_store_shows_every_error_and_exabgp_restarts() -> None:
    stale = report(stale=True, errors=("a.yaml:1 BGPPeer/x spec.asNumber: bad; got 'x'",),
                   exabgp_pid=None, exabgp_restarts=3, exabgp_last_exit="killed by SIGKILL")
    text = format_report(stale, UTC)
    assert "revision abc123 (STALE: 1 error(s), the last good configuration still runs)\n" \
           "  a.yaml:1 BGPPeer/x spec.asNumber: bad; got 'x'\n" in text
    assert "ExaBGP not running, restarts 3, last exit: killed by SIGKILL\n" in text


def test_exit_status_is_zero_only_when_every_session_is_established() -> None:
    assert R.exit_status == 1
    assert report(sess("Mesh_10_0_0_2", "10.0.0.2", "Mesh")).exit_status == 0
    assert report().exit_status == 0  # no configured session: nothing is down
    assert report(revision="", as_number=None).exit_status == 1  # nothing applied yet: not ready


def test_json_round_trip_formats_the_same_table() -> None:
    back = StatusReport.from_json(R.to_json())
    assert back.sessions == R.sessions
    assert format_report(back, UTC).split("\n", 1)[1] == format_report(R, UTC).split("\n", 1)[1]


def test_durations() -> None:
    assert [format_duration(s) for s in (5, 65, 3723, 90061)] == ["0m05s", "1m05s", "1h02m03s", "1d1h01m01s"]
