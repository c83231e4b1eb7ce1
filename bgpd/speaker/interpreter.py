"""Which Python runs the ExaBGP child: CPython or PyPy, both running the package bgpd imports (or the
`exabgp` the operator configured, as it is).

Why PyPy: ExaBGP 5.0.15 runs unchanged under Debian's PyPy 7.3 (Python 3.9; MD5, GTSM and the JSON
API behave the same) and parses UPDATEs about four times faster there with its Adj-RIB-In off
(~240k against ~55k routes/s, ../shared/reference/pypy-exabgp.md). bgpd itself stays on CPython
(uvloop has no PyPy support); only the child changes interpreter. Since the fast UPDATE paths took
the per-route work out of ExaBGP's decoding, PyPy's edge is left in announcing (AUTO_PYPY).

How PyPy finds ExaBGP: through a PYTHONPATH directory that holds nothing but a link to the `exabgp`
package bgpd's own interpreter imports (ExaBGP has no dependencies; the venv's other packages are
CPython 3.11 builds PyPy must never see). So nothing is installed for PyPy: `apt-get install pypy3`
is all, and without it `auto` and `pypy` run CPython.

The fast UPDATE paths (bgpd.speaker.fastupdate, on unless `exabgp_fast_updates` is false) are loaded
into the child before ExaBGP's main, from a link beside the `exabgp` one; so they run in the package
bgpd imports, under either interpreter. An `exabgp` the operator set explicitly runs as it is.

Memory: see PYPY_GC below. An operator can still tune PyPy's GC: any PYPY_GC_* variable in bgpd's own
environment reaches the child and overrides the default.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from bgpd.speaker.config import ExaBGPCommand

Interpreter = Literal["auto", "cpython", "pypy"]
INTERPRETERS: tuple[Interpreter, ...] = ("auto", "cpython", "pypy")
# PyPy's GC for a child that keeps no routes (adj-rib-in false): its heap is garbage, not live data, so
# what bounds its RSS is the nursery and the first major collection, which waits until the old generation
# reaches 8x the nursery (PYPY_GC_MIN can only raise that). Left alone, PyPy sizes the nursery from the
# last-level cache: ~150 MB on VMs that report a 300 MB L3. ExaBGP's peak RSS at 1M / 100k routes (bgpd
# converge bench, 2-core VM, 12 / 7 interleaved runs): nursery 16M 208 / 128 MB, 8M 138 / 127,
# 4M 104 / 102, 2M 100 / 99, 1M 98 / 97. About 95 MB of that is PyPy plus ExaBGP's code: 4M is at that
# floor. Its CPU is no worse: per-run ratio to 16M 0.87 at 1M, 0.90 at 100k (a nursery that fits the
# real cache). 2M saves 4 MB more (0.82 / 0.86) but 1M already costs (1.07 at 1M routes): 4M keeps a
# margin, and it is PyPy's own default where it finds no cache size. PYPY_GC_MAJOR_COLLECT=1.4 on top
# of 4M saved 3 MB and was slower (0.88 / 0.95 against 0.85 / 0.90 in the same runs): not taken.
PYPY_GC: dict[str, str] = {"PYPY_GC_NURSERY": "4M"}
# With the fast UPDATE paths, CPython's ExaBGP is as fast as PyPy's for a node's own routes and holds
# ~65 MB less (docs/benchmarks.md, third round: 100k into the kernel 0.40 s against 0.48 s, 1M 5.2 s
# against 5.4 s at 200 against 272 MB, one prefix per UPDATE 1.28 s against 1.67 s, idle 84 against
# 148 MB); PyPy is still twice as fast at announcing (reflection of 10k routes to 10 clients 1.35 s
# against 2.79 s). So `auto` runs PyPy only for a route reflector, or when the fast paths are off.
AUTO_PYPY = ("auto: CPython (with the fast UPDATE paths as fast as PyPy for a node's routes, in less "
             "memory); PyPy is for route reflectors")
PROBE_TIMEOUT = 30.0
# ExaBGP's console script, as `-c`: the package is found through PYTHONPATH, not a script path.
_MAIN = "import sys; sys.argv[0] = 'exabgp'; {}from exabgp.application.main import main; sys.exit(main())"
FAST_UPDATE_MODULE = "bgpd_fastupdate"  # bgpd/speaker/fastupdate.py, as the path directory links it
_FAST = f"import {FAST_UPDATE_MODULE}; {FAST_UPDATE_MODULE}.main(); "
# What `server` needs beyond the entry point: a PyPy that can import these runs ExaBGP.
_PROBE = ("import exabgp.reactor.loop, exabgp.configuration.configuration, exabgp.version, "
          f"{FAST_UPDATE_MODULE}; print(exabgp.version.version)")


def cpython(exabgp: str) -> ExaBGPCommand:
    return ExaBGPCommand((exabgp,))


def package(python: str, path_dir: str, pycache: str, *, fast: bool, pypy: bool) -> ExaBGPCommand:
    """``python`` running the package linked in ``path_dir``, with the fast UPDATE paths when ``fast``.
    ``pycache``: where PyPy keeps its bytecode of ExaBGP (a venv under ProtectSystem=strict is
    read-only, and compiling ExaBGP costs PyPy ~0.6 s at every start, probe and validation). CPython
    uses the bytecode pip compiled into the venv."""
    extra = {"PYTHONPYCACHEPREFIX": pycache, **gc_environment()} if pypy else {}
    env = (("PYTHONPATH", path_dir), *extra.items())
    return ExaBGPCommand((python, "-c", _MAIN.format(_FAST if fast else "")), env,
                         "pypy" if pypy else "cpython")


def gc_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """PYPY_GC, with the PYPY_GC_* variables of ``environ`` (bgpd's own environment) taking precedence."""
    return {**PYPY_GC, **{name: value for name, value in environ.items() if name.startswith("PYPY_GC_")}}


def exabgp_package() -> Path | None:
    """The directory of the `exabgp` package this interpreter would import (without importing it)."""
    spec = importlib.util.find_spec("exabgp")
    locations = None if spec is None else spec.submodule_search_locations
    return Path(next(iter(locations))) if locations else None


def find_pypy() -> str | None:
    return shutil.which("pypy3")


async def choose(choice: Interpreter, exabgp: str, run_dir: Path, *, exabgp_is_default: bool,
                 fast_updates: bool = True, reflector: bool = False, pypy3: str | None = None
                 ) -> tuple[ExaBGPCommand, str]:
    """The command for ``choice`` and why. `auto` is PyPy only where it pays (AUTO_PYPY); `auto` and
    `pypy` fall back to CPython (with the reason) when PyPy cannot run the package; an ``exabgp``
    the operator set explicitly runs as it is."""
    found = exabgp_package()
    if not exabgp_is_default:
        return cpython(exabgp), f"exabgp is set to {exabgp} (PyPy and the fast UPDATE paths run only " \
                                "the package bgpd imports)"
    if found is None:
        return cpython(exabgp), "bgpd's interpreter has no exabgp package to run"
    path_dir, pycache = str(_path_dir(run_dir, found)), str(run_dir / "pycache")
    fallback = package(sys.executable, path_dir, pycache, fast=fast_updates, pypy=False)
    if choice == "cpython":
        return fallback, "exabgp_interpreter is cpython"
    if choice == "auto" and fast_updates and not reflector:
        return fallback, AUTO_PYPY
    pypy3 = pypy3 or find_pypy()
    if pypy3 is None:
        return fallback, "no pypy3 on PATH (apt-get install pypy3 makes ExaBGP announce ~2x faster)"
    command = package(pypy3, path_dir, pycache, fast=fast_updates, pypy=True)
    problem = await _probe(command)
    if problem is not None:
        return fallback, f"{pypy3} cannot run ExaBGP: {problem}"
    return command, f"{pypy3} runs ExaBGP from {found}"


def _path_dir(run_dir: Path, exabgp: Path) -> Path:
    """A directory holding only a link named `exabgp` to the ``exabgp`` package and one to the fast
    UPDATE module (each replaced if it points elsewhere)."""
    path_dir = run_dir / "exabgp-path"
    path_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _link(path_dir / "exabgp", exabgp)
    _link(path_dir / f"{FAST_UPDATE_MODULE}.py", Path(__file__).with_name("fastupdate.py"))
    return path_dir


def _link(link: Path, target: Path) -> None:
    if not link.is_symlink() or os.readlink(link) != str(target):
        tmp = link.with_name(f".{link.name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)


async def _probe(command: ExaBGPCommand) -> str | None:
    """None when the interpreter imports ExaBGP's server modules, else what went wrong."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **dict(command.env)}
    try:
        proc = await asyncio.create_subprocess_exec(
            command.argv[0], "-c", _PROBE, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except OSError as exc:
        return str(exc)
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"no answer in {PROBE_TIMEOUT:.0f} s"
    if proc.returncode != 0:
        lines = output.decode(errors="replace").strip().splitlines()
        return f"exit status {proc.returncode}: {lines[-1] if lines else 'no output'}"
    return None
