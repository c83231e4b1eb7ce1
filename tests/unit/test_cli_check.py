"""`bgpd check`: exit 0 with a one-line summary, or 78 with every error on its own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpd.cli import main

PEER = """\
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 10.0.0.254, asNumber: 64567, password: {secretKeyRef: {name: bgp, key: tor}}}
"""
NODE = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-1}
spec: {bgp: {ipv4Address: 10.0.0.1/24}}
"""


def secret(password: str) -> str:
    return f"apiVersion: v1\nkind: Secret\nmetadata: {{name: bgp, namespace: kube-system}}\n" \
           f"stringData: {{tor: {password}}}\n"


def test_clean_directory_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(NODE + "---\n" + PEER)
    (tmp_path / "s.yaml").write_text(secret("s3cret"))
    assert main(["check", "--resources", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"OK {tmp_path}: 1 Node, 1 BGPPeer, 1 Secret (revision ")


def test_every_error_is_listed_and_the_exit_status_is_78(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(NODE.replace("/24", "/33") + "---\n" + PEER.replace("64567", "-1"))
    (tmp_path / "s.yaml").write_text(secret("x" * 81))
    assert main(["check", "--resources", str(tmp_path)]) == 78
    captured = capsys.readouterr()
    a = tmp_path / "a.yaml"
    assert captured.out.splitlines() == [
        f"{a}:1 Node/node-1 spec.bgp.ipv4Address: must be an IPv4 address or address/prefix-length; "
        "got '10.0.0.1/33'",
        f"{a}:2 BGPPeer/tor spec.asNumber: AS number must be 0..4294967295; got -1",
    ]
    assert captured.err == f"2 error(s) in {tmp_path}\n"


def test_long_password_is_an_error_that_never_shows_the_password(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(PEER + "---\n" + secret("p" * 81))
    assert main(["check", "--resources", str(path)]) == 78
    captured = capsys.readouterr()
    assert captured.out == (f"{path}:1 BGPPeer/tor spec.password.secretKeyRef: password in Secret "
                            "kube-system/bgp key 'tor' is 81 bytes; TCP-MD5 allows at most 80\n")
    assert "p" * 81 not in captured.out + captured.err


def test_missing_path_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--resources", str(tmp_path / "nope")]) == 78
    assert capsys.readouterr().out == f"{tmp_path / 'nope'}: no such file or directory\n"


def test_ignored_configuration_names_are_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yaml").write_text("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n"
                                     "metadata: {name: tuning}\nspec: {}\n")
    assert main(["check", "--resources", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"OK {tmp_path}: 1 BGPConfiguration (revision ")
    assert captured.err == ("note: BGPConfiguration/tuning is ignored: only 'default' and 'node.<name>' "
                            "apply\n")
