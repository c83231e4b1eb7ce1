"""Lab fixtures: labs built from topologies in fresh namespaces, always torn down, dumped on failure.

Namespaces are named ``bgl<random4>-...`` so concurrent runs (and other users of the machine) never
collide; whatever a crashed test leaves is removed at the end of the session by that prefix.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

LAB_DIR = ROOT / "netns-lab"
TOPOLOGIES = LAB_DIR / "topologies"
sys.path.insert(0, str(LAB_DIR))

from nslab import Lab, cleanup_stale  # noqa: E402

TOKEN = secrets.token_hex(2)
PREFIX = f"bgl{TOKEN}-"

LabFactory = Callable[..., Lab]


def _missing_tools() -> list[str]:
    needed = ["ip", "bird", "birdc", "vtysh"]
    missing = [t for t in needed if shutil.which(t) is None]
    return missing + [p for p in ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd") if not Path(p).exists()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """On a failed test, attach every lab's state to the failure report (shown with the traceback)."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call" and report.failed:
        for built in getattr(item, "labs", []):
            report.sections.append((f"lab {built.name} state at failure", built.dump()))


@pytest.fixture(scope="session", autouse=True)
def _sweep_leftovers() -> Iterator[None]:
    yield
    cleanup_stale(PREFIX)


def skip_without_tools() -> None:
    """Skip (loudly) when BIRD, FRR or iproute2 is missing."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"LAB TEST SKIPPED: missing {', '.join(missing)} (install bird2 and frr)")


@pytest.fixture
def lab_tools() -> None:
    skip_without_tools()


@contextmanager
def running_lab(name: str, topo: str | Mapping[str, Any], wait: float | None = 45.0) -> Iterator[Lab]:
    """The lab of a topology file (or dict), up (with every session Established unless ``wait`` is
    None); always torn down. For module-scoped labs; `lab` is the per-test factory."""
    skip_without_tools()
    built = Lab(topology(topo) if isinstance(topo, str) else topo, name=f"t{TOKEN}-{name}", prefix=PREFIX)
    try:
        yield built.up(wait_established=wait)
    finally:
        built.down()


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_tools: None) -> Iterator[LabFactory]:
    """``lab(topology, name=..., wait=seconds)`` builds and starts a lab; every one is torn down after
    the test; when the test fails, every node's state (sessions, RIB, logs, addresses) joins the report."""
    labs: list[Lab] = []
    request.node.labs = labs  # read by pytest_runtest_makereport

    def make(topology: Mapping[str, Any] | Path | str, name: str, wait: float | None = None) -> Lab:
        built = Lab(topology, name=f"t{TOKEN}-{name}", prefix=PREFIX)
        labs.append(built)
        return built.up(wait_established=wait)

    try:
        yield make
    finally:
        for built in labs:
            built.down()


def topology(name: str) -> dict[str, Any]:
    """A topology file of netns-lab/topologies as a mutable dict (tests adjust copies of them)."""
    data: dict[str, Any] = yaml.safe_load((TOPOLOGIES / f"{name}.yaml").read_text())
    return data
