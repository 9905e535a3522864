"""Loading and saving aggregates: the latest snapshot plus the events after it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sahara_es.events import Aggregate, NewEvent
from sahara_es.store import Lease, Snapshot, Store

A = TypeVar("A", bound=Aggregate)


def load(store: Store, factory: Callable[[str], A], stream_id: str) -> A:
    """Rebuild an aggregate: restore its latest snapshot, then fold the newer events."""
    aggregate = factory(stream_id)
    snapshot = store.latest_snapshot(stream_id)
    # A snapshot taken by code that folded differently is passed over, never trusted.
    if snapshot is not None and snapshot.state.get("schema") == aggregate.snapshot_schema:
        aggregate.restore(snapshot.version, snapshot.state["state"])
    for event in store.read(stream_id, aggregate.version + 1):
        aggregate.fold(event)
    return aggregate


def save(store: Store, aggregate: Aggregate, events: Sequence[NewEvent],
         *, lease: Lease | None = None) -> int:
    """Append ``events`` after the aggregate's version (``ConcurrencyConflict``, nothing
    written, if the stream moved), fold them, snapshot when due. The one append-then-fold."""
    before = aggregate.version
    store.append(aggregate.stream_id, events, before, lease=lease)
    for event in store.read(aggregate.stream_id, before + 1, to_version=before + len(events)):
        aggregate.fold(event)
    every = aggregate.snapshot_every
    if aggregate.version // every > before // every:
        store.save_snapshot(Snapshot(aggregate.stream_id, aggregate.version, {
            "schema": aggregate.snapshot_schema, "state": aggregate.to_snapshot()}))
    return aggregate.version
