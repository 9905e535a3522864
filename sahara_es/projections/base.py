"""Read models built from the feed: a projection turns events into rows (JSON documents by
key); a runner applies the feed to one generation of those rows from its checkpoint.

Delivery is at least once and, on Cassandra, an event may first show up through a later one
of its stream; so every row remembers the last version of each stream applied to it
(``_applied``), an event at or below it changes nothing, and a gap is filled by reading the
stream. A rebuild fills a fresh generation from zero and then makes it live; a verify fills a
scratch generation up to the live one's checkpoint and compares the two, row by row.

A projection read in another order than by its key keeps an *index*: more rows, under the
name ``index`` and in the same generation, written with the rows they follow, so that a
reader scans only the part of the index it needs (a project's resources, say). A generation
whose index was never finished (``INDEX_BUILT`` missing: it was made by an older version) is
rebuilt before it is updated.

Writes may carry a lease (``fence``): the projector's. The store then refuses them once a
newer epoch has written the same generation, checkpoint or live generation, so that a runner
paused past its lease can neither overwrite newer rows nor move a checkpoint back
(doc/projections.rst). A generation is dropped only once a newer one is live: the live
generation never moves back, so the dropped one can never be needed again.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sahara_es.events import RecordedEvent
from sahara_es.store import ConcurrencyConflict, Lease, LeaseLost, Store

Doc = dict[str, Any]
APPLIED = "_applied"
PAGE = 500
INDEX_BUILT = "~built"
"""The index row a rebuild writes last: the generation's index is complete."""


class Projection(abc.ABC):
    name: ClassVar[str]
    index: ClassVar[str | None] = None
    """Where the index rows are kept, if the projection keeps an index."""

    def index_keys(self, key: str, doc: Doc | None) -> set[str]:
        """The index rows that hold row ``key`` while it is ``doc`` (each holds the doc)."""
        return set()

    @abc.abstractmethod
    def key(self, event: RecordedEvent) -> str | None:
        """The row this event changes, or None when the projection ignores it."""

    @abc.abstractmethod
    def evolve(self, doc: Doc | None, event: RecordedEvent) -> Doc | None:
        """The row after the event (``None`` deletes it); ``doc`` is not to be mutated."""

    def apply(self, doc: Doc | None, event: RecordedEvent) -> tuple[Doc | None, bool]:
        """(the row after the event, whether it changed): idempotent by (stream, version)."""
        applied: dict[str, int] = dict(doc.get(APPLIED, {})) if doc else {}
        if applied.get(event.stream_id, 0) >= event.version:
            return doc, False
        new = self.evolve(doc, event)
        if new is not None:
            applied[event.stream_id] = event.version
            new = {**new, APPLIED: applied}
        return new, True


def new_generation(after: int | None) -> int:
    """A generation number above ``after``: milliseconds, so it also tells when it was made."""
    return max((after or 0) + 1, int(time.time() * 1000))


class NotBuilt(LookupError):
    """The projection has no live generation yet."""


class ProjectionRunner:
    """Applies the feed to one generation of a projection's rows, page by page; every write
    carries ``fence``, the writer's lease, when it has one."""

    def __init__(self, store: Store, projection: Projection, generation: int, *,
                 fence: Lease | None = None) -> None:
        self.store = store
        self.projection = projection
        self.generation = generation
        self.fence = fence

    def catch_up(self, *, until: str | None = None, stop_at_until: bool = False,
                 progress: Callable[[int], None] | None = None, page: int = PAGE) -> int:
        """Apply the feed after the checkpoint, to its end or (``stop_at_until``) up to and
        including the event at position ``until``; the number of feed events read."""
        name, generation = self.projection.name, self.generation
        position = self.store.checkpoint(name, generation)
        read = 0
        if stop_at_until and (until is None or until == position):
            return 0
        while True:
            batch = self.store.read_feed(position, limit=page)
            last_page = len(batch) < page
            if stop_at_until:
                positions = [e.position for e in batch]
                if until in positions:
                    batch, last_page = batch[:positions.index(until) + 1], True
            self._apply_page(batch)
            if batch:
                position = batch[-1].position
                self.store.save_checkpoint(name, generation, position, fence=self.fence)
            read += len(batch)
            if progress is not None:
                progress(len(batch))
            if last_page:
                return read

    def _apply_page(self, batch: list[RecordedEvent]) -> None:
        docs: dict[str, Doc | None] = {}
        before: dict[str, Doc | None] = {}
        changed: set[str] = set()
        for event in batch:
            key = self.projection.key(event)
            if key is None:
                continue
            if key not in docs:
                docs[key] = self.store.get_row(self.projection.name, self.generation, key)
                before[key] = docs[key]
            for earlier in self._gap(docs[key], event):
                if self.projection.key(earlier) == key:
                    docs[key], did = self.projection.apply(docs[key], earlier)
                    changed.update([key] if did else [])
            docs[key], did = self.projection.apply(docs[key], event)
            changed.update([key] if did else [])
        if changed:
            self.store.put_rows(self.projection.name, self.generation,
                                {key: docs[key] for key in sorted(changed)}, fence=self.fence)
            self._index(changed, before, docs)

    def _index(self, changed: set[str], before: dict[str, Doc | None],
               after: dict[str, Doc | None]) -> None:
        if self.projection.index is None:
            return
        rows: dict[str, Doc | None] = {}
        for key in sorted(changed):
            keep = self.projection.index_keys(key, after[key])
            rows.update(dict.fromkeys(self.projection.index_keys(key, before[key]) - keep))
            rows.update(dict.fromkeys(keep, after[key]))
        if rows:
            self.store.put_rows(self.projection.index, self.generation, rows, fence=self.fence)

    def finish_index(self) -> None:
        if self.projection.index is not None:
            self.store.put_rows(self.projection.index, self.generation, {INDEX_BUILT: {}},
                                fence=self.fence)

    def index_ready(self) -> bool:
        return self.projection.index is None or self.store.get_row(
            self.projection.index, self.generation, INDEX_BUILT) is not None

    def drop(self) -> None:
        self.store.drop_rows(self.projection.name, self.generation)
        if self.projection.index is not None:
            self.store.drop_rows(self.projection.index, self.generation)

    def _gap(self, doc: Doc | None, event: RecordedEvent) -> Iterator[RecordedEvent]:
        last = (doc or {}).get(APPLIED, {}).get(event.stream_id, 0)
        if event.version > last + 1:
            yield from self.store.read(event.stream_id, last + 1, to_version=event.version - 1)


def rebuild(store: Store, projection: Projection,
            progress: Callable[[int], None] | None = None, *,
            fence: Lease | None = None) -> tuple[int, int]:
    """Fill a fresh generation from zero, make it live, drop the old one:
    (the new generation, the feed events read).

    ``ConcurrencyConflict`` when another rebuild made a newer generation live first,
    ``LeaseLost`` when a newer owner of ``fence`` took over: this one's generation is then
    dropped if a newer one is live, and kept otherwise (it might be live one day only if this
    is the generation that other rebuild made, which the drop must not touch)."""
    old = store.live_generation(projection.name)
    generation = new_generation(old)
    runner = ProjectionRunner(store, projection, generation, fence=fence)
    try:
        read = runner.catch_up(progress=progress)
        runner.finish_index()
        store.set_live_generation(projection.name, generation, fence=fence)
    except (ConcurrencyConflict, LeaseLost):
        drop_superseded(store, projection, generation)
        raise
    if old is not None:
        drop_superseded(store, projection, old)
    return generation, read


def drop_superseded(store: Store, projection: Projection, generation: int) -> bool:
    """Drop ``generation`` if a newer one is live (whether it was dropped): never the live
    generation, nor one that may still become live."""
    live = store.live_generation(projection.name)
    if live is None or live <= generation:
        return False
    ProjectionRunner(store, projection, generation).drop()
    return True


def _live(store: Store, projection: Projection) -> int | None:
    """The live generation, if it is one this version can update (its index is built)."""
    generation = store.live_generation(projection.name)
    if generation is None or not ProjectionRunner(store, projection, generation).index_ready():
        return None
    return generation


def update(store: Store, projection: Projection,
           progress: Callable[[int], None] | None = None, *,
           fence: Lease | None = None) -> tuple[int, int]:
    """Bring the live generation up to the end of the feed (building it if there is none)."""
    generation = _live(store, projection)
    if generation is None:
        return rebuild(store, projection, progress, fence=fence)
    return generation, ProjectionRunner(store, projection, generation, fence=fence).catch_up(
        progress=progress)


def update_together(store: Store, projections: list[Projection], *,
                    should_stop: Callable[[], bool] = lambda: False,
                    fence: Lease | None = None) -> int:
    """Bring several live projections to the end of the feed, reading each page of the feed
    once for all those at the same checkpoint (one built from zero is built alone first);
    the feed events read. Stops between pages when ``should_stop()``."""
    groups: dict[str | None, list[ProjectionRunner]] = {}
    for projection in projections:
        generation = _live(store, projection)
        if generation is None:
            generation, _ = rebuild(store, projection, fence=fence)
        position = store.checkpoint(projection.name, generation)
        groups.setdefault(position, []).append(
            ProjectionRunner(store, projection, generation, fence=fence))
    read = 0
    for position, runners in groups.items():
        while not should_stop():
            batch = store.read_feed(position, limit=PAGE)
            for runner in runners:
                runner._apply_page(batch)
            if batch:
                position = batch[-1].position
                for runner in runners:
                    store.save_checkpoint(runner.projection.name, runner.generation, position,
                                          fence=fence)
            read += len(batch)
            if len(batch) < PAGE:
                break
    return read


@dataclass(frozen=True)
class Difference:
    key: str
    kind: str  # "missing" (rebuilt has it, live not), "extra" (live only), "different"
    fields: dict[str, Any] = field(default_factory=dict)  # field -> {"live", "rebuilt"}


def diff(live: Iterator[tuple[str, Doc]],
         rebuilt: Iterator[tuple[str, Doc]]) -> Iterator[Difference]:
    """Both in key order: a merge, one row of each side in memory at a time."""
    left, right = next(live, None), next(rebuilt, None)
    while left is not None or right is not None:
        if right is None or (left is not None and left[0] < right[0]):
            assert left is not None
            yield Difference(left[0], "extra")
            left = next(live, None)
        elif left is None or right[0] < left[0]:
            yield Difference(right[0], "missing")
            right = next(rebuilt, None)
        else:
            if left[1] != right[1]:
                names = sorted(set(left[1]) | set(right[1]))
                yield Difference(left[0], "different", {
                    name: {"live": left[1].get(name), "rebuilt": right[1].get(name)}
                    for name in names if left[1].get(name) != right[1].get(name)})
            left, right = next(live, None), next(rebuilt, None)


def verify(store: Store, projection: Projection,
           progress: Callable[[int], None] | None = None) -> Iterator[Difference]:
    """Rebuild into a scratch generation up to the live one's checkpoint, compare, drop it."""
    live = store.live_generation(projection.name)
    if live is None:
        raise NotBuilt(f"projection {projection.name} was never built")
    scratch = ProjectionRunner(store, projection, new_generation(live))
    try:
        scratch.catch_up(until=store.checkpoint(projection.name, live), stop_at_until=True,
                         progress=progress)
        scratch.finish_index()
        for name in filter(None, (projection.name, projection.index)):
            yield from diff(store.scan_rows(name, live),
                            store.scan_rows(name, scratch.generation))
    finally:
        scratch.drop()
