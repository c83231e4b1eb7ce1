"""Store URLs and the etcd options calicoctl accepts, parsed into one frozen config value.

``file:///dir`` (or a bare path) is the YAML directory store. ``etcd://host:2379[,host:2379]`` is the
etcd v3 store; ``etcd://`` alone takes its endpoints from ``ETCD_ENDPOINTS`` (calicoctl's default
``http://127.0.0.1:2379`` when unset). TLS and auth come from the environment variables calicoctl
reads: ``ETCD_CA_CERT_FILE``, ``ETCD_CERT_FILE``, ``ETCD_KEY_FILE``, ``ETCD_USERNAME``,
``ETCD_PASSWORD``. A password is never accepted inside the URL: URLs end up in process arguments,
logs and status output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

DEFAULT_ETCD_ENDPOINTS = "http://127.0.0.1:2379"
DEFAULT_ETCD_PORT = 2379


class StoreURLError(ValueError):
    """A store URL or etcd option that cannot be used; the message names the URL or variable."""


@dataclass(frozen=True)
class FileStoreConfig:
    path: Path

    @property
    def url(self) -> str:
        return f"file://{self.path}"


@dataclass(frozen=True)
class EtcdEndpoint:
    host: str
    port: int = DEFAULT_ETCD_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class EtcdStoreConfig:
    endpoints: tuple[EtcdEndpoint, ...]
    tls: bool = False
    ca_cert_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The URL without secrets, as status output and logs show it."""
        return "etcd://" + ",".join(str(e) for e in self.endpoints)


StoreConfig = FileStoreConfig | EtcdStoreConfig


def parse_store_url(url: str, env: Mapping[str, str]) -> StoreConfig:
    """``url`` as given by ``--store`` or the settings; ``env`` supplies the ``ETCD_*`` options."""
    if url.startswith("file://"):
        return _file(url)
    if url.startswith("etcd://"):
        return _etcd(url, env)
    if "://" in url:
        raise StoreURLError(f"store URL {url!r}: unsupported scheme; use file:///DIR or etcd://HOST:PORT")
    if not url:
        raise StoreURLError("store URL is empty; use file:///DIR or etcd://HOST:PORT")
    return FileStoreConfig(Path(url).resolve())


def _file(url: str) -> FileStoreConfig:
    rest = url[len("file://"):]
    if not rest.startswith("/"):
        raise StoreURLError(f"store URL {url!r}: a file URL needs an absolute path (file:///DIR)")
    path = unquote(rest)
    if path.rstrip("/") == "":
        raise StoreURLError(f"store URL {url!r}: no directory given")
    return FileStoreConfig(Path(path))


def _etcd(url: str, env: Mapping[str, str]) -> EtcdStoreConfig:
    hosts = url[len("etcd://"):].rstrip("/")
    if "@" in hosts:
        who = hosts.split("@", maxsplit=1)[0].split(":", maxsplit=1)[0]
        raise StoreURLError(f"store URL etcd://{who}@...: credentials do not "
                            "belong in the URL; set ETCD_USERNAME and ETCD_PASSWORD")
    if "/" in hosts or "?" in hosts:
        raise StoreURLError(f"store URL {url!r}: expected etcd://HOST:PORT[,HOST:PORT] with no path")
    source = f"store URL {url!r}"
    schemes: set[str] = set()
    if not hosts:
        hosts = env.get("ETCD_ENDPOINTS") or DEFAULT_ETCD_ENDPOINTS
        source = f"ETCD_ENDPOINTS={hosts!r}"
    endpoints = tuple(_endpoint(item.strip(), source, schemes) for item in hosts.split(",") if item.strip())
    if not endpoints:
        raise StoreURLError(f"{source}: no endpoint given")
    if len(schemes) > 1:
        raise StoreURLError(f"{source}: endpoints mix http:// and https://")
    ca, cert, key = (env.get(n) or None for n in ("ETCD_CA_CERT_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"))
    user, password = env.get("ETCD_USERNAME") or None, env.get("ETCD_PASSWORD") or None
    _check_pairs(cert, key, user, password)
    tls = "https" in schemes or (not schemes and any((ca, cert, key)))
    if schemes == {"http"} and any((ca, cert, key)):
        raise StoreURLError(f"{source}: ETCD_CA_CERT_FILE/ETCD_CERT_FILE/ETCD_KEY_FILE are set but the "
                            "endpoints use http://; use https:// endpoints for TLS")
    return EtcdStoreConfig(endpoints, tls, ca, cert, key, user, password)


def _endpoint(item: str, source: str, schemes: set[str]) -> EtcdEndpoint:
    scheme, sep, rest = item.partition("://")
    if sep:
        if scheme not in ("http", "https"):
            raise StoreURLError(f"{source}: endpoint {item!r} must use http:// or https://")
        schemes.add(scheme)
        item = rest.rstrip("/")
    if item.startswith("["):
        host, _, tail = item[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ("" if not tail else "?")
    elif item.count(":") > 1:  # a bare IPv6 address without a port
        host, port_text = item, ""
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise StoreURLError(f"{source}: endpoint {item!r} has no host")
    if not port_text:
        return EtcdEndpoint(host)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StoreURLError(f"{source}: endpoint {item!r} has an invalid port; got {port_text!r}")
    return EtcdEndpoint(host, int(port_text))


def _check_pairs(cert: str | None, key: str | None, user: str | None, password: str | None) -> None:
    if bool(cert) != bool(key):
        raise StoreURLError("ETCD_CERT_FILE and ETCD_KEY_FILE must be set together (client certificate "
                            f"and its key); got ETCD_CERT_FILE={cert!r}, ETCD_KEY_FILE={key!r}")
    if bool(user) != bool(password):
        raise StoreURLError("ETCD_USERNAME and ETCD_PASSWORD must be set together; "
                            f"ETCD_USERNAME is {'set' if user else 'unset'}, "
                            f"ETCD_PASSWORD is {'set' if password else 'unset'}")
