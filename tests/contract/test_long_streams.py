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
