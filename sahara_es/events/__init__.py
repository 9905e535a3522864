"""Event records, event types and aggregates: the innermost layer, importing nothing else."""

from sahara_es.events.aggregate import Aggregate
from sahara_es.events.records import Metadata, NewEvent, RecordedEvent, category_of, utcnow
from sahara_es.events.registry import DomainEvent, EventRegistry, UnknownEventType, registry

__all__ = [
    "Aggregate",
    "DomainEvent",
    "EventRegistry",
    "Metadata",
    "NewEvent",
    "RecordedEvent",
    "UnknownEventType",
    "category_of",
    "registry",
    "utcnow",
]
