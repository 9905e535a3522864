"""The stored shape of an event: what is appended and what is read back.

The store deals only in these records; turning them into domain dataclasses (and upcasting
old payloads) is the registry's job, so that no backend needs to know any event type.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Metadata:
    """Who, when, where and why an event was written; never part of the domain payload."""

    occurred_at: datetime = field(default_factory=utcnow)
    actor: str | None = None
    project_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    engine_id: str | None = None
    region: str | None = None
    source_address: str | None = None
    """Where the command came from (the API client's address); absent from older events."""

    def to_dict(self) -> dict[str, Any]:
        # Every field is a scalar, so a shallow copy is enough; asdict() deep-copies, at ~50 µs
        # per event written.
        return {**vars(self), "occurred_at": self.occurred_at.isoformat()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Metadata:
        values = dict(raw)
        values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    """An event about to be appended to a stream."""

    type: str
    data: dict[str, Any]
    schema_version: int = 1
    metadata: Metadata = field(default_factory=Metadata)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class RecordedEvent:
    """An event as the store holds it: immutable, numbered within its stream.

    ``position`` is the event's place in the global feed: an opaque token, ordered within one
    store, that a consumer hands back to ``read_feed`` to continue after this event.
    """

    stream_id: str
    version: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: Metadata
    position: str = ""

    @property
    def category(self) -> str:
        return category_of(self.stream_id)


def category_of(stream_id: str) -> str:
    """``cluster-1234`` belongs to the category ``cluster``."""
    return stream_id.split("-", 1)[0]
