"""Store factories shared by the tests and the benchmarks: one place names each backend."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahara_es.events import Metadata, NewEvent
from sahara_es.store.config import CREDENTIALS_ENV, CassandraConfig, read_credentials

if TYPE_CHECKING:
    from cassandra.cluster import Cluster

    from sahara_es.store import Store

CASSANDRA_HOST = os.environ.get("SAHARA_ES_CASSANDRA_HOST", "127.0.0.1")
# The service's role that tools/cassandra created on the node, and its password (mode 0600).
# Every cassandra:// URL of the tests and benchmarks picks it up through the environment
# (child processes too), so none of them names a password.
CASSANDRA_CREDENTIALS = Path(
    os.environ.get("SAHARA_ES_CACHE", Path(__file__).resolve().parent.parent / ".cache")
) / "cassandra-credentials"
if CASSANDRA_CREDENTIALS.exists():
    os.environ.setdefault(CREDENTIALS_ENV, str(CASSANDRA_CREDENTIALS))
# Two checkouts may share one node: each names its own keyspace.
CASSANDRA_TEST_KEYSPACE = os.environ.get("SAHARA_ES_TEST_KEYSPACE", "sahara_es_test")
# Small partitions so that tests cross partitions (the production default is 5000 events).
CASSANDRA_TEST_URL = (
    f"cassandra://{CASSANDRA_HOST}:9042/{CASSANDRA_TEST_KEYSPACE}?partition_size=100"
)


def drop_cassandra_test_keyspace() -> None:
    """Each test session starts from an empty keyspace, so feeds hold only its own events."""
    drop_cassandra_keyspace(CASSANDRA_TEST_KEYSPACE)


def cassandra_cluster(host: str = CASSANDRA_HOST, **options: Any) -> Cluster:
    """A driver ``Cluster`` on the test node, logged in as the service's role."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    credentials = None
    if CREDENTIALS_ENV in os.environ:
        from sahara_es.store import parse_store_url

        config: CassandraConfig = parse_store_url(f"cassandra://{host}")[1]["config"]
        credentials = read_credentials(config)
    # Nagle off, as the store has it: the raw figures the benchmarks compare against
    # must not pay the 40 ms of a delayed ACK that the store does not.
    options.setdefault("sockopts", [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return Cluster([host], protocol_version=5,
                   auth_provider=PlainTextAuthProvider(*credentials) if credentials else None,
                   **options)


def drop_cassandra_keyspace(keyspace: str) -> None:
    cluster = cassandra_cluster()
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


class CountingStore:
    """The real store, with every call it is asked counted by the thread that asked it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._calls: dict[int, Counter[str]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._calls.setdefault(threading.get_ident(), Counter())[name] += 1
            return attribute(*args, **kwargs)

        return counted

    def calls(self) -> Counter[str]:
        """Every call so far, by any thread (a copy)."""
        with self._lock:
            return sum(self._calls.values(), Counter())

    def calls_here(self) -> Counter[str]:
        """The calls made by this thread so far (a copy)."""
        with self._lock:
            return Counter(self._calls.get(threading.get_ident(), Counter()))
