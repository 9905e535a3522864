"""JSON encoding of event payloads and metadata, shared by both backends."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sahara_es.events import Metadata, NewEvent, RecordedEvent


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Any:
    return json.loads(text)


def encode(event: NewEvent) -> tuple[str, str]:
    """(data, metadata) as stored text."""
    return dumps(event.data), dumps(event.metadata.to_dict())


def decode(
    *,
    stream_id: str,
    version: int,
    event_id: uuid.UUID | str,
    event_type: str,
    schema_version: int,
    data: str,
    metadata: str,
    position: str,
) -> RecordedEvent:
    return RecordedEvent(
        stream_id=stream_id,
        version=version,
        event_id=event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id),
        type=event_type,
        schema_version=schema_version,
        data=loads(data),
        metadata=Metadata.from_dict(loads(metadata)),
        position=position,
    )


def as_recorded(stream_id: str, version: int, event: NewEvent) -> RecordedEvent:
    """``event`` as a read would return it once appended at ``version``: encoded and decoded
    as stored (no feed position yet), so that its writer need not read it back."""
    data, metadata = encode(event)
    return decode(stream_id=stream_id, version=version, event_id=event.event_id,
                  event_type=event.type, schema_version=event.schema_version, data=data,
                  metadata=metadata, position="")
