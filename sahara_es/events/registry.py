"""Event types: frozen dataclasses registered by name and schema version, with upcasters.

An event type is declared once::

    @registry.event("ClusterRenamed", version=2)
    @dataclass(frozen=True)
    class ClusterRenamed(DomainEvent):
        name: str
        previous_name: str

and an old payload is brought forward by upcasters, one per version step::

    @registry.upcaster("ClusterRenamed", from_version=1)
    def _add_previous_name(data): return {**data, "previous_name": ""}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

from sahara_es.events.records import Metadata, NewEvent, RecordedEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
E = TypeVar("E", bound="DomainEvent")


class UnknownEventType(LookupError):
    """A stored event names a type (or a version) this code does not know."""


@dataclass(frozen=True)
class DomainEvent:
    """Base of every domain event: a past-tense fact with primitive fields."""

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


class EventRegistry:
    def __init__(self) -> None:
        self._types: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def event(self, name: str, *, version: int = 1) -> Callable[[type[E]], type[E]]:
        def register(cls: type[E]) -> type[E]:
            if name in self._types and self._types[name] is not cls:
                raise ValueError(f"event type {name!r} is already registered")
            cls.event_type = name
            cls.schema_version = version
            self._types[name] = cls
            return cls

        return register

    def upcaster(self, name: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[(name, from_version)] = fn
            return fn

        return register

    def known(self, name: str) -> bool:
        return name in self._types

    def new_event(self, event: DomainEvent, metadata: Metadata | None = None) -> NewEvent:
        if self._types.get(event.event_type) is not type(event):
            raise UnknownEventType(f"{type(event).__name__} is not registered")
        return NewEvent(
            type=event.event_type,
            schema_version=event.schema_version,
            data=event.to_data(),
            metadata=metadata or Metadata(),
        )

    def upcast(self, name: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        cls = self._lookup(name)
        while version < cls.schema_version:
            step = self._upcasters.get((name, version))
            if step is None:
                raise UnknownEventType(f"no upcaster for {name} from version {version}")
            data = step(data)
            version += 1
        if version > cls.schema_version:
            raise UnknownEventType(
                f"{name} v{version} is newer than this code (v{cls.schema_version})"
            )
        return data

    def decode(self, recorded: RecordedEvent) -> DomainEvent:
        cls = self._lookup(recorded.type)
        data = self.upcast(recorded.type, recorded.schema_version, recorded.data)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def _lookup(self, name: str) -> type[DomainEvent]:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventType(f"unknown event type {name!r}") from None


registry = EventRegistry()
"""The process-wide registry that the service's own event types register into."""
