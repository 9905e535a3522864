"""Projections apply each event once, whatever the feed delivers twice, and diff row by row;
a runner given a lease fences its writes; only superseded generations are dropped."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from sahara_es.events import Metadata, NewEvent, RecordedEvent
from sahara_es.projections import Difference, ProjectionRunner, diff
from sahara_es.projections.base import Doc, Projection, drop_superseded
from sahara_es.store import Lease, LeaseLost
from sahara_es.store.sqlite import SQLiteStore


class Counting(Projection):
    name = "counting"

    def key(self, event: RecordedEvent) -> str | None:
        return event.stream_id

    def evolve(self, doc: Doc | None, event: RecordedEvent) -> Doc | None:
        return {"count": (doc or {}).get("count", 0) + 1}


def event(stream: str, version: int) -> RecordedEvent:
    return RecordedEvent(stream_id=stream, version=version, event_id=uuid.uuid4(), type="T",
                         schema_version=1, data={}, metadata=Metadata())


def test_an_event_delivered_twice_is_applied_once() -> None:
    projection = Counting()
    doc, changed = projection.apply(None, event("s-1", 1))
    doc, changed_again = projection.apply(doc, event("s-1", 1))
    doc, _ = projection.apply(doc, event("s-1", 2))

    assert changed and not changed_again
    assert doc == {"count": 2, "_applied": {"s-1": 2}}


def test_diff_walks_both_sides_in_key_order() -> None:
    live = iter([("a", {"n": 1}), ("b", {"n": 2}), ("d", {"n": 4})])
    rebuilt = iter([("a", {"n": 1}), ("b", {"n": 3}), ("c", {"n": 3})])

    assert list(diff(live, rebuilt)) == [
        Difference("b", "different", {"n": {"live": 2, "rebuilt": 3}}),
        Difference("c", "missing"),
        Difference("d", "extra"),
    ]


def test_a_generation_is_dropped_only_once_a_newer_one_is_live(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    store.upgrade()
    projection = Counting()
    for generation in (1, 2, 3):
        store.put_rows(projection.name, generation, {"a": {"gen": generation}})
    store.set_live_generation(projection.name, 2)

    dropped = {g: drop_superseded(store, projection, g) for g in (1, 2, 3)}

    assert dropped == {1: True, 2: False, 3: False}
    assert [store.get_row(projection.name, g, "a") for g in (1, 2, 3)] == [
        None, {"gen": 2}, {"gen": 3}]


def test_a_runner_given_a_lease_fences_its_rows_and_checkpoints(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    store.upgrade()
    store.append("s-1", [NewEvent(type="T", data={})], 0)
    newer = Lease("projector", "b", 2, time.time() + 10)
    older = Lease("projector", "a", 1, time.time() + 10)
    ProjectionRunner(store, Counting(), 1, fence=newer).catch_up()
    store.append("s-1", [NewEvent(type="T", data={})], 1)

    with pytest.raises(LeaseLost):
        ProjectionRunner(store, Counting(), 1, fence=older).catch_up()

    assert store.get_row("counting", 1, "s-1") == {"count": 1, "_applied": {"s-1": 1}}
    assert ProjectionRunner(store, Counting(), 1, fence=newer).catch_up() == 1
    assert store.get_row("counting", 1, "s-1") == {"count": 2, "_applied": {"s-1": 2}}
