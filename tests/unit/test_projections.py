"""Projections apply each event once, whatever the feed delivers twice, and diff row by row."""

from __future__ import annotations

import uuid

from sahara_es.events import Metadata, RecordedEvent
from sahara_es.projections import Difference, diff
from sahara_es.projections.base import Doc, Projection


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
