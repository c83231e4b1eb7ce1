"""Smoke tests of netns-lab/bench: converge (bgpd and BIRD each get 2,000 prefixes into their kernel) and
reflect (300 prefixes reflected to 2 BIRD clients by bgpd and by BIRD).

Asserts counts only (every run converged, every route withdrawn after the session dropped), never
times: the speed figures belong to docs/benchmarks.md. Namespaces `bgbsA`/`bgbsB` and `bgbrs*` (the
harnesses remove them, and kill what they started by PID, also when a run fails).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.lab

CONVERGE = ROOT / "netns-lab" / "bench" / "converge"
N = 2000


def test_converge_counts_bgpd_and_bird(tmp_path: Path) -> None:
    if shutil.which("bird") is None:
        pytest.skip("LAB TEST SKIPPED: bird (bird2) is not installed")
    results = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, str(CONVERGE), "--speakers", "bgpd,bird", "--n", str(N), "--reps", "1",
         "--timeout", "120", "--withdraw-timeout", "60", "--ns-a", "bgbsA", "--ns-b", "bgbsB",
         "--results", str(results), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=400, check=False)
    runs = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    detail = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert [r["speaker"] for r in runs] == ["bgpd", "bird"], detail
    for run in runs:
        assert run["ok"] and run["count"] == N, detail
        assert run["withdraw_left"] == 0, detail
        assert run["peak_rss_kb"] > 0 and run["cpu_s"] >= 0, detail  # BIRD's 2k can be < one clock tick
    assert proc.returncode == 0, detail
    assert "| 2k | bgpd |" in proc.stdout, detail


REFLECT = ROOT / "netns-lab" / "bench" / "reflect"
REFLECTED, CLIENTS = 300, 2


def test_reflect_reaches_every_client_through_bgpd_and_bird(tmp_path: Path) -> None:
    """netns-lab/bench/reflect: an injector's prefixes reach every BIRD client through each reflector
    (namespaces `bgbrs*`, removed by the harness)."""
    if shutil.which("bird") is None:
        pytest.skip("LAB TEST SKIPPED: bird (bird2) is not installed")
    results = tmp_path / "reflect.jsonl"
    proc = subprocess.run(
        [sys.executable, str(REFLECT), "--speakers", "bgpd,bird", "--n", str(REFLECTED),
         "--clients", str(CLIENTS), "--reps", "1", "--timeout", "40", "--idle", "0", "--ns-prefix", "bgbrs",
         "--results", str(results), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=150, check=False)
    runs = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    detail = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert [r["speaker"] for r in runs] == ["bgpd", "bird"], detail
    for run in runs:
        assert run["ok"] and run["counts"] == [REFLECTED] * CLIENTS, detail
        assert run["peak_rss_kb"] > 0 and len(run["load_start"]) == 3, detail
    assert proc.returncode == 0, detail
    assert "| 300 | 2 | bgpd |" in proc.stdout, detail
