from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_es.cli.context import NODES_ENV
from sahara_es.store import Store, open_store
from tests.factories import (
    CASSANDRA_HOST,
    CASSANDRA_TEST_URL,
    cassandra_up,
    drop_cassandra_test_keyspace,
    store_url,
)
from tests.nodes import node_root, remove_node_root, sweep_node_roots

BACKENDS = ["sqlite", "cassandra"]
REQUIRE_ENV = "SAHARA_ES_REQUIRE_CASSANDRA"
NOT_RUNNING = "the Cassandra node is not running (tools/cassandra start)"
START_HINT = "tools/cassandra start"
"""Every skip for want of the node says this (the tests that check the node themselves too),
so the session's summary counts them all."""


def require_backend(backend: str) -> None:
    """Skip a Cassandra test when the node is not running (counted and reported loudly at the
    end of the session), or fail it when ``SAHARA_ES_REQUIRE_CASSANDRA`` is set (tox, CI)."""
    if backend == "cassandra" and not cassandra_up():
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{NOT_RUNNING}; {REQUIRE_ENV} is set")
        pytest.skip(NOT_RUNNING)


def cassandra_skips(skipped: list[pytest.TestReport]) -> int:
    """How many of the skipped tests were skipped because the node was not running."""
    return sum(1 for report in skipped if START_HINT in str(report.longrepr))


def pytest_report_header(config: pytest.Config) -> str | None:
    if os.environ.get(REQUIRE_ENV) or cassandra_up():
        return None
    return (f"cassandra: no node at {CASSANDRA_HOST}:9042, its tests will be SKIPPED"
            f" ({START_HINT}, or {REQUIRE_ENV}=1 to fail them)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """Skipping the Cassandra tests is loud: a run without the node passes while testing
    nothing of Cassandra, so the summary says how many were skipped and how to run them."""
    count = cassandra_skips(terminalreporter.stats.get("skipped", []))
    if not count:
        return
    terminalreporter.write_sep(
        "!", f"{count} Cassandra test{'s' if count != 1 else ''} SKIPPED: the node is not"
             " running", red=True, bold=True)
    terminalreporter.write_line(
        f"Nothing of the Cassandra backend was tested. Start the node ({START_HINT}, it"
        f" listens on {CASSANDRA_HOST}:9042) and run again, or set {REQUIRE_ENV}=1 to make"
        " them fail instead of skipping (tox and tools/test do).", yellow=True)


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
