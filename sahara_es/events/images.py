"""The image registry's events: which of the infrastructure's images Sahara may use.

An image itself is the infrastructure's (its catalogue: ``infra.base.Image``); what Sahara
records about it, as Sahara kept it in Glance's image properties, is a fact of the store: its
registration (the user to log in as, a description) and its tags, which plugins require
(``spark`` and its version, say). Each image's facts are a stream of their own,
``image-<image id>``, and the registration is their fold (``evolve``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sahara_es.events.registry import DomainEvent, registry

CATEGORY = "image"


def stream(image_id: str) -> str:
    return f"{CATEGORY}-{image_id}"


@registry.event("ImageRegistered")
@dataclass(frozen=True)
class ImageRegistered(DomainEvent):
    """Registered, or its registration changed: both fields are replaced."""

    username: str
    description: str = ""


@registry.event("ImageTagsAdded")
@dataclass(frozen=True)
class ImageTagsAdded(DomainEvent):
    tags: list[str]


@registry.event("ImageTagsRemoved")
@dataclass(frozen=True)
class ImageTagsRemoved(DomainEvent):
    tags: list[str]


@registry.event("ImageUnregistered")
@dataclass(frozen=True)
class ImageUnregistered(DomainEvent):
    """No longer registered: its user, description and tags are gone with it (as Sahara
    removed all its properties)."""


@dataclass
class Registration:
    """What the registry says of one image: the fold of its stream."""

    registered: bool = False
    username: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    updated_at: str | None = None
    """When it last changed (ISO 8601), None if it never did."""


def evolve(state: Registration, event: DomainEvent, *, occurred_at: str) -> Registration:
    """``state`` after ``event``; an event of another kind changes nothing."""
    if isinstance(event, ImageRegistered):
        return Registration(True, event.username, event.description, list(state.tags),
                            occurred_at)
    if isinstance(event, ImageTagsAdded):
        tags = state.tags + [t for t in event.tags if t not in state.tags]
        return Registration(state.registered, state.username, state.description, tags,
                            occurred_at)
    if isinstance(event, ImageTagsRemoved):
        tags = [t for t in state.tags if t not in event.tags]
        return Registration(state.registered, state.username, state.description, tags,
                            occurred_at)
    if isinstance(event, ImageUnregistered):
        return Registration(updated_at=occurred_at)
    return state
