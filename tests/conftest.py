from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_es.cli.context import NODES_ENV
from sahara_es.store import Store, open_store
from tests.factories import (
    CASSANDRA_TEST_URL,
    cassandra_up,
    drop_cassandra_test_keyspace,
    store_url,
)
from tests.nodes import node_root, remove_node_root, sweep_node_roots

BACKENDS = ["sqlite", "cassandra"]


def require_backend(backend: str) -> None:
    if backend == "cassandra" and not cassandra_up():
        if os.environ.get("SAHARA_ES_REQUIRE_CASSANDRA"):
            pytest.fail("the Cassandra node is not running (tools/cassandra start)")
        pytest.skip("the Cassandra node is not running (tools/cassandra start)")


@pytest.fixture(scope="session")
def session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    require_backend(request.param)
    return str(request.param)


@pytest.fixture
def url(backend: str, session_folder: Path) -> str:
    return store_url(backend, session_folder)


_open: dict[str, Store] = {}


@pytest.fixture
def store(url: str) -> Store:
    """One store per backend for the whole session; tests keep apart by unique stream ids."""
    if url not in _open:
        if url == CASSANDRA_TEST_URL:
            drop_cassandra_test_keyspace()
        _open[url] = open_store(url, upgrade=True)
    return _open[url]


@pytest.fixture(scope="session", autouse=True)
def _nodes_dir() -> Iterator[Path]:
    """Engines and CLI runs of the session (child processes too) put their local nodes in a
    folder their users can traverse, removed at the end with whatever a failed test left."""
    folder = node_root()
    previous = os.environ.get(NODES_ENV)
    os.environ[NODES_ENV] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(NODES_ENV, None)
    else:
        os.environ[NODES_ENV] = previous
    remove_node_root(folder)
    sweep_node_roots()


@pytest.fixture(scope="session", autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    for store in _open.values():
        store.close()
