"""A months-long stream stays cheap: rebuilds read the latest snapshot and what followed."""

from __future__ import annotations

from typing import Any

from sahara_es.commands import repository
from sahara_es.events import Aggregate, RecordedEvent
from sahara_es.store import Store
from tests.factories import events, new_stream


class Counter(Aggregate):
    snapshot_every = 10_000

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.total = 0
        self.folded = 0

    def apply(self, event: RecordedEvent) -> None:
        self.total += event.data["n"]
        self.folded += 1

    def to_snapshot(self) -> dict[str, Any]:
        return {"total": self.total}

    def from_snapshot(self, state: dict[str, Any]) -> None:
        self.total = state["total"]


def test_a_fifty_thousand_event_stream_rebuilds_from_its_latest_snapshot(store: Store) -> None:
    stream = new_stream("cluster")
    counter = Counter(stream)
    while counter.version < 50_000:
        repository.save(store, counter, events(100))
    repository.save(store, counter, events(7))

    assert [e.version for e in store.read(stream, 49_990, to_version=50_010)] == list(
        range(49_990, 50_008)
    )
    rebuilt = repository.load(store, Counter, stream)

    assert rebuilt.version == 50_007
    assert rebuilt.total == counter.total
    assert rebuilt.folded == 7  # the snapshot at 50 000 plus seven events, not 50 007
    assert store.latest_snapshot(stream).version == 50_000


def test_a_snapshot_taken_by_code_that_folded_differently_is_passed_over(store: Store) -> None:
    stream = new_stream("cluster")
    counter = Counter(stream)
    while counter.version < 10_000:
        repository.save(store, counter, events(100))

    class Recounted(Counter):
        snapshot_schema = Counter.snapshot_schema + 1  # its apply changed

    rebuilt = repository.load(store, Recounted, stream)

    assert store.latest_snapshot(stream).version == 10_000
    assert rebuilt.version == 10_000
    assert rebuilt.folded == 10_000  # from the start, not from the old snapshot


def test_a_resource_loads_from_its_snapshot_and_the_events_after_it(store: Store) -> None:
    from sahara_es.commands import resources
    from sahara_es.commands.caller import Caller
    from sahara_es.events.resources import Kind, ResourceUpdated

    caller = Caller(project_id="p-snap", user="u")
    doc = resources.create(store, Kind.DATA_SOURCE, caller,
                           {"name": new_stream("ds"), "type": "swift", "url": "swift://c/o"})
    aggregate = resources.load(store, Kind.DATA_SOURCE, doc["id"])
    for n in range(resources.Resource.snapshot_every + 5):
        resources.append(store, aggregate, [ResourceUpdated({"description": f"d{n}"})],
                         caller)

    snapshot = store.latest_snapshot(aggregate.stream_id)
    loaded = resources.load(store, Kind.DATA_SOURCE, doc["id"])

    assert snapshot is not None and snapshot.version == resources.Resource.snapshot_every
    assert loaded.version == aggregate.version
    assert loaded.doc == aggregate.doc
