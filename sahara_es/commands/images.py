"""The image registry's commands: register, unregister and tag the infrastructure's images,
and the check that templates and clusters name an image Sahara may use.

The images are the infrastructure's catalogue (``infra.base.Image``, seen here through
``OfferedImage``): an id not in it does not exist. A project sees the cloud's images and its
own; only admins change the registration of the cloud's images (as only Glance's admins could
set the properties Sahara kept on a public image), a project that of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from sahara_es.commands import repository
from sahara_es.commands.caller import Caller
from sahara_es.commands.errors import ChangedConcurrently, Forbidden, Invalid, NotVisible
from sahara_es.events import Aggregate, DomainEvent, RecordedEvent, registry
from sahara_es.events import images as ev
from sahara_es.events.images import Registration
from sahara_es.store import ConcurrencyConflict, Store

USERNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
"""A login user: a POSIX user name (at most 32 characters)."""

TAG = re.compile(r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-_]*[a-zA-Z0-9])\.)*"
                 r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-_]*[A-Za-z0-9])$")
"""Sahara's ``valid_tag``: dot-separated words of letters, digits, ``-`` and ``_``."""

MAX_TAG = 255
MAX_TAGS = 100


class OfferedImage(Protocol):
    """An image of the infrastructure's catalogue (``infra.base.Image``)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def project_id(self) -> str | None: ...


Images = Mapping[str, OfferedImage]

Decision = Callable[[Registration], Sequence[DomainEvent]]
"""What to record, given the registration as it is (nothing: no change)."""


class ImageNotRegistered(Invalid):
    """Sahara's ``IMAGE_NOT_REGISTERED``: the image exists but is not Sahara's to use."""

    code = "image-not-registered"


@runtime_checkable
class ChecksImages(Protocol):
    """A catalog that checks the images templates and clusters name
    (``plugins.catalog.PluginCatalog``)."""

    def check_image(self, image_id: str, plugin: str, version: str, caller: Caller, *,
                    what: str = "image") -> None:
        """``check_usable`` with the catalogue and the plugin version's required tags."""


class ImageRegistry(Aggregate):
    """One image's stream folded into its registration."""

    snapshot_every = 200

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.state = Registration()

    def apply(self, event: RecordedEvent) -> None:
        self.state = ev.evolve(self.state, registry.decode(event),
                               occurred_at=event.metadata.occurred_at.isoformat())

    def to_snapshot(self) -> dict[str, object]:
        return {"registered": self.state.registered, "username": self.state.username,
                "description": self.state.description, "tags": self.state.tags,
                "updated_at": self.state.updated_at}

    def from_snapshot(self, state: dict[str, object]) -> None:
        self.state = Registration(**state)  # type: ignore[arg-type]


# -- reads --------------------------------------------------------------------------------

def visible_to(caller: Caller, image: OfferedImage) -> bool:
    return image.project_id is None or caller.is_admin or image.project_id == caller.project_id


def offered(images: Images, image_id: str, caller: Caller) -> OfferedImage:
    """The image, if the infrastructure offers it and the caller may see it (``NotVisible``
    otherwise: another project's image is reported as a missing one)."""
    image = images.get(image_id)
    if image is None or not visible_to(caller, image):
        raise NotVisible(f"image {image_id} not found")
    return image


def registration(store: Store, image_id: str) -> Registration:
    return load(store, image_id).state


def load(store: Store, image_id: str) -> ImageRegistry:
    return repository.load(store, ImageRegistry, ev.stream(image_id))


def registered(store: Store, images: Images, caller: Caller, *, name: str | None = None,
               tags: Collection[str] = (), username: str | None = None
               ) -> list[tuple[OfferedImage, Registration]]:
    """The registered images the caller sees, in the catalogue's order: those whose name
    contains ``name``, carrying every tag of ``tags``, registered with ``username``. One
    small stream is read per image the caller sees."""
    found = []
    for image in images.values():
        if not visible_to(caller, image) or (name and name not in image.name):
            continue
        state = registration(store, image.id)
        if not state.registered or not set(tags) <= set(state.tags):
            continue
        if username is not None and state.username != username:
            continue
        found.append((image, state))
    return found


# -- commands -----------------------------------------------------------------------------

def register(store: Store, images: Images, caller: Caller, image_id: str, username: str,
             description: str = "") -> Registration:
    """Register the image (or change its registration) with the user nodes booted from it
    are logged in as, and a description."""
    check_username(username)
    return _record(store, images, caller, image_id,
                   lambda _: [ev.ImageRegistered(username, description or "")])


def unregister(store: Store, images: Images, caller: Caller, image_id: str) -> Registration:
    """Unregister it, its tags with it; unregistering an unregistered image changes
    nothing."""
    return _record(store, images, caller, image_id,
                   lambda state: [ev.ImageUnregistered()]
                   if state.registered or state.tags else [])


def set_tags(store: Store, images: Images, caller: Caller, image_id: str,
             tags: list[str]) -> Registration:
    """Make ``tags`` the image's tags: the missing ones added, the others removed, in one
    append."""
    check_tags(tags)
    wanted = list(dict.fromkeys(tags))

    def changes(state: Registration) -> list[DomainEvent]:
        events: list[DomainEvent] = []
        added = [t for t in wanted if t not in state.tags]
        removed = [t for t in state.tags if t not in wanted]
        if added:
            events.append(ev.ImageTagsAdded(added))
        if removed:
            events.append(ev.ImageTagsRemoved(removed))
        return events

    return _record(store, images, caller, image_id, changes)


def remove_tags(store: Store, images: Images, caller: Caller, image_id: str
                ) -> Registration:
    return set_tags(store, images, caller, image_id, [])


def check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise Invalid(f"username {username[:40]!r}: a user name is 1-32 letters, digits, '_',"
                      " '.' or '-', starting with a letter or '_'")


def check_tags(tags: list[str]) -> None:
    if len(tags) > MAX_TAGS:
        raise Invalid(f"an image has at most {MAX_TAGS} tags; {len(tags)} were given")
    for tag in tags:
        if len(tag) > MAX_TAG or not TAG.match(tag):
            raise Invalid(f"tag {tag[:40]!r}: tags are letters, digits, '-' and '_' (not at"
                          f" either end of a word), words joined by '.', at most {MAX_TAG}"
                          " characters")


def _record(store: Store, images: Images, caller: Caller, image_id: str,
            decide: Decision) -> Registration:
    image = offered(images, image_id, caller)
    if not (caller.is_admin or (image.project_id is not None
                                and image.project_id == caller.project_id)):
        raise Forbidden(f"image {image_id} is the cloud's: only an admin changes its"
                        " registration and tags")
    for _ in range(ATTEMPTS):
        aggregate = load(store, image_id)
        events = decide(aggregate.state)
        if not events:
            return aggregate.state
        records = [registry.new_event(event, caller.metadata()) for event in events]
        try:
            repository.save(store, aggregate, records)
        except ConcurrencyConflict:
            continue  # another change got there first: decide again on what it left
        return aggregate.state
    raise ChangedConcurrently(f"image {image_id} was changed by other requests meanwhile;"
                              " read it again and retry")


ATTEMPTS = 5


# -- the check templates and clusters make ---------------------------------------------------

def check_usable(store: Store, images: Images, image_id: str, required_tags: Collection[str],
                 caller: Caller, *, what: str = "image") -> None:
    """``Invalid`` unless the image exists (for the caller), is registered, and carries every
    tag of ``required_tags`` (the plugin version's), each refusal saying which."""
    image = images.get(image_id)
    if image is None or not visible_to(caller, image):
        seen = sorted(i.id for i in images.values() if visible_to(caller, i))
        raise Invalid(f"{what} {image_id[:60]!r} does not exist; images:"
                      f" {', '.join(seen) or 'none'}")
    state = registration(store, image_id)
    if not state.registered:
        raise ImageNotRegistered(f"{what} {image_id} is not registered; an admin registers it"
                                 " (POST /v2/images/{image_id} with its username)")
    missing = [t for t in required_tags if t not in state.tags]
    if missing:
        raise Invalid(f"{what} {image_id} lacks the tags the plugin requires:"
                      f" {', '.join(missing)} (it has {', '.join(state.tags) or 'none'})")


def check_image(catalog: object, image_id: str | None, plugin: str, version: str,
                caller: Caller, *, what: str = "image") -> None:
    """Check ``image_id`` when one is given (none: the provider's default image); a catalog
    that cannot check images refuses every image named."""
    if not image_id:
        return
    if not isinstance(catalog, ChecksImages):
        raise Invalid(f"{what} {image_id!r}: images cannot be checked here")
    catalog.check_image(image_id, plugin, version, caller, what=what)
