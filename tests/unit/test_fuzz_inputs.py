"""Bad input: the loader, the selector parser and the control protocol under hypothesis, and garbage
fed through `bgpd check` and a real control server: clear errors, no crash, nothing else disturbed.

Two hypothesis profiles, chosen by BGPD_FUZZ: ``short`` (default, part of the suite) and ``long``
(`make fuzz`: the same properties with many more examples, plus the suite's own property tests of
the loader, the selector and the control protocol re-run at that size).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import tempfile
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpd.cli import EX_CONFIG
from bgpd.cli import check as check_cli
from bgpd.control.protocol import MAX_LINE, encode_request
from bgpd.control.server import ControlServer
from tests.unit import test_control, test_loader, test_selector

settings.register_profile("bgpd-short", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("bgpd-long", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = os.environ.get("BGPD_FUZZ", "short")
FUZZ = settings.get_profile(f"bgpd-{PROFILE}")
LONG = PROFILE == "long"


# ---------------------------------------------------------------- the suite's properties, long run

def long_run(test: Any) -> Any:
    """The same property (its body and its strategies) at the long profile's size; only in `make fuzz`
    (the suite runs each at its own size already)."""
    handle = test.hypothesis
    rerun = FUZZ(given(**handle._given_kwargs)(handle.inner_test))
    skip = pytest.mark.skipif(not LONG, reason="long fuzz run: BGPD_FUZZ=long (make fuzz)")
    return pytest.mark.slow(skip(rerun))


test_long_loader_documents = long_run(test_loader.test_fuzz_documents_only_produce_reported_errors)
test_long_loader_text = long_run(test_loader.test_fuzz_text_only_produces_reported_errors)
test_long_yaml_builder = long_run(test_loader.test_fast_yaml_builder_agrees_with_pyyaml)
test_long_yaml_builder_odd_text = long_run(test_loader.test_fast_yaml_builder_agrees_with_pyyaml_on_odd_text)
test_long_selector_text = long_run(test_selector.test_any_text_parses_or_raises_a_located_selector_error)
test_long_selector_spellings = long_run(test_selector.test_every_spelling_parses_to_the_same_selector)
test_long_selector_evaluation = long_run(test_selector.test_compiled_evaluation_agrees_with_the_naive_table)
test_long_control_decode = long_run(
    test_control.test_decode_request_never_fails_other_than_with_a_protocol_error)


# ---------------------------------------------------------------- `bgpd check` on garbage

def check(path: Path) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    status = check_cli.run(Namespace(resources=str(path), secret_namespace="kube-system"), out, err)
    return status, out.getvalue().splitlines()


def assert_clear_errors(path: Path, status: int, lines: list[str]) -> None:
    """Exit 0 or 78; every error names the file and is of bounded length. (A YAML syntax error carries
    PyYAML's indented second line, `  in "<unicode string>", line 3, column 1`.)"""
    assert status in (0, EX_CONFIG)
    if status == EX_CONFIG:
        assert lines and lines[0].startswith(f"{path}:")
        assert all(line.startswith((f"{path}:", "  ")) for line in lines), lines[:3]
        assert all(len(line) < 20_000 for line in lines)


def checked(suffix: str, content: bytes) -> tuple[Path, int, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"doc{suffix}"
        path.write_bytes(content)
        status, lines = check(path)
    return path, status, lines


_yamlish = st.lists(st.sampled_from([*"ab:-[]{}'\"\n #&*!|>%@`,?.0\t\\", "apiVersion: projectcalico.org/v3\n",
                                     "kind: BGPPeer\n", "metadata:\n  name: x\n", "spec:\n", "---\n", "\x00",
                                     "\ufeff", "&a ", "*a", "!!python/object ", "<<: ", "\xff"]),
                    max_size=80).map("".join)


@FUZZ
@given(content=st.one_of(st.binary(max_size=2048), _yamlish.map(str.encode),
                         _yamlish.map(lambda t: t.encode("utf-16"))),
       suffix=st.sampled_from([".yaml", ".yml", ".json"]))
def test_check_on_any_bytes_gives_clear_errors(content: bytes, suffix: str) -> None:
    path, status, lines = checked(suffix, content)
    assert_clear_errors(path, status, lines)


@FUZZ
@given(kind=test_loader._kinds, version=st.sampled_from(["projectcalico.org/v3", "projectcalico.org/v2",
                                                         "crd.projectcalico.org/v1", "v1", None, 3]),
       spec=test_loader._trees, meta=test_loader._trees)
def test_check_on_wrong_kinds_versions_and_shapes_gives_clear_errors(kind: str, version: Any, spec: Any,
                                                                     meta: Any) -> None:
    text = yaml.safe_dump_all([{"apiVersion": version, "kind": kind, "metadata": meta, "spec": spec}, spec])
    path, status, lines = checked(".yaml", text.encode())
    assert_clear_errors(path, status, lines)


def alias_bomb(levels: int = 20) -> str:
    """'Billion laughs': 9**levels list items through YAML aliases, a few hundred bytes on disk."""
    anchors = ['  a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        anchors.append(f"  l{i}: &l{i} [" + ",".join([f"*{'a' if i == 1 else f'l{i - 1}'}"] * 9) + "]")
    last = f"l{levels - 1}"
    return ("x-anchors:\n" + "\n".join(anchors) + "\napiVersion: projectcalico.org/v3\nkind: BGPPeer\n"
            f"metadata: {{name: bomb}}\nspec:\n  peerIP: *{last}\n  asNumber: *{last}\n  node: *{last}\n")


def nodes(count: int) -> str:
    return "".join(f"---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: n{i}}}\n"
                   f"spec: {{bgp: {{ipv4Address: 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/16}}}}\n"
                   for i in range(count))


BAD_DOCUMENTS: dict[str, tuple[bytes, str]] = {
    "alias bomb": (alias_bomb().encode(), "spec.peerIP: expected string, not list"),
    "10 MB string": (b"apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: big}\nspec:\n"
                     b"  peerIP: '" + b"1" * 10_000_000 + b"'\n", "spec.peerIP"),
    "10k list items": (b"apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: f}\nspec:\n"
                        b"  exportV4: [" + b"1," * 10_000 + b"1]\n", "spec.exportV4"),
    "deep nesting": (b"a: " + b"[" * 100_000, "nested more than 64 levels deep"),
    "binary": (bytes(range(256)) * 64, "cannot read"),
    "NUL in text": (b"apiVersion: projectcalico.org/v3\nkind: Node\x00\n", ""),
    "python tag": (b"!!python/object/apply:os.system ['touch /tmp/bgpd-pwned']\n", ""),
    "wrong version": (b"apiVersion: projectcalico.org/v2\nkind: BGPPeer\nmetadata: {name: x}\n",
                      "apiVersion: must be 'projectcalico.org/v3'"),
    "wrong kind": (b"apiVersion: projectcalico.org/v3\nkind: Pod\nmetadata: {name: x}\n", "unsupported kind"),
    "not an object": (b"- 1\n- 2\n", "a resource must be an object"),
    "control characters in a name": (b"apiVersion: projectcalico.org/v3\nkind: BGPPeer\n"
                                     b'metadata: {name: "x\\ry\\nz"}\nspec: {asNumber: banana}\n',
                                     "BGPPeer/x\\ry\\nz spec.asNumber"),
}


@pytest.mark.parametrize("name", sorted(BAD_DOCUMENTS))
def test_check_on_bad_documents_is_quick_and_clear(name: str) -> None:
    content, expected = BAD_DOCUMENTS[name]
    started = time.monotonic()
    path, status, lines = checked(".yaml", content)
    assert status == EX_CONFIG, lines
    assert_clear_errors(path, status, lines)
    assert any(expected in line for line in lines), lines[:5]
    assert time.monotonic() - started < 60, "a pathological document must not take minutes"
    assert not Path("/tmp/bgpd-pwned").exists()


def test_check_on_many_documents_counts_them_all(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(nodes(5_000))
    status, lines = check(path)
    assert status == 0 and "5000 Node" in lines[0], lines[:3]


# ---------------------------------------------------------------- a real control server

def control_server_round(body: Callable[[str], None]) -> None:
    """Run a ControlServer with a status handler on a loop; call ``body(path)`` from a thread."""
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async def status(args: dict[str, Any]) -> Any:
                return {"node": "n1"}
            server = ControlServer(Path(tmp) / "s.sock", {"status": status})
            await server.start()
            try:
                await asyncio.to_thread(body, str(server.path))
            finally:
                await server.close()
    asyncio.run(run())


def exchange(path: str, payload: bytes, lines: int) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(payload)
        reader = sock.makefile("rb")
        return [json.loads(reader.readline()) for _ in range(lines)]


_request_lines = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    st.builds(encode_request, st.text(min_size=1, max_size=10),
              st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
    st.just(b"x" * (MAX_LINE + 10) + b"\n"),
)


@FUZZ
@given(lines=st.lists(_request_lines, min_size=1, max_size=5))
def test_control_server_answers_every_line_and_stays_usable(lines: list[bytes]) -> None:
    def body(path: str) -> None:
        answers = exchange(path, b"".join(lines) + encode_request("status"), len(lines) + 1)
        assert all(a["v"] == 1 and (a["ok"] or a["error"]) for a in answers)
        assert answers[-1] == {"v": 1, "ok": True, "result": {"node": "n1"}}
    control_server_round(body)
