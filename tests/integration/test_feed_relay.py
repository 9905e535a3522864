"""The relay's own rules, step by step on the real node: what a mark, a clear, a fence and a
hole do. (``test_feed_never_skips.py`` attacks the whole with real processes.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sahara_es.store import LeaseLost, parse_store_url
from sahara_es.store.cassandra import CassandraStore
from sahara_es.store.cassandra_feed import FEED_STREAM, FeedRelay, StoredEvent
from tests.conftest import require_backend
from tests.factories import CASSANDRA_HOST, drop_cassandra_keyspace, events, new_stream

KEYSPACE = "sahara_es_test_relay"


@pytest.fixture(scope="module")
def store() -> Iterator[CassandraStore]:
    """A store that never relays by itself: each test runs the relays it names."""
    require_backend("cassandra")
    drop_cassandra_keyspace(KEYSPACE)
    url = f"cassandra://{CASSANDRA_HOST}:9042/{KEYSPACE}?partition_size=100&feed_relay=off"
    store = CassandraStore(parse_store_url(url)[1]["config"])
    store.upgrade()
    yield store
    store.close()


@pytest.fixture()
def relay(store: CassandraStore) -> Iterator[FeedRelay]:
    relay = FeedRelay(store, ttl=1.0, owner="relay-a")
    yield relay
    relay.stop()


def marks(store: CassandraStore, stream: str) -> list[dict[str, Any]]:
    return [m for m in store._marked_heads(10_000) if m["stream_id"] == stream]


def feed(store: CassandraStore) -> list[tuple[str, int]]:
    return [(e.stream_id, e.version) for e in store.read_feed(None, limit=100_000)]


def test_an_append_marks_its_head_and_a_relay_pass_clears_it(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    stream = new_stream()
    store.append(stream, events(3), 0)
    assert [m["head_version"] for m in marks(store, stream)] == [3]

    relay.pass_once()

    assert marks(store, stream) == []
    assert [v for s, v in feed(store) if s == stream] == [1, 2, 3]


def test_a_mark_set_after_the_relay_read_it_survives_the_clear(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    stream = new_stream()
    store.append(stream, events(1), 0)

    def commit_meanwhile(step: str) -> None:
        if step == "relay.after_read":  # between the relay's read and its clear
            store.on_step = None
            store.append(stream, events(1), 1)

    store.on_step = commit_meanwhile
    relay.pass_once()

    [still] = marks(store, stream)
    assert still["head_version"] == 2 and still["relayed_version"] == 1
    relay.pass_once()
    assert marks(store, stream) == []
    assert [v for s, v in feed(store) if s == stream] == [1, 2]


def test_each_stream_reaches_the_feed_in_version_order_across_partitions(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    stream = new_stream()
    version = 0
    while version < 250:  # partitions of 100: three of them, one pass
        version = store.append(stream, events(50), version)

    relay.pass_once()

    assert [v for s, v in feed(store) if s == stream] == list(range(1, 251))


def test_a_relay_that_lost_its_lease_can_no_longer_append_to_the_feed(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    relay.pass_once()
    stale = relay._lease
    assert stale is not None
    committed = store.stream_version(FEED_STREAM)
    time.sleep(1.2)  # the lease expires
    newer = FeedRelay(store, ttl=30.0, owner="relay-b")
    try:
        stream = new_stream()
        store.append(stream, events(2), 0)
        assert newer.pass_once() >= 2  # fenced the feed with a newer epoch, relayed

        late = list(store._stored(stream, 1, 2))
        copies = [StoredEvent(r["event_id"], "Stale", 1, r["data"], r["metadata"],
                              origin_stream=stream, origin_version=r["version"]) for r in late]
        with pytest.raises(LeaseLost):
            store._append_rows(FEED_STREAM, copies, store.stream_version(FEED_STREAM), stale,
                               mark=False)

        delivered = store.read_feed(str(committed), limit=10)
        assert [(e.stream_id, e.version, e.type) for e in delivered] == [
            (stream, 1, "ThingHappened"), (stream, 2, "ThingHappened")]
    finally:
        newer.stop()


class NoteLost(Exception):
    """A relay stopped after appending its copies, before noting how far it relayed."""


def test_copies_whose_note_never_landed_are_not_copied_again_by_the_relay_or_its_successor(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    def lose_the_note(step: str) -> None:
        if step == "relay.after_feed_append":
            raise NoteLost

    first, second = new_stream(), new_stream()
    store.append(first, events(3), 0)
    store.on_step = lose_the_note
    with pytest.raises(NoteLost):
        relay.pass_once()
    store.on_step = None
    assert [m["relayed_version"] for m in marks(store, first)] == [None]  # still marked

    relay.pass_once()  # the same relay: it knows what it copied
    assert marks(store, first) == []

    store.append(second, events(2), 0)
    store.on_step = lose_the_note
    with pytest.raises(NoteLost):
        relay.pass_once()
    store.on_step = None
    relay.stop()  # gives the lease up, its copies of ``second`` unnoted
    successor = FeedRelay(store, ttl=30.0, owner="relay-c")
    try:
        successor.pass_once()  # it reads what the feed holds lately when it takes over
    finally:
        successor.stop()

    assert marks(store, second) == []
    delivered = feed(store)
    assert [v for s, v in delivered if s == first] == [1, 2, 3]
    assert [v for s, v in delivered if s == second] == [1, 2]


def test_an_older_partition_found_later_still_reaches_the_feed_first(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    stream = new_stream()
    version = 0
    while version < 150:  # partitions of 100: 0 and 1
        version = store.append(stream, events(50), version)
    marks_of = {m["partition_nr"]: m for m in marks(store, stream)}
    # Partition 1's mark alone, as a pass that found partition 0's only later would see it.
    assert not relay._before_relayed(stream, 1)
    relay.pass_once()
    assert [v for s, v in feed(store) if s == stream] == list(range(1, 151))
    assert set(marks_of) == {0, 1}


def test_a_reader_stops_at_a_feed_version_it_cannot_read_yet(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    start = len(store.read_feed(None, limit=100_000))
    stream = new_stream()
    store.append(stream, events(3), 0)
    relay.pass_once()
    missing = start + 2
    # As a replica of another datacenter that has not received that row yet.
    store._run("DELETE FROM events WHERE stream_id = ? AND partition_nr IN ? AND version = ?",
               (FEED_STREAM, [(missing - 1) // 100 - 1, (missing - 1) // 100], missing))

    delivered = store.read_feed(str(start), limit=10)

    assert [e.version for e in delivered] == [1]


def test_a_position_of_the_feed_before_the_relay_reads_from_the_start(
    store: CassandraStore, relay: FeedRelay,
) -> None:
    store.append(new_stream(), events(1), 0)
    relay.pass_once()
    old = "29384221:4a7b1d3e-0000-1000-8000-000000000000:3"

    assert store.read_feed(old, limit=1)[0].position == "1"
