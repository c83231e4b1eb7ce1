"""Daemon settings: conf/bgpd.yaml, overridden by command-line flags.

Every problem is collected and reported as ``<file>: <key>: <problem>; got <value!r>``, so an operator
fixes a bad file in one go. Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

DEFAULT_CONFIG = Path("/etc/bgpd/bgpd.yaml")
DEFAULT_SOCKET = "/run/bgpd/bgpd.sock"
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
ExaBGPInterpreter = Literal["auto", "cpython", "pypy"]  # = bgpd.speaker.interpreter.Interpreter
# Not in rtnetlink.h or rt_protos, not BIRD (12), kube-router (17), FRR (186-198), kube-vip (248), Felix (80).
DEFAULT_ROUTE_PROTOCOL = 44  # = bgpd.kernel.codec.DEFAULT_PROTOCOL
_RESERVED_PROTOCOLS = frozenset({*range(5), *range(8, 19), 42, 80, 99, *range(186, 199), 248})


class SettingsError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    node: str
    store: str = "file:///etc/bgpd/resources.d"
    etcd_ca_cert_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    control_socket: str = DEFAULT_SOCKET
    run_dir: str = ""  # load() makes "" the control socket's directory
    exabgp: str = ""
    exabgp_interpreter: ExaBGPInterpreter = "auto"
    exabgp_fast_updates: bool = True  # bgpd.speaker.fastupdate in the ExaBGP bgpd imports
    kernel_table: int = 254
    route_protocol: int = DEFAULT_ROUTE_PROTOCOL
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    graceful_restart_deadline: float = 120.0
    max_prefixes: int | None = 250_000  # = bgpd.rib.DEFAULT_MAX_PREFIXES; None: no limit
    metrics_listen: str | None = None


def default_exabgp() -> str:
    """The ``exabgp`` next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "exabgp"
    return str(beside) if beside.exists() else (shutil.which("exabgp") or "exabgp")


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def _int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, int) or isinstance(v, bool):
            return "must be an integer"
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"
    return check


def _positive_number(v: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0
    return None if ok else "must be a positive number of seconds"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _store(v: Any) -> str | None:
    if not isinstance(v, str) or not v.startswith(("file:///", "etcd://")):
        return "must be a URL file:///path or etcd://host:port[,host:port]"
    return None if v not in ("file:///", "etcd://") else "URL has no path or host"


def _protocol(v: Any) -> str | None:
    problem = _int_range(1, 255)(v)
    if problem is None and v in _RESERVED_PROTOCOLS:
        return ("collides with a protocol number in use "
                "(kernel, rt_protos, BIRD, FRR, kube-router, Felix, kube-vip)")
    return problem


def _listen(v: Any) -> str | None:
    _host, sep, port = v.rpartition(":") if isinstance(v, str) else ("", "", "")
    return None if sep and port.isdigit() and 0 < int(port) < 65536 else "must be HOST:PORT"


_DERIVED = {"node", "run_dir", "exabgp"}  # null: the hostname, the socket's directory, the venv's exabgp
_NULLABLE = {"node", "run_dir", "exabgp", "etcd_ca_cert_file", "etcd_cert_file", "etcd_key_file",
             "max_prefixes", "metrics_listen"}
_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "node": _str, "store": _store, "etcd_ca_cert_file": _str, "etcd_cert_file": _str,
    "etcd_key_file": _str, "control_socket": _str, "run_dir": _str, "exabgp": _str,
    "exabgp_interpreter": _one_of("auto", "cpython", "pypy"), "exabgp_fast_updates": _bool,
    "kernel_table": _int_range(1, 2**32 - 1), "route_protocol": _protocol,
    "log_format": _one_of("auto", "json", "console"),
    "log_level": _one_of("debug", "info", "warning", "error"),
    "graceful_restart_deadline": _positive_number, "max_prefixes": _int_range(1, 2**31),
    "metrics_listen": _listen,
}
assert set(_CHECKS) == {f.name for f in fields(Settings)}


def check(values: Mapping[str, Any], source: str) -> list[str]:
    problems = []
    for key, value in values.items():
        if key not in _CHECKS:
            problems.append(f"{source}: {key}: unknown key (known: {', '.join(sorted(_CHECKS))}); "
                            f"got {value!r}")
        elif value is None and key in _NULLABLE:
            continue
        elif (problem := _CHECKS[key](value)) is not None:
            problems.append(f"{source}: {key}: {problem}; got {value!r}")
    return problems


def read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError([f"{path}: cannot read: {exc}"]) from exc
    except yaml.YAMLError as exc:
        raise SettingsError([f"{path}: not valid YAML: {exc}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError([f"{path}: must be a mapping of key: value; got {type(data).__name__}"])
    return data


def load(config: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings from ``config`` (default /etc/bgpd/bgpd.yaml when present), then ``overrides`` (flags).

    ``config`` given explicitly must exist. Overrides whose value is None are ignored.
    """
    path = config or DEFAULT_CONFIG
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    if config is not None and not config.exists():
        raise SettingsError([f"{config}: no such file", *check(flags, "command line")])
    values = read_file(path)
    problems = check(values, str(path)) + check(flags, "command line")
    if problems:
        raise SettingsError(problems)
    # null means "work it out" for the derived keys, but is a value of its own for the others:
    # `max_prefixes: null` is "no limit", not the default limit
    merged = {k: v for k, v in {**values, **flags}.items() if v is not None or k not in _DERIVED}
    settings = Settings(**{"node": socket.gethostname(), **merged})
    if not settings.run_dir:
        # beside the control socket: two daemons with their own sockets (e.g. in two network
        # namespaces of one host, which share /run) never share ExaBGP's config and API socket
        settings = replace(settings, run_dir=str(Path(settings.control_socket).parent))
    return settings if settings.exabgp else replace(settings, exabgp=default_exabgp())


def resources_url(directory: str) -> str:
    """``--resources DIR`` is shorthand for ``--store file://<absolute DIR>``."""
    return "file://" + str(Path(directory).resolve())
