"""Settings: defaults, the shipped conf/bgpd.yaml, precise errors, flags over the file."""

from __future__ import annotations

import socket
from dataclasses import fields
from pathlib import Path

import pytest

from bgpd.settings import Settings, SettingsError, load, resources_url
from tests.conftest import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bgpd.yaml"
    path.write_text(text)
    return path


def test_shipped_file_loads_and_matches_the_defaults() -> None:
    settings = load(ROOT / "conf" / "bgpd.yaml")
    assert settings == Settings(node=socket.gethostname(), exabgp=settings.exabgp, run_dir="/run/bgpd")
    assert settings.node == socket.gethostname()
    assert settings.store == "file:///etc/bgpd/resources.d"
    assert settings.control_socket == "/run/bgpd/bgpd.sock"
    assert (settings.kernel_table, settings.route_protocol) == (254, 44)
    assert settings.exabgp.endswith("exabgp")
    assert settings.metrics_listen is None and settings.max_prefixes == 250_000


def test_shipped_file_documents_every_key() -> None:
    text = (ROOT / "conf" / "bgpd.yaml").read_text()
    for f in fields(Settings):
        assert f"\n{f.name}:" in text, f.name


def test_every_problem_is_reported_with_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "kernel_table: main\nlog_level: loud\ncolour: red\nroute_protocol: 12\n"
                           "store: http://x\nmetrics_listen: 9179\ngraceful_restart_deadline: 0\n")
    with pytest.raises(SettingsError) as err:
        load(path)
    assert err.value.problems == [
        f"{path}: kernel_table: must be an integer; got 'main'",
        f"{path}: log_level: must be one of debug, info, warning, error; got 'loud'",
        f"{path}: colour: unknown key (known: " + ", ".join(sorted(f.name for f in fields(Settings)))
        + "); got 'red'",
        f"{path}: route_protocol: collides with a protocol number in use (kernel, rt_protos, BIRD, FRR, "
        "kube-router, Felix, kube-vip); got 12",
        f"{path}: store: must be a URL file:///path or etcd://host:port[,host:port]; got 'http://x'",
        f"{path}: metrics_listen: must be HOST:PORT; got 9179",
        f"{path}: graceful_restart_deadline: must be a positive number of seconds; got 0",
    ]


def test_booleans_are_not_integers(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="kernel_table: must be an integer; got True"):
        load(write(tmp_path, "kernel_table: true\n"))


@pytest.mark.parametrize(("text", "message"), [
    ("- a\n- b\n", "must be a mapping of key: value; got list"),
    ("a: [\n", "not valid YAML"),
])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(write(tmp_path, text))


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load(tmp_path / "nope.yaml")


def test_flags_override_the_file_and_none_flags_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "node: from-file\nkernel_table: 100\nlog_level: debug\n")
    settings = load(path, {"node": "from-flag", "kernel_table": None, "control_socket": "/tmp/x.sock"})
    assert (settings.node, settings.kernel_table, settings.log_level) == ("from-flag", 100, "debug")
    assert settings.control_socket == "/tmp/x.sock"


def test_bad_flag_is_reported_as_command_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load(write(tmp_path, ""), {"kernel_table": 0})
    assert err.value.problems == ["command line: kernel_table: must be between 1 and 4294967295; got 0"]


def test_null_means_default(tmp_path: Path) -> None:
    settings = load(write(tmp_path, "node: null\nexabgp: null\nrun_dir: null\n"))
    assert settings.node == socket.gethostname() and settings.exabgp.endswith("exabgp")
    assert settings.run_dir == str(Path(settings.control_socket).parent)


def test_null_max_prefixes_means_no_limit(tmp_path: Path) -> None:
    assert load(write(tmp_path, "max_prefixes: null\n")).max_prefixes is None
    assert load(write(tmp_path, "log_level: info\n")).max_prefixes == 250_000


def test_resources_shorthand_is_an_absolute_file_url(tmp_path: Path) -> None:
    assert resources_url(str(tmp_path)) == f"file://{tmp_path.resolve()}"


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        load(ROOT / "conf" / "bgpd.yaml").node = "x"  # type: ignore[misc]


def test_run_dir_defaults_to_the_control_sockets_directory(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    missing.write_text("")
    assert load(missing).run_dir == "/run/bgpd"
    assert load(missing, {"control_socket": "/run/lab/n1/bgpd.sock"}).run_dir == "/run/lab/n1"
    assert load(missing, {"control_socket": "/x/b.sock", "run_dir": "/var/run/elsewhere"}).run_dir == \
        "/var/run/elsewhere"
