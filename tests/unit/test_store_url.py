"""Store URLs and calicoctl's ETCD_* options -> FileStoreConfig / EtcdStoreConfig, with exact errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bgpd.cli._store import StoreOptionError, store_config
from bgpd.store.url import (
    EtcdEndpoint,
    EtcdStoreConfig,
    FileStoreConfig,
    StoreURLError,
    parse_store_url,
)


@pytest.mark.parametrize(("url", "path"), [
    ("file:///etc/bgpd/resources.d", "/etc/bgpd/resources.d"),
    ("file:///srv/my%20resources/", "/srv/my resources/"),
])
def test_file_urls(url: str, path: str) -> None:
    assert parse_store_url(url, {}) == FileStoreConfig(Path(path))


def test_a_bare_path_is_a_directory_store(tmp_path: Path) -> None:
    assert parse_store_url(str(tmp_path), {}) == FileStoreConfig(tmp_path)


@pytest.mark.parametrize(("url", "endpoints"), [
    ("etcd://10.0.0.1:2379", (EtcdEndpoint("10.0.0.1", 2379),)),
    ("etcd://etcd-a:2379,etcd-b:22379", (EtcdEndpoint("etcd-a", 2379), EtcdEndpoint("etcd-b", 22379))),
    ("etcd://etcd-a", (EtcdEndpoint("etcd-a", 2379),)),
    ("etcd://[fd00::1]:2379,[fd00::2]", (EtcdEndpoint("fd00::1", 2379), EtcdEndpoint("fd00::2", 2379))),
])
def test_etcd_urls(url: str, endpoints: tuple[EtcdEndpoint, ...]) -> None:
    config = parse_store_url(url, {})
    assert config == EtcdStoreConfig(endpoints)
    assert isinstance(config, EtcdStoreConfig)
    assert config.url == "etcd://" + ",".join(str(e) for e in endpoints)


def test_empty_etcd_url_takes_etcd_endpoints_or_calicoctls_default() -> None:
    assert parse_store_url("etcd://", {}) == EtcdStoreConfig((EtcdEndpoint("127.0.0.1", 2379),))
    env = {"ETCD_ENDPOINTS": "http://10.0.0.1:2379, http://10.0.0.2:2379"}
    assert parse_store_url("etcd://", env).endpoints == (  # type: ignore[union-attr]
        EtcdEndpoint("10.0.0.1"), EtcdEndpoint("10.0.0.2"))


def test_hosts_in_the_url_win_over_etcd_endpoints() -> None:
    config = parse_store_url("etcd://a:1", {"ETCD_ENDPOINTS": "http://b:2"})
    assert config == EtcdStoreConfig((EtcdEndpoint("a", 1),))


def test_tls_and_auth_options_from_the_environment() -> None:
    env = {"ETCD_ENDPOINTS": "https://10.0.0.1:2379", "ETCD_CA_CERT_FILE": "/etc/ca.pem",
           "ETCD_CERT_FILE": "/etc/c.pem", "ETCD_KEY_FILE": "/etc/k.pem",
           "ETCD_USERNAME": "bgpd", "ETCD_PASSWORD": "s3cret"}
    config = parse_store_url("etcd://", env)
    assert config == EtcdStoreConfig((EtcdEndpoint("10.0.0.1"),), True, "/etc/ca.pem", "/etc/c.pem",
                                     "/etc/k.pem", "bgpd", "s3cret")
    assert "s3cret" not in repr(config)
    assert "s3cret" not in config.url  # type: ignore[union-attr]


def test_a_ca_file_turns_tls_on_for_schemeless_hosts() -> None:
    config = parse_store_url("etcd://a:2379", {"ETCD_CA_CERT_FILE": "/ca.pem"})
    assert isinstance(config, EtcdStoreConfig)
    assert config.tls


@pytest.mark.parametrize(("url", "env", "message"), [
    ("http://x", {}, "store URL 'http://x': unsupported scheme; use file:///DIR or etcd://HOST:PORT"),
    ("file://relative/dir", {}, "store URL 'file://relative/dir': a file URL needs an absolute path "
                                "(file:///DIR)"),
    ("file:///", {}, "store URL 'file:///': no directory given"),
    ("etcd://bgpd:pw@10.0.0.1:2379", {}, "store URL etcd://bgpd@...: credentials do not belong in the "
                                         "URL; set ETCD_USERNAME and ETCD_PASSWORD"),
    ("etcd://a:2379/calico", {}, "store URL 'etcd://a:2379/calico': expected etcd://HOST:PORT[,HOST:PORT] "
                                 "with no path"),
    ("etcd://a:99999", {}, "store URL 'etcd://a:99999': endpoint 'a:99999' has an invalid port; "
                           "got '99999'"),
    ("etcd://:2379", {}, "store URL 'etcd://:2379': endpoint ':2379' has no host"),
    ("etcd://", {"ETCD_ENDPOINTS": "unix://x"}, "ETCD_ENDPOINTS='unix://x': endpoint 'unix://x' must use "
                                                "http:// or https://"),
    ("etcd://", {"ETCD_ENDPOINTS": "http://a,https://b"}, "ETCD_ENDPOINTS='http://a,https://b': endpoints "
                                                          "mix http:// and https://"),
    ("etcd://", {"ETCD_CA_CERT_FILE": "/ca"}, "ETCD_ENDPOINTS='http://127.0.0.1:2379': "
     "ETCD_CA_CERT_FILE/ETCD_CERT_FILE/ETCD_KEY_FILE are set but the endpoints use http://; "
     "use https:// endpoints for TLS"),
    ("etcd://a", {"ETCD_CERT_FILE": "/c"}, "ETCD_CERT_FILE and ETCD_KEY_FILE must be set together "
     "(client certificate and its key); got ETCD_CERT_FILE='/c', ETCD_KEY_FILE=None"),
    ("etcd://a", {"ETCD_PASSWORD": "pw"}, "ETCD_USERNAME and ETCD_PASSWORD must be set together; "
     "ETCD_USERNAME is unset, ETCD_PASSWORD is set"),
])
def test_errors_name_the_url_or_variable(url: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(StoreURLError) as err:
        parse_store_url(url, env)
    assert str(err.value) == message
    assert "pw" not in str(err.value).replace("ETCD_PASSWORD", "")


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"resources": None, "store": None, "config": None, **kw})


def test_cli_store_options_precedence(tmp_path: Path) -> None:
    settings = tmp_path / "bgpd.yaml"
    settings.write_text("store: etcd://10.0.0.1:2379\netcd_ca_cert_file: /etc/ca.pem\n")
    from_settings = store_config(_args(config=settings), env={})
    assert from_settings == EtcdStoreConfig((EtcdEndpoint("10.0.0.1"),), True, "/etc/ca.pem")
    settings_win = store_config(_args(config=settings), env={"ETCD_CA_CERT_FILE": "/other.pem"})
    assert isinstance(settings_win, EtcdStoreConfig) and settings_win.ca_cert_file == "/etc/ca.pem"
    flag = store_config(_args(config=settings, store="file:///srv/r"), env={})
    assert flag == FileStoreConfig(Path("/srv/r"))
    assert store_config(_args(config=settings, resources=str(tmp_path)), env={}) == FileStoreConfig(tmp_path)
    with pytest.raises(StoreOptionError, match=r"nope\.yaml: no such file"):
        store_config(_args(config=tmp_path / "nope.yaml"), env={})
    with pytest.raises(StoreOptionError, match="unsupported scheme"):
        store_config(_args(config=settings, store="http://x"), env={})
