"""systemd/bgpd.service: `systemd-analyze verify` accepts it, and its settings match what bgpd does."""

from __future__ import annotations

import configparser
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from bgpd.cli import EX_CONFIG
from bgpd.settings import DEFAULT_SOCKET, load
from tests.conftest import ROOT

UNIT = ROOT / "systemd" / "bgpd.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None,
                                   reason="SYSTEMD CHECK SKIPPED: systemd-analyze is not installed")


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNIT)
    return parser["Service"]


def _unit_for_verify(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    bgpd = Path(shutil.which("bgpd") or ROOT / ".venv" / "bin" / "bgpd")
    assert bgpd.exists(), bgpd
    unit = tmp_path / "bgpd.service"
    unit.write_text(UNIT.read_text().replace("/opt/bgpd/venv/bin/bgpd", str(bgpd)))
    return unit


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = _unit_for_verify(tmp_path)
    done = subprocess.run([str(ANALYZE), "verify", str(unit)], capture_output=True, text=True, check=False)
    # verify also prints warnings (unknown keys, bad values) with exit status 0: none may name our unit
    assert done.returncode == 0 and "bgpd.service" not in done.stderr, done.stderr


@needs_analyze
def test_a_broken_unit_is_caught_by_verify(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is reported."""
    unit = _unit_for_verify(tmp_path)
    unit.write_text(unit.read_text().replace("Type=notify", "Typ=notify"))
    done = subprocess.run([str(ANALYZE), "verify", str(unit)], capture_output=True, text=True, check=False)
    assert "Typ" in done.stderr


@needs_analyze
def test_security_exposure_is_low(tmp_path: Path) -> None:
    unit = _unit_for_verify(tmp_path)
    done = subprocess.run([str(ANALYZE), "security", "--offline=yes", "--no-pager", str(unit)],
                          capture_output=True, text=True, check=False)
    if "--offline" in done.stderr:
        pytest.skip(f"SYSTEMD CHECK SKIPPED: no offline security check here: {done.stderr}")
    line = next(x for x in done.stdout.splitlines() if "Overall exposure level" in x)
    assert float(line.split(":")[1].split()[0]) <= 3.0, done.stdout


def test_notify_watchdog_and_restart_policy() -> None:
    s = service()
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert int(s["WatchdogSec"]) > 0
    assert s["Restart"] == "on-failure"
    assert s["RestartPreventExitStatus"] == str(EX_CONFIG)  # bgpd's configuration-error status


def test_stop_keeps_graceful_restart() -> None:
    """SIGTERM to bgpd alone (it stops ExaBGP itself, in order); no reload signal bgpd would die of."""
    s = service()
    assert s["KillMode"] == "mixed" and s["KillSignal"] == "SIGTERM"
    assert "ExecReload" not in s  # bgpd handles SIGTERM/SIGINT only; it watches its store instead
    app = (ROOT / "bgpd" / "app.py").read_text()
    assert "signal.SIGTERM" in app and "SIGHUP" not in app
    assert signal.SIGTERM.name == s["KillSignal"]


def test_hardening() -> None:
    s = service()
    assert set(s["CapabilityBoundingSet"].split()) == {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}
    assert s["AmbientCapabilities"] == s["CapabilityBoundingSet"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "RestrictSUIDSGID": "yes"}.items():
        assert s[key] == value, key


def test_runtime_directory_holds_the_default_control_socket() -> None:
    s = service()
    shipped = load(ROOT / "conf" / "bgpd.yaml", {"node": "n"})  # what scripts/install puts in /etc/bgpd
    for path in (DEFAULT_SOCKET, shipped.control_socket, shipped.run_dir + "/exabgp"):
        assert Path(path).parent == Path("/run") / s["RuntimeDirectory"], path
    assert s["RuntimeDirectoryMode"] == "0750" and s["Group"] == "bgpd"
    assert "--config /etc/bgpd/bgpd.yaml" in s["ExecStart"]
