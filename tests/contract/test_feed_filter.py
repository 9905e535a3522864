"""Reading the feed for some stream categories only (``read_feed_page``): the same events as
the whole feed, at the same positions, and a position that passes what was skipped."""

from __future__ import annotations

import time
import uuid

from sahara_es.commands import resources
from sahara_es.commands.caller import Caller
from sahara_es.events import RecordedEvent, category_of
from sahara_es.events.resources import Kind
from sahara_es.projections import RESOURCE_PROJECTIONS
from sahara_es.projections.base import PAGE as TAIL_PAGE
from sahara_es.projections.memory import FeedTail, MemoryReads
from sahara_es.projections.resources import CLUSTER_KEYS
from sahara_es.store import Store
from tests.factories import events, new_stream

PAGE = 7


def _feed_end(store: Store) -> str | None:
    """The position of the feed's last entry, once nothing more comes (the Cassandra relay
    copies appends into the feed after they are made)."""
    after, quiet_since = None, None
    deadline = time.time() + 60
    while time.time() < deadline:
        page = store.read_feed_page(after, limit=1000)
        after = page.position
        if page.scanned:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 1.5:
            return after
        else:
            time.sleep(0.1)
    raise AssertionError("the feed kept growing")


def _append_mixed(store: Store, kept: str, skipped: str) -> set[str]:
    """Streams of both categories, their appends interleaved, mostly of ``skipped``."""
    streams = [new_stream(kept) for _ in range(2)] + [new_stream(skipped) for _ in range(3)]
    versions = dict.fromkeys(streams, 0)
    for round_ in range(4):
        for stream in streams:
            versions[stream] = store.append(stream, events(round_ + 2), versions[stream])
    return set(streams)


def _keys(page: list[RecordedEvent]) -> list[tuple[str, int, str]]:
    return [(e.stream_id, e.version, e.position) for e in page]


def test_a_filtered_page_is_the_whole_page_less_the_other_categories(store: Store) -> None:
    kept, skipped = f"keep{uuid.uuid4().hex[:8]}", f"skip{uuid.uuid4().hex[:8]}"
    start = _feed_end(store)
    streams = _append_mixed(store, kept, skipped)
    end = _feed_end(store)

    after, pages = start, 0
    while after != end:
        whole = store.read_feed_page(after, limit=PAGE)
        filtered = store.read_feed_page(after, limit=PAGE, categories=frozenset({kept}))

        assert _keys(filtered) == _keys([e for e in whole if e.category == kept])
        assert filtered.scanned == whole.scanned == len(whole) > 0
        assert filtered.position == whole.position == whole[-1].position
        assert _keys(whole) == _keys(store.read_feed(after, limit=PAGE))
        after, pages = filtered.position, pages + 1

    entries = sum(store.stream_version(stream) for stream in streams)
    assert pages == -(-entries // PAGE)


def test_a_consumer_of_some_categories_gets_all_their_events_and_reaches_the_end(
    store: Store,
) -> None:
    kept, skipped = f"keep{uuid.uuid4().hex[:8]}", f"skip{uuid.uuid4().hex[:8]}"
    start = _feed_end(store)
    streams = _append_mixed(store, kept, skipped)
    end = _feed_end(store)

    got: list[RecordedEvent] = []
    after = start
    while True:
        page = store.read_feed_page(after, limit=PAGE, categories=frozenset({kept}))
        got.extend(page)
        after = page.position
        if page.scanned < PAGE:
            break

    assert after == end
    assert {category_of(e.stream_id) for e in got} == {kept}
    for stream in (s for s in streams if category_of(s) == kept):
        assert [e.version for e in got if e.stream_id == stream] == list(
            range(1, store.stream_version(stream) + 1))


def test_a_page_of_only_skipped_entries_is_empty_but_passes_them(store: Store) -> None:
    skipped = f"skip{uuid.uuid4().hex[:8]}"
    start = _feed_end(store)
    store.append(new_stream(skipped), events(3 * PAGE), 0)
    end = _feed_end(store)

    nothing = store.read_feed_page(start, limit=PAGE, categories=frozenset({"none"}))
    whole = store.read_feed_page(start, limit=PAGE)
    assert list(nothing) == []
    assert nothing.scanned == PAGE
    assert nothing.position == whole[-1].position != start

    at_end = store.read_feed_page(end, limit=PAGE, categories=frozenset())
    assert (list(at_end), at_end.scanned, at_end.position) == ([], 0, end)


def test_an_event_after_skipped_ones_is_read_from_where_they_were_passed(store: Store) -> None:
    kept, skipped = f"keep{uuid.uuid4().hex[:8]}", f"skip{uuid.uuid4().hex[:8]}"
    start = _feed_end(store)
    store.append(new_stream(skipped), events(2 * PAGE), 0)
    passed = _feed_end(store)
    stream = new_stream(kept)
    store.append(stream, events(1), 0)
    _feed_end(store)

    after = start
    for _ in range(2):
        page = store.read_feed_page(after, limit=PAGE, categories=frozenset({kept}))
        assert list(page) == []
        after = page.position
    assert after == passed

    page = store.read_feed_page(after, limit=PAGE, categories=frozenset({kept}))
    assert [(e.stream_id, e.version) for e in page] == [(stream, 1)]
    assert page.position == page[-1].position


def test_the_api_memory_tail_passes_workflow_entries_and_folds_the_resources_after_them(
    store: Store,
) -> None:
    memory = MemoryReads(store, [p() for p in RESOURCE_PROJECTIONS.values()])
    assert memory.categories == {kind.value for kind in Kind} | {CLUSTER_KEYS}
    tail = FeedTail(memory, dict.fromkeys(memory.rows, _feed_end(store)))
    workflow, version = new_stream("taskrun"), 0
    while version < TAIL_PAGE + 50:  # more than a page of the tail, none of it folded
        version = store.append(workflow, events(100), version)
    project = f"p{uuid.uuid4().hex[:8]}"
    doc = resources.create(store, Kind.DATA_SOURCE, Caller(project_id=project),
                           {"name": "ds", "type": "swift", "url": "swift://c/o"})
    _feed_end(store)

    folded = tail.run_pass()

    assert folded == store.stream_version(Kind.DATA_SOURCE.stream(doc["id"]))
    assert [d["id"] for d in memory.rows[Kind.DATA_SOURCE].scan(project)] == [doc["id"]]
    assert tail.run_pass() == 0, "the tail read again what it had passed"
