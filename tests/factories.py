"""Store factories shared by the tests and the benchmarks: one place names each backend."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from sahara_es.events import Metadata, NewEvent

CASSANDRA_HOST = os.environ.get("SAHARA_ES_CASSANDRA_HOST", "127.0.0.1")
# Two checkouts may share one node: each names its own keyspace.
CASSANDRA_TEST_KEYSPACE = os.environ.get("SAHARA_ES_TEST_KEYSPACE", "sahara_es_test")
# Small partitions and a short settle window so that tests cross partitions and read the feed
# quickly; production defaults are 5000 events and 2 s.
CASSANDRA_TEST_URL = (
    f"cassandra://{CASSANDRA_HOST}:9042/{CASSANDRA_TEST_KEYSPACE}"
    "?partition_size=100&feed_settle_seconds=0.5"
)


def drop_cassandra_test_keyspace() -> None:
    """Each test session starts from an empty keyspace, so feeds hold only its own events."""
    drop_cassandra_keyspace(CASSANDRA_TEST_KEYSPACE)


def drop_cassandra_keyspace(keyspace: str) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster([CASSANDRA_HOST], protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def cassandra_up(host: str = CASSANDRA_HOST) -> bool:
    try:
        with socket.create_connection((host, 9042), timeout=1):
            return True
    except OSError:
        return False


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'store.db'}"


def store_url(backend: str, folder: Path) -> str:
    return CASSANDRA_TEST_URL if backend == "cassandra" else sqlite_url(folder)


def new_stream(category: str = "test") -> str:
    return f"{category}-{uuid.uuid4().hex}"


def events(count: int, kind: str = "ThingHappened", **metadata: str) -> list[NewEvent]:
    return [
        NewEvent(type=kind, data={"n": i}, metadata=Metadata(**metadata))  # type: ignore[arg-type]
        for i in range(count)
    ]
