"""Aggregates: state that is nothing but the fold of a stream's events.

A snapshot is the aggregate's state at a version, so a rebuild of a months-long stream reads
the latest snapshot plus the events after it instead of the whole history.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sahara_es.events.records import RecordedEvent


class Aggregate:
    """Subclasses implement ``apply`` and, to be snapshotted, ``to_snapshot``/``from_snapshot``."""

    snapshot_every: ClassVar[int] = 1000
    snapshot_schema: ClassVar[int] = 1
    """Raised whenever ``apply`` or the snapshot's shape changes: older snapshots are then
    passed over and the stream folded from its start."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.version = 0

    def fold(self, event: RecordedEvent) -> None:
        if event.version != self.version + 1:
            raise ValueError(
                f"{self.stream_id}: event v{event.version} does not follow v{self.version}"
            )
        self.apply(event)
        self.version = event.version

    def apply(self, event: RecordedEvent) -> None:
        raise NotImplementedError

    def to_snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, version: int, state: dict[str, Any]) -> None:
        self.version = version
        self.from_snapshot(state)

    def from_snapshot(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
