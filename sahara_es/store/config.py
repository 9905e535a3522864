"""Store configuration: which backend, where, and with which consistency.

A store is named by a URL, so that one string configures a process::

    sqlite:///var/lib/sahara-es/store.db
    cassandra://127.0.0.1,127.0.0.2:9042/sahara_es?local_dc=dc1&replication=dc1:3,dc2:3

Cassandra query parameters: ``local_dc`` (this process's region: the datacenter it talks to);
``replication`` (``N`` for SimpleStrategy with N replicas, or ``dc1:3,dc2:3`` for
NetworkTopologyStrategy); ``consistency`` for plain reads and writes (default LOCAL_QUORUM);
``ownership_serial`` for appends, fences, leases and unique names and ``claims_serial`` for
global claims (both SERIAL by default; LOCAL_SERIAL only for a keyspace in one datacenter: with
several, the store refuses it, and region-local claims, keys made by ``region_claim_key``, are
LOCAL_SERIAL in a table of their own: doc/regions.rst);
``partition_size``; ``feed_relay`` (``on``, the default: a process that reads the feed
also relays committed events into it when it holds the relay lease; ``off``: it only reads);
``request_timeout`` (seconds; also how long an append whose outcome is unknown waits before
it may conclude that its LWT can no longer apply: keep it at least Cassandra's
``native_transport_timeout``).

Credentials never travel in the URL: the user name may (``cassandra://USER@HOST/...``), the
password is read from a file named by ``password_file=PATH``, or, when the URL names none, by
the environment variable ``SAHARA_ES_CASSANDRA_CREDENTIALS``. The file holds either the
password alone or ``username=...`` and ``password=...`` lines (the form ``tools/cassandra``
writes); its user name is used when the URL names none. It must not be readable by other users
(mode 0600 or stricter). The password is read only when the store connects, so it is in no
configuration object, ``repr``, error message, ``db info`` output or event.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_STORE_URL = "sqlite:///sahara-es.db"

CREDENTIALS_ENV = "SAHARA_ES_CASSANDRA_CREDENTIALS"
"""A credentials file used by Cassandra URLs that name no ``password_file``."""

_CONSISTENCIES = {"ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL", "LOCAL_ONE"}
_SERIALS = {"SERIAL", "LOCAL_SERIAL"}


@dataclass(frozen=True, kw_only=True)
class CassandraConfig:
    contact_points: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    keyspace: str = "sahara_es"
    local_dc: str | None = None
    replication: dict[str, Any] = field(
        default_factory=lambda: {"class": "SimpleStrategy", "replication_factor": 1}
    )
    consistency: str = "LOCAL_QUORUM"
    ownership_serial: str = "SERIAL"
    claims_serial: str = "SERIAL"
    partition_size: int = 5000
    feed_relay: bool = True
    request_timeout: float = 12.0
    username: str | None = None
    password_file: str | None = None
    """Where the password is (never the password itself: see ``read_credentials``)."""

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("a Cassandra user needs a password_file, and a password_file a"
                             " user (in the URL or in the file)")
        if self.consistency not in _CONSISTENCIES:
            raise ValueError(f"consistency must be one of {sorted(_CONSISTENCIES)}")
        for name in ("ownership_serial", "claims_serial"):
            if getattr(self, name) not in _SERIALS:
                raise ValueError(f"{name} must be SERIAL or LOCAL_SERIAL")
        if self.partition_size < 100:
            raise ValueError("partition_size must be at least 100 (the largest append)")


def _credentials_file(path: str) -> dict[str, str]:
    """``{"password": ..., "username": ... (if the file names one)}`` from a password file."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        text = file.read_text()
    except OSError as error:
        raise ValueError(f"cannot read the Cassandra password file {path}:"
                         f" {error.strerror}") from None
    if mode & 0o077:
        raise ValueError(f"the Cassandra password file {path} is open to other users"
                         f" (mode {mode & 0o777:04o}): chmod 600 it")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and not lines[0].startswith(("password=", "username=")):
        return {"password": lines[0]}
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    if not values.get("password"):
        raise ValueError(f"the Cassandra password file {path} holds no password= line")
    return {key: values[key] for key in ("username", "password") if key in values}


def read_credentials(config: CassandraConfig) -> tuple[str, str] | None:
    """``(username, password)`` for connecting, read from the password file at this moment."""
    if config.username is None or config.password_file is None:
        return None
    return config.username, _credentials_file(config.password_file)["password"]


def parse_replication(text: str) -> dict[str, Any]:
    if text.isdigit():
        return {"class": "SimpleStrategy", "replication_factor": int(text)}
    dcs = dict(part.split(":", 1) for part in text.split(","))
    return {"class": "NetworkTopologyStrategy", **{dc: int(n) for dc, n in dcs.items()}}


def parse_store_url(url: str) -> tuple[str, dict[str, Any]]:
    """``(backend name, keyword arguments for that backend)``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # As in SQLAlchemy: sqlite:///relative.db and sqlite:////absolute/path.db
        path = parts.netloc + parts.path[1:] if parts.path else parts.netloc
        return "sqlite", {"path": path or ":memory:"}
    if parts.scheme == "cassandra":
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        userinfo, _, netloc = parts.netloc.rpartition("@")
        if ":" in userinfo:
            # Said without echoing the URL, which holds the password.
            raise ValueError("a store URL must not carry a password: put it in a file"
                             " (mode 0600) named by password_file=PATH")
        if "password" in query:
            raise ValueError("a store URL must not carry a password: use password_file=PATH")
        password_file = query.pop("password_file", None) or os.environ.get(CREDENTIALS_ENV)
        hosts = netloc.rsplit(":", 1)
        kwargs: dict[str, Any] = {"contact_points": tuple(hosts[0].split(","))}
        if len(hosts) == 2:
            kwargs["port"] = int(hosts[1])
        if parts.path.strip("/"):
            kwargs["keyspace"] = parts.path.strip("/")
        if "replication" in query:
            kwargs["replication"] = parse_replication(query.pop("replication"))
        if "partition_size" in query:
            kwargs["partition_size"] = int(query.pop("partition_size"))
        if "request_timeout" in query:
            kwargs["request_timeout"] = float(query.pop("request_timeout"))
        if "feed_relay" in query:
            relay = query.pop("feed_relay")
            if relay not in ("on", "off"):
                raise ValueError("feed_relay must be on or off")
            kwargs["feed_relay"] = relay == "on"
        for key in ("feed_settle_seconds", "feed_bucket_seconds"):
            query.pop(key, None)  # the feed before relaying read these; they mean nothing now
        for key in ("local_dc", "consistency", "ownership_serial", "claims_serial"):
            if key in query:
                kwargs[key] = query.pop(key)
        if query:
            raise ValueError(f"unknown store URL parameters: {', '.join(sorted(query))}")
        if password_file:
            username = userinfo or _credentials_file(password_file).get("username")
            if not username:
                raise ValueError(f"no Cassandra user: name it in the URL (USER@HOST) or as"
                                 f" username= in {password_file}")
            kwargs.update(username=username, password_file=password_file)
        elif userinfo:
            raise ValueError(f"Cassandra user {userinfo!r} has no password_file=PATH"
                             f" (nor ${CREDENTIALS_ENV})")
        return "cassandra", {"config": CassandraConfig(**kwargs)}
    raise ValueError(f"unknown store URL scheme {parts.scheme!r} (sqlite:// or cassandra://)")
