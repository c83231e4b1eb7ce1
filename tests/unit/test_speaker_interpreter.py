"""Choosing ExaBGP's interpreter: PyPy runs the package bgpd imports, with a clean fallback to CPython."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bgpd.speaker import fastupdate, interpreter
from bgpd.speaker.config import ExaBGPCommand
from bgpd.speaker.interpreter import Interpreter, choose, exabgp_package

PYPY = shutil.which("pypy3")


def run(choice: Interpreter, tmp_path: Path, *, default: bool = True, pypy3: str | None = None,
        reflector: bool = True) -> tuple[ExaBGPCommand, str]:
    run_dir = tmp_path / "run"
    return asyncio.run(choose(choice, "/opt/exabgp", run_dir, exabgp_is_default=default, pypy3=pypy3,
                              reflector=reflector))


@pytest.mark.parametrize("fast", [True, False])
def test_auto_runs_pypy_for_a_route_reflector_or_without_the_fast_paths(fast: bool, tmp_path: Path) -> None:
    def auto(reflector: bool) -> ExaBGPCommand:
        return asyncio.run(choose("auto", "/opt/exabgp", tmp_path, exabgp_is_default=True, fast_updates=fast,
                                  reflector=reflector, pypy3="/usr/bin/true"))[0]
    assert auto(reflector=True).interpreter == "pypy"  # /usr/bin/true passes the probe
    assert auto(reflector=False).interpreter == ("cpython" if fast else "pypy")


def test_cpython_runs_the_package_bgpd_imports_with_the_fast_update_path(tmp_path: Path) -> None:
    command, reason = run("cpython", tmp_path)
    assert command.argv[0] == sys.executable and command.interpreter == "cpython" and "cpython" in reason
    assert "bgpd_fastupdate.main()" in command.argv[2]
    path_dir = Path(dict(command.env)["PYTHONPATH"])
    assert "PYTHONPYCACHEPREFIX" not in dict(command.env)  # the venv's own bytecode, compiled by pip
    assert (path_dir / "bgpd_fastupdate.py").resolve() == Path(fastupdate.__file__).resolve()
    out = subprocess.run([*command.argv, "version"], env={**os.environ, **dict(command.env)},
                         capture_output=True, text=True, check=True, timeout=60)
    assert "ExaBGP : 5." in out.stdout and "fast UPDATE paths off" not in out.stderr


def test_fast_updates_false_runs_exabgp_unchanged(tmp_path: Path) -> None:
    command, _ = asyncio.run(choose("cpython", "/opt/exabgp", tmp_path, exabgp_is_default=True,
                                    fast_updates=False))
    assert "fastupdate" not in command.argv[2]


@pytest.mark.parametrize("choice", ["auto", "cpython", "pypy"])
def test_an_explicitly_configured_exabgp_runs_as_it_is(choice: Interpreter, tmp_path: Path) -> None:
    command, reason = run(choice, tmp_path, default=False, pypy3="/usr/bin/false")
    assert command == ExaBGPCommand(("/opt/exabgp",)) and "exabgp is set to /opt/exabgp" in reason


@pytest.mark.parametrize("choice", ["auto", "pypy"])
def test_no_pypy_falls_back_to_cpython(choice: Interpreter, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interpreter, "find_pypy", lambda: None)
    command, reason = run(choice, tmp_path)
    assert command.argv[0] == sys.executable and command.interpreter == "cpython"
    assert reason.startswith("no pypy3 on PATH")


def test_a_pypy_that_cannot_import_exabgp_falls_back_with_its_error(tmp_path: Path) -> None:
    broken = tmp_path / "pypy3"
    broken.write_text("#!/bin/sh\necho 'ImportError: no module named exabgp.reactor' >&2\nexit 3\n")
    broken.chmod(0o755)
    command, reason = run("pypy", tmp_path, pypy3=str(broken))
    assert command.interpreter == "cpython"
    assert reason == f"{broken} cannot run ExaBGP: exit status 3: ImportError: no module named exabgp.reactor"


def test_pypy_child_gets_a_small_gc_nursery(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 MB: PyPy would otherwise size it from the cache (~150 MB here) and ExaBGP's peak RSS doubles."""
    for name in [name for name in os.environ if name.startswith("PYPY_GC_")]:
        monkeypatch.delenv(name)
    env = dict(interpreter.package("/usr/bin/pypy3", "/run/path", "/run/pycache", fast=True, pypy=True).env)
    gc = {name: value for name, value in env.items() if name.startswith("PYPY_GC_")}
    assert gc == {"PYPY_GC_NURSERY": "4M"}


def test_pypy_gc_variables_in_bgpds_environment_override_the_default() -> None:
    environ = {"PYPY_GC_NURSERY": "8M", "PYPY_GC_MAJOR_COLLECT": "1.4", "PYTHONPATH": "/elsewhere"}
    assert interpreter.gc_environment(environ) == {"PYPY_GC_NURSERY": "8M", "PYPY_GC_MAJOR_COLLECT": "1.4"}
    assert interpreter.gc_environment({}) == {"PYPY_GC_NURSERY": "4M"}


@pytest.mark.skipif(PYPY is None, reason="PYPY SKIPPED: no pypy3 on PATH (apt-get install pypy3)")
def test_pypy_runs_the_venvs_exabgp_package_and_sees_nothing_else(tmp_path: Path) -> None:
    command, reason = run("auto", tmp_path)
    package = exabgp_package()
    assert command.interpreter == "pypy" and str(package) in reason
    env = dict(command.env)
    path_dir = Path(env["PYTHONPATH"])
    assert sorted(os.listdir(path_dir)) == ["bgpd_fastupdate.py", "exabgp"]
    assert (path_dir / "exabgp").resolve() == package
    assert env["PYPY_GC_NURSERY"] == "4M"
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "run" / "pycache")  # not the (read-only) venv
    out = subprocess.run([*command.argv, "version"], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True, timeout=60)
    assert "ExaBGP : 5." in out.stdout and "PyPy" in out.stdout and "fast UPDATE paths off" not in out.stderr
    # a second start reuses the link
    assert run("pypy", tmp_path)[0] == command
