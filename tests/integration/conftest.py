"""Local nodes for the tests of the infrastructure and of each plugin: a SQLite store of the
test's own, a local provider rooted in a folder its nodes' users can traverse (every instance
deleted afterwards), a cluster key pair and an SSH pool holding it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_es.infra import LocalProvider, SSHPool, generate_keypair
from sahara_es.store import Store, open_store
from tests.nodes import node_root, remove_node_root


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/s.db", upgrade=True)
    yield store
    store.close()


@pytest.fixture
def nodes_root() -> Iterator[Path]:
    """A root for local nodes that their users can traverse (not pytest's 0700 tmp_path)."""
    folder = node_root()
    yield folder
    remove_node_root(folder)


@pytest.fixture
def provider(sqlite_store: Store, nodes_root: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(sqlite_store, root=nodes_root / "infra", stop_grace=2.0)
    yield provider
    for instance in provider.list_instances():
        provider.delete_instance(instance.name)


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return generate_keypair("test-cluster")


@pytest.fixture
def pool(keypair: tuple[str, str]) -> Iterator[SSHPool]:
    with SSHPool(keypair[0], connect_attempts=3) as pool:
        yield pool
