"""Appending and reading events: the same behaviour on every backend."""

from __future__ import annotations

import time
import uuid

import pytest

from sahara_es.events import Metadata, NewEvent
from sahara_es.store import ConcurrencyConflict, Store
from tests.factories import events, new_stream


def test_appended_events_read_back_in_order_with_their_ids_and_metadata(store: Store) -> None:
    stream = new_stream()
    written = events(3, actor="alice", project_id="p1", correlation_id="req-1",
                     causation_id="cmd-1", engine_id="e1", region="dc1")
    assert store.append(stream, written, expected_version=0) == 3

    read = list(store.read(stream))

    assert [e.version for e in read] == [1, 2, 3]
    assert [e.event_id for e in read] == [e.event_id for e in written]
    assert [e.data for e in read] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert read[0].metadata == written[0].metadata
    assert read[0].metadata.project_id == "p1"
    assert read[0].type == "ThingHappened"
    assert store.stream_version(stream) == 3


def test_a_stale_expected_version_writes_nothing_and_reports_the_actual_version(
    store: Store,
) -> None:
    stream = new_stream()
    store.append(stream, events(2), expected_version=0)

    with pytest.raises(ConcurrencyConflict) as conflict:
        store.append(stream, events(5), expected_version=1)

    assert conflict.value.actual_version == 2
    assert conflict.value.retryable
    assert [e.version for e in store.read(stream)] == [1, 2]


def test_creating_a_stream_that_exists_is_a_conflict(store: Store) -> None:
    stream = new_stream()
    store.append(stream, events(1), expected_version=0)
    with pytest.raises(ConcurrencyConflict):
        store.append(stream, events(1), expected_version=0)


def test_an_expected_version_beyond_the_stream_is_a_conflict(store: Store) -> None:
    stream = new_stream()
    store.append(stream, events(1), expected_version=0)
    for beyond in (5, 99, 100, 101, 250):
        with pytest.raises(ConcurrencyConflict):
            store.append(stream, events(1), expected_version=beyond)
    assert store.stream_version(stream) == 1


def test_reads_start_and_stop_at_any_version_across_partitions(store: Store) -> None:
    stream = new_stream()
    version = 0
    for size in [7, 30, 99, 1, 64, 100, 3, 50] * 2:  # crosses several 100-event partitions
        version = store.append(stream, events(size), expected_version=version)

    assert [e.version for e in store.read(stream)] == list(range(1, version + 1))
    assert [e.version for e in store.read(stream, 95, to_version=210)] == list(range(95, 211))
    assert [e.version for e in store.read(stream, version)] == [version]
    assert list(store.read(stream, version + 1)) == []
    assert store.stream_version(stream) == version


def test_an_append_tried_again_after_it_applied_reports_its_version_not_a_conflict(
    store: Store,
) -> None:
    """What a caller does after an unknown outcome: the same append, the same event ids."""
    stream = new_stream()
    first = events(3)
    assert store.append(stream, first, 0) == 3
    assert store.append(stream, first, 0) == 3
    assert [e.event_id for e in store.read(stream)] == [e.event_id for e in first]
    with pytest.raises(ConcurrencyConflict):
        store.append(stream, events(3), 0)  # other events at those versions: a conflict


def test_an_unknown_stream_is_empty(store: Store) -> None:
    assert list(store.read(new_stream())) == []
    assert store.stream_version(new_stream()) == 0


def test_appends_take_one_to_a_hundred_events(store: Store) -> None:
    with pytest.raises(ValueError):
        store.append(new_stream(), [], expected_version=0)
    with pytest.raises(ValueError):
        store.append(new_stream(), events(101), expected_version=0)


def test_streams_are_listed_by_category(store: Store) -> None:
    category = f"cat{uuid.uuid4().hex[:8]}"
    streams = {new_stream(category) for _ in range(3)}
    for stream in streams:
        store.append(stream, events(1), expected_version=0)
    store.append(new_stream("other"), events(1), expected_version=0)

    assert set(store.list_streams(category)) == streams


def _drain(store: Store, after: str | None, streams: set[str]) -> tuple[list, str | None]:
    seen = []
    quiet_since = None
    deadline = time.time() + 60
    while time.time() < deadline:
        batch = store.read_feed(after, limit=50)
        if batch:
            after = batch[-1].position
            seen.extend(e for e in batch if e.stream_id in streams)
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 1.5:  # past the settle window and nothing more
            break
        else:
            time.sleep(0.1)
    return seen, after


def test_the_feed_delivers_every_event_once_in_a_stable_order(store: Store) -> None:
    streams = [new_stream() for _ in range(3)]
    versions = dict.fromkeys(streams, 0)
    for round_ in range(4):
        for stream in streams:
            versions[stream] = store.append(stream, events(round_ + 1), versions[stream])

    seen, _ = _drain(store, None, set(streams))
    keys = [(e.stream_id, e.version) for e in seen]

    assert len(keys) == len(set(keys)) == sum(versions.values())
    for stream in streams:
        assert [v for s, v in keys if s == stream] == list(range(1, versions[stream] + 1))
    positions = [e.position for e in store.read_feed(None, limit=100000)]
    assert positions == [e.position for e in store.read_feed(None, limit=100000)]


def test_the_feed_resumes_after_any_position(store: Store) -> None:
    stream = new_stream()
    store.append(stream, events(10), 0)
    seen, _ = _drain(store, None, {stream})
    middle = seen[4].position

    rest, _ = _drain(store, middle, {stream})

    assert [e.version for e in rest] == [6, 7, 8, 9, 10]


def test_an_old_payload_is_read_back_upcast_to_the_current_version(store: Store) -> None:
    from dataclasses import dataclass

    from sahara_es.events import DomainEvent, EventRegistry

    types = EventRegistry()

    @types.event("NodeGroupResized", version=2)
    @dataclass(frozen=True)
    class NodeGroupResized(DomainEvent):
        node_group: str
        count: int
        reason: str

    @types.upcaster("NodeGroupResized", from_version=1)
    def _v1_had_no_reason(data: dict) -> dict:
        return {**data, "reason": "unknown"}

    stream = new_stream()
    old = NewEvent(type="NodeGroupResized", schema_version=1,
                   data={"node_group": "workers", "count": 3}, metadata=Metadata())
    new = types.new_event(NodeGroupResized("workers", 4, "scale"))
    store.append(stream, [old, new], expected_version=0)

    decoded = [types.decode(e) for e in store.read(stream)]

    assert decoded == [NodeGroupResized("workers", 3, "unknown"),
                       NodeGroupResized("workers", 4, "scale")]
