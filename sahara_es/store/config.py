"""Store configuration: which backend, where, and with which consistency.

A store is named by a URL, so that one string configures a process::

    sqlite:///var/lib/sahara-es/store.db
    cassandra://127.0.0.1,127.0.0.2:9042/sahara_es?local_dc=dc1&replication=dc1:3,dc2:3

Cassandra query parameters: ``local_dc``; ``replication`` (``N`` for SimpleStrategy with N
replicas, or ``dc1:3,dc2:3`` for NetworkTopologyStrategy); ``consistency`` for plain reads and
writes (default LOCAL_QUORUM); ``ownership_serial`` for appends, fences, leases and unique names
(default SERIAL: ownership is global); ``claims_serial`` for resource claims (default SERIAL;
LOCAL_SERIAL for claims on region-local resources only, and never both on the same key);
``partition_size``; ``feed_bucket_seconds``; ``feed_settle_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_STORE_URL = "sqlite:///sahara-es.db"

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
    feed_bucket_seconds: int = 60
    feed_settle_seconds: float = 2.0
    request_timeout: float = 12.0

    def __post_init__(self) -> None:
        if self.consistency not in _CONSISTENCIES:
            raise ValueError(f"consistency must be one of {sorted(_CONSISTENCIES)}")
        for name in ("ownership_serial", "claims_serial"):
            if getattr(self, name) not in _SERIALS:
                raise ValueError(f"{name} must be SERIAL or LOCAL_SERIAL")
        if self.partition_size < 100:
            raise ValueError("partition_size must be at least 100 (the largest append)")


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
        hosts = parts.netloc.rsplit(":", 1)
        kwargs: dict[str, Any] = {"contact_points": tuple(hosts[0].split(","))}
        if len(hosts) == 2:
            kwargs["port"] = int(hosts[1])
        if parts.path.strip("/"):
            kwargs["keyspace"] = parts.path.strip("/")
        if "replication" in query:
            kwargs["replication"] = parse_replication(query.pop("replication"))
        for key in ("partition_size", "feed_bucket_seconds"):
            if key in query:
                kwargs[key] = int(query.pop(key))
        for key in ("feed_settle_seconds", "request_timeout"):
            if key in query:
                kwargs[key] = float(query.pop(key))
        for key in ("local_dc", "consistency", "ownership_serial", "claims_serial"):
            if key in query:
                kwargs[key] = query.pop(key)
        if query:
            raise ValueError(f"unknown store URL parameters: {', '.join(sorted(query))}")
        return "cassandra", {"config": CassandraConfig(**kwargs)}
    raise ValueError(f"unknown store URL scheme {parts.scheme!r} (sqlite:// or cassandra://)")
