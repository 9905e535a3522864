"""Feed entries of concurrent appends share requests, on the real node; a new stream is
listed by its category without a request of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cassandra.query import BatchStatement

from sahara_es.store import parse_store_url
from sahara_es.store.cassandra import CassandraStore
from tests.conftest import require_backend
from tests.factories import CASSANDRA_TEST_URL, events, new_stream


class Spy:
    """The store's session as the group commit sees it: counts requests, or refuses them."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.requests: list[Any] = []
        self.refuse = False
        self.lock = threading.Lock()

    def execute_async(self, request: Any) -> Any:
        with self.lock:
            self.requests.append(request)
        if self.refuse:
            raise RuntimeError("request refused")
        return self.session.execute_async(request)


@pytest.fixture
def store() -> Iterator[CassandraStore]:
    require_backend("cassandra")
    store = CassandraStore(parse_store_url(CASSANDRA_TEST_URL)[1]["config"])
    store.upgrade()
    yield store
    store.close()


def spy_on(store: CassandraStore) -> Spy:
    spy = Spy(store._grouped._session)
    store._grouped._session = spy
    return spy


def feed_entries(store: CassandraStore, since: float) -> set[str]:
    streams: set[str] = set()
    for bucket in range(store._bucket(since), store._bucket(time.time()) + 1):
        rows = store._run("SELECT stream_id FROM feed WHERE bucket = ?", (bucket,))
        streams.update(row["stream_id"] for row in rows)
    return streams


def test_concurrent_appends_share_batches_and_every_entry_and_row_lands(
    store: CassandraStore,
) -> None:
    spy = spy_on(store)
    category = new_stream("grouped").replace("-", "")
    streams = [f"{category}-{n}" for n in range(160)]
    started = time.time()

    with ThreadPoolExecutor(16) as pool:
        versions = list(pool.map(lambda stream: store.append(stream, events(1), 0), streams))

    assert versions == [1] * len(streams)
    assert list(store.list_streams(category)) == sorted(streams)
    assert set(streams) <= feed_entries(store, started)
    assert len(spy.requests) < len(streams)
    assert any(isinstance(r, BatchStatement) and len(r) > 1 for r in spy.requests)


def test_a_failed_grouped_write_is_written_again_by_the_append(store: CassandraStore) -> None:
    spy = spy_on(store)
    spy.refuse = True
    stream = new_stream("refused")
    started = time.time()

    assert store.append(stream, events(2), 0) == 2

    assert len(spy.requests) == 1  # the feed entry, refused
    assert stream in store.list_streams("refused")
    assert stream in feed_entries(store, started)


def test_streams_listed_by_the_old_category_table_are_still_listed(
    store: CassandraStore,
) -> None:
    category = new_stream("legacy").replace("-", "")
    old, new = f"{category}-old", f"{category}-new"
    store._run("INSERT INTO streams (category, stream_id) VALUES (?, ?)", (category, old))
    store.append(new, events(1), 0)
    store.append(old, events(1), 0)  # a stream made before the index, written since

    assert list(store.list_streams(category)) == sorted([old, new])
