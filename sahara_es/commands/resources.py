"""Commands on resources: create, update, delete, with names unique per project and kind and
references between resources that keep a used template from being changed or deleted.

Every command loads the aggregate (its stream's fold), checks its guards, then appends after
the version it read: a concurrent write makes the append fail (``ChangedConcurrently``, 409)
instead of being lost. Names are reserved by an LWT before the resource exists (not checked
and then inserted), so of 100 concurrent creates of one name exactly one wins.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import tenacity

from sahara_es.commands import repository
from sahara_es.commands.caller import Caller
from sahara_es.commands.errors import (
    ChangedConcurrently,
    Conflict,
    InUse,
    Invalid,
    NameInUse,
    NotVisible,
    Protected,
)
from sahara_es.events import (
    Aggregate,
    DomainEvent,
    NewEvent,
    RecordedEvent,
    category_of,
    registry,
    statuses,
)
from sahara_es.events import resources as ev
from sahara_es.events.resources import META, Doc, Kind
from sahara_es.store import ConcurrencyConflict, NameTaken, Store

REFERENCE_GRACE = 60.0
"""Seconds after which a reference whose referrer never came to exist (its creator died
between referencing and creating) no longer blocks a delete."""

REREADS = 5
"""Times a command on a stream that engines write too (a cluster's, a job's) reads it again
after another write got in between its read and its append."""

STALE_NAME_GRACE = 2.0
"""Seconds a name reserved for a resource that does not exist yet is presumed in flight."""


P = ParamSpec("P")
R = TypeVar("R")


def rereads_on_conflict(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command`` again, from a fresh read and its guards checked again, when its append
    met another write (``ChangedConcurrently``). A user's PATCH or DELETE of a cluster must not
    fail because its provisioning recorded a step meanwhile; a command so wrapped must be
    safe to run again after a partial success (it filters out what is already so)."""
    retrying = tenacity.retry(
        retry=tenacity.retry_if_exception_type(ChangedConcurrently),
        stop=tenacity.stop_after_attempt(REREADS),
        wait=tenacity.wait_random(0, 0.02), reraise=True)
    return functools.wraps(command)(retrying(command))


class IllegalStatusChange(Conflict):
    """An event would move a cluster's or a job's status along no transition of its table
    (``events.statuses``): a bug or a stale decision, refused before anything is written."""

    code = "illegal-transition"

    def __init__(self, error: statuses.IllegalTransition) -> None:
        super().__init__(str(error))
        self.from_status = error.from_status
        self.to_status = error.to_status


class Resource(Aggregate):
    """A resource's stream folded into its representation."""

    snapshot_every = 200

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.doc: Doc | None = None

    def apply(self, event: RecordedEvent) -> None:
        self.doc = ev.evolve(self.doc, registry.decode(event), stream_id=event.stream_id,
                             occurred_at=event.metadata.occurred_at.isoformat())
        if self.doc is not None:
            self.doc[META] = {**self.doc[META], "version": event.version}

    def to_snapshot(self) -> dict[str, Any]:
        return {"doc": self.doc}

    def from_snapshot(self, state: dict[str, Any]) -> None:
        self.doc = state["doc"]

    @property
    def exists(self) -> bool:
        return self.doc is not None and not self.doc[META]["deleted"]


def load(store: Store, kind: Kind, resource_id: str) -> Resource:
    """The resource from its latest snapshot and the events after it."""
    return repository.load(store, Resource, kind.stream(resource_id))


def visible(store: Store, kind: Kind, resource_id: str, caller: Caller) -> Resource:
    """The resource, if the caller may see it; ``NotVisible`` otherwise (another project's
    private resource is reported exactly as a missing one, so ids leak nothing)."""
    aggregate = load(store, kind, resource_id)
    if not aggregate.exists or not caller.can_see(aggregate.doc or {}):
        raise NotVisible(f"{kind.label} {resource_id} not found")
    return aggregate


def referenced(store: Store, kind: Kind, resource_id: str, caller: Caller) -> Resource:
    """A resource the request's body names (a job's cluster, a cluster's template...), if
    the caller may see it. One that does not exist, was deleted or is not the caller's to
    see makes the request ``Invalid`` (400), as in Sahara; only the resource a path names
    is a 404."""
    try:
        return visible(store, kind, resource_id, caller)
    except NotVisible:
        raise Invalid(f"{kind.label} {str(resource_id)[:100]!r} named in the request does"
                      " not exist") from None


def owned(store: Store, kind: Kind, resource_id: str, caller: Caller) -> Resource:
    """The resource, if the caller may change it."""
    aggregate = visible(store, kind, resource_id, caller)
    if not caller.owns(aggregate.doc or {}):
        raise NotVisible(f"{kind.label} {resource_id} not found in project {caller.project_id}")
    return aggregate


def append(store: Store, aggregate: Resource, events: Sequence[DomainEvent],
           caller: Caller) -> Doc:
    """Append after the version the guards were checked at; fold; the new representation."""
    metadata = caller.metadata()
    records = [registry.new_event(event, metadata) for event in events]
    append_records(store, aggregate, records)
    assert aggregate.doc is not None
    return aggregate.doc


def append_records(store: Store, aggregate: Resource, records: list[NewEvent]) -> None:
    """Append already-made records after the aggregate's version (``ChangedConcurrently`` if
    it moved), then fold them; for writers that set their own metadata (engines). A status
    change its table does not allow is refused first (``IllegalStatusChange``)."""
    check_statuses(aggregate, records)
    try:
        repository.save(store, aggregate, records)
    except ConcurrencyConflict:
        raise ChangedConcurrently(
            f"{aggregate.stream_id} was changed by another request; read it again and retry"
        ) from None


def check_statuses(aggregate: Resource, records: Sequence[NewEvent]) -> None:
    """Fold ``records`` on a copy of the representation and refuse the first one that moves
    its status other than ``events.statuses`` allows; nothing is appended then."""
    try:
        kind = Kind(category_of(aggregate.stream_id))
    except ValueError:
        return
    if kind not in statuses.TABLES:
        return
    doc = aggregate.doc
    for record in records:
        event = registry.decode(RecordedEvent(
            stream_id=aggregate.stream_id, version=0, event_id=record.event_id,
            type=record.type, schema_version=record.schema_version, data=record.data,
            metadata=record.metadata))
        after = ev.evolve(doc, event, stream_id=aggregate.stream_id,
                          occurred_at=record.metadata.occurred_at.isoformat())
        try:
            statuses.check_change(kind, doc, after, subject=aggregate.stream_id)
        except statuses.IllegalTransition as error:
            raise IllegalStatusChange(error) from error
        doc = after


# -- names --------------------------------------------------------------------------------

def reserve_name(store: Store, kind: Kind, project_id: str, name: str, owner: str) -> None:
    """Reserve ``name`` for the resource ``owner`` (an id); ``NameInUse`` if a live resource
    holds it. A reservation left by a request that died before creating its resource, or by
    a delete that died before releasing it, is taken back."""
    for _ in range(3):
        try:
            store.reserve_name(project_id, kind.value, name, owner)
            return
        except NameTaken as taken:
            holder = taken.owner_id
        if not _stale_reservation(store, kind, name, holder):
            raise NameInUse(f"{kind.label} name {name!r} is already used in project"
                            f" {project_id}")
        store.release_name(project_id, kind.value, name, holder)
    raise NameInUse(f"{kind.label} name {name!r} is being taken in project {project_id}")


def _stale_reservation(store: Store, kind: Kind, name: str, holder: str) -> bool:
    aggregate = load(store, kind, holder)
    if aggregate.doc is None:
        time.sleep(STALE_NAME_GRACE)  # rare: only when the holder's stream is missing
        aggregate = load(store, kind, holder)
        return aggregate.doc is None
    return aggregate.doc[META]["deleted"] or aggregate.doc.get("name") != name


def release_name(store: Store, kind: Kind, project_id: str, name: str, owner: str) -> None:
    store.release_name(project_id, kind.value, name, owner)


# -- references ---------------------------------------------------------------------------

def live_users(store: Store, doc: Doc) -> list[tuple[str, Doc | None]]:
    """The streams of the resources that use this one and still exist (or may be about to),
    each with its representation (None while it is being created)."""
    users: list[tuple[str, Doc | None]] = []
    now = datetime.now(UTC)
    for stream, since in doc[META]["used_by"].items():
        kind_value, resource_id = stream.split("-", 1)
        user = load(store, Kind(kind_value), resource_id)
        age = (now - datetime.fromisoformat(since)).total_seconds()
        if user.exists or (user.doc is None and age < REFERENCE_GRACE):
            users.append((stream, user.doc))
    return users


def in_use(kind: Kind, doc: Doc, users: list[tuple[str, Doc | None]],
           caller: Caller | None) -> InUse:
    """The refusal naming the users the caller may see, and only counting the others (another
    project's private ids are not the caller's to learn)."""
    named = sorted(stream for stream, user in users
                   if user is not None and caller is not None and caller.can_see(user))
    pending = sum(1 for _, user in users if user is None)
    hidden = len(users) - len(named) - pending
    parts = [", ".join(named)] if named else []
    if hidden:
        parts.append(f"{hidden} resource{'s' if hidden > 1 else ''} of other projects")
    if pending:
        parts.append(f"{pending} resource{'s' if pending > 1 else ''} being created")
    return InUse(f"{kind.label} {doc['id']} is used by {' and '.join(parts)}")


def reference(store: Store, targets: Iterable[tuple[Kind, str]], by: str,
              caller: Caller) -> list[tuple[Kind, str]]:
    """Mark each target as used by the stream ``by``; all or nothing. Retries a target that
    changed meanwhile, as long as it still exists and the caller may still see it (else the
    request is ``Invalid``: the targets are what its body named)."""
    done: list[tuple[Kind, str]] = []
    try:
        for kind, resource_id in targets:
            for attempt in range(5):
                aggregate = referenced(store, kind, resource_id, caller)
                try:
                    append(store, aggregate, [ev.ResourceReferenced(by)], caller)
                    break
                except ChangedConcurrently:
                    if attempt == 4:
                        raise
            done.append((kind, resource_id))
    except BaseException:
        unreference(store, done, by, caller)
        raise
    return done


def unreference(store: Store, targets: Iterable[tuple[Kind, str]], by: str,
                caller: Caller) -> None:
    for kind, resource_id in targets:
        for _ in range(5):
            aggregate = load(store, kind, resource_id)
            if aggregate.doc is None or by not in aggregate.doc[META]["used_by"]:
                break
            try:
                append(store, aggregate, [ev.ResourceReleased(by)], caller)
                break
            except ChangedConcurrently:
                continue


def check_changeable(store: Store, aggregate: Resource, changes: Doc | None = None,
                     caller: Caller | None = None) -> None:
    """Guards of an update (``changes``) or a delete (``None``) shared by every kind; the
    refusal names only the users ``caller`` may see."""
    doc = aggregate.doc
    assert doc is not None
    kind = Kind(doc[META]["kind"])
    only_unprotecting = changes is not None and set(changes) == {"is_protected"} \
        and changes["is_protected"] is False
    if doc.get("is_protected") and not only_unprotecting:
        raise Protected(f"{kind.label} {doc['id']} is protected: set is_protected to false"
                        " first")
    users = live_users(store, doc)
    if users and not only_unprotecting:
        raise in_use(kind, doc, users, caller)


# -- the commands -------------------------------------------------------------------------

def new_id() -> str:
    return str(uuid.uuid4())


def create(store: Store, kind: Kind, caller: Caller, attributes: Doc, *,
           uses: Sequence[tuple[Kind, str]] = (), resource_id: str | None = None,
           extra_events: Sequence[DomainEvent] = ()) -> Doc:
    """Create a resource named ``attributes["name"]`` in the caller's project, using (and so
    pinning) the resources ``uses``. Nothing is left behind when it fails."""
    resource_id = resource_id or new_id()
    stream = kind.stream(resource_id)
    name: str = attributes.get("name") or ""  # jobs (executions) have no name
    fields = {k: v for k, v in attributes.items() if k != "name"}
    fields["uses"] = sorted({k.stream(i) for k, i in uses})
    if name:
        reserve_name(store, kind, caller.project_id, name, resource_id)
    referenced: list[tuple[Kind, str]] = []
    try:
        referenced = reference(store, uses, stream, caller)
        aggregate = Resource(stream)
        doc = append(store, aggregate, [
            ev.ResourceCreated(kind.value, resource_id, caller.project_id, name, fields),
            *extra_events], caller)
    except BaseException:
        unreference(store, referenced, stream, caller)
        if name:
            release_name(store, kind, caller.project_id, name, resource_id)
        raise
    if name and store.name_owner(caller.project_id, kind.value, name) != resource_id:
        # Taken back as stale while this request stalled: undo rather than share the name.
        append(store, aggregate, [ev.ResourceDeleted()], caller)
        unreference(store, referenced, stream, caller)
        raise NameInUse(f"{kind.label} name {name!r} is already used in project"
                        f" {caller.project_id}")
    return doc


def update(store: Store, kind: Kind, resource_id: str, caller: Caller, changes: Doc, *,
           uses: Sequence[tuple[Kind, str]] | None = None) -> Doc:
    """Change fields of a resource the caller owns; ``uses`` replaces what it pins."""
    aggregate = owned(store, kind, resource_id, caller)
    doc = aggregate.doc
    assert doc is not None
    changes = {k: v for k, v in changes.items() if doc.get(k) != v}
    if not changes and uses is None:
        return doc
    check_changeable(store, aggregate, changes, caller)
    project = doc["project_id"]
    new_name = changes.get("name")
    if new_name is not None:
        reserve_name(store, kind, project, new_name, resource_id)
    added: list[tuple[Kind, str]] = []
    removed: list[tuple[Kind, str]] = []
    if uses is not None:
        wanted = {k.stream(i): (k, i) for k, i in uses}
        current = set(doc[META]["uses"])
        added = [wanted[s] for s in sorted(set(wanted) - current)]
        removed = [_split(s) for s in sorted(current - set(wanted))]
        if added or removed:
            changes["uses"] = sorted(wanted)
    try:
        reference(store, added, aggregate.stream_id, caller)
        try:
            result = append(store, aggregate, [ev.ResourceUpdated(changes)], caller)
        except BaseException:
            unreference(store, added, aggregate.stream_id, caller)
            raise
    except BaseException:
        if new_name is not None:
            release_name(store, kind, project, new_name, resource_id)
        raise
    unreference(store, removed, aggregate.stream_id, caller)
    if new_name is not None:
        release_name(store, kind, project, doc["name"], resource_id)
    return result


def delete(store: Store, kind: Kind, resource_id: str, caller: Caller) -> None:
    aggregate = owned(store, kind, resource_id, caller)
    check_changeable(store, aggregate, caller=caller)
    finish_delete(store, aggregate, caller)


def finish_delete(store: Store, aggregate: Resource, caller: Caller) -> None:
    """Record the deletion, then free the name and what the resource pinned."""
    doc = aggregate.doc
    assert doc is not None
    append(store, aggregate, [ev.ResourceDeleted()], caller)
    kind = Kind(doc[META]["kind"])
    if doc.get("name"):
        release_name(store, kind, doc["project_id"], doc["name"], doc["id"])
    unreference(store, [_split(s) for s in doc[META]["uses"]], aggregate.stream_id, caller)


def release_uses(store: Store, aggregate: Resource, caller: Caller) -> None:
    """A resource that no longer needs what it pinned (a job that ended) gives it back."""
    doc = aggregate.doc
    assert doc is not None
    used = list(doc[META]["uses"])
    if not used:
        return
    unreference(store, [_split(s) for s in used], aggregate.stream_id, caller)
    append(store, aggregate, [ev.ResourceUpdated({"uses": []})], caller)


def _split(stream: str) -> tuple[Kind, str]:
    kind_value, resource_id = stream.split("-", 1)
    return Kind(kind_value), resource_id
