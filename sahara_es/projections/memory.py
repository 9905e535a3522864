"""Read models held in memory by each API process, so that a GET does not go to the store.

``MemoryRows`` is one resource projection's rows, indexed as the stored projection is (by
owning project, and public), built by the same fold (``Projection.apply``: idempotent by
stream and version). ``MemoryReads`` is every resource kind's rows: it is loaded once from the
stored projections (their live generation and checkpoint), then fed events by

- ``FeedTail``: a thread that reads the feed from where each projection was loaded, and
- ``push``: events from anywhere else (a message bus, say): the same fold, so an event pushed
  first and read from the feed later changes nothing the second time,

and a write's own stream is folded in before the write is answered (``catch_up_stream``), so
the process that took a write shows it at once. A gap in a stream (an event delivered before
an earlier one of its stream, which the Cassandra feed allows) is filled by reading the
stream, as the stored projections do.

``MemoryReadModel`` answers one kind's reads from memory while the tail is current, and from
the store (``ReadModel``: stored rows, each repaired from its stream) while the process knows
it is behind: not loaded yet, or its tail has not reached the end of the feed for
``max_lag`` seconds. doc/api-processes.rst says what a client is guaranteed.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from sahara_es.events import RecordedEvent
from sahara_es.events.resources import META, Doc, Kind
from sahara_es.projections.base import APPLIED, PAGE
from sahara_es.projections.projector import ReadModel
from sahara_es.projections.resources import CLUSTER_KEYS, PUBLIC, ResourceProjection, owned_by
from sahara_es.store import Store, StoreError

log = logging.getLogger(__name__)

DEFAULT_MAX_LAG = 3.0
"""Seconds without the tail reaching the end of the feed after which a process reads from
the store rather than serve what may be that old."""
DEFAULT_POLL = 0.1
LOAD_ATTEMPTS = 3


class EventSink(Protocol):
    """Where events can be pushed: the in-memory read models take them in at once, whatever
    else delivers them later (at least once, in any order across streams)."""

    def push(self, events: Sequence[RecordedEvent]) -> None: ...


class MemoryRows:
    """One resource projection's rows, by key, with its index groups (a project's own rows,
    the public ones) as sorted key lists made when first listed after a change.

    Rows are replaced, never changed in place: a reader holds a consistent row without a lock.
    A deleted resource stays as a tombstone, as in the stored projection, so that a late
    redelivery of its creation changes nothing."""

    def __init__(self, projection: ResourceProjection) -> None:
        self.projection = projection
        self._rows: dict[str, Doc] = {}
        self._groups: dict[str, set[str]] = {}
        self._sorted: dict[str | None, list[str]] = {}
        self._lock = threading.Lock()
        self._waiting: dict[str, list[RecordedEvent]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def load(self, rows: Iterable[tuple[str, Doc]]) -> None:
        with self._lock:
            self._rows.clear()
            self._groups.clear()
            self._sorted.clear()
        for key, row in rows:
            self._put(key, row)

    def applied(self, key: str, stream_id: str) -> int:
        row = self._rows.get(key)
        version: int = (row or {}).get(APPLIED, {}).get(stream_id, 0)
        return version

    def apply(self, key: str, event: RecordedEvent) -> None:
        """Fold ``event`` into row ``key`` (the caller fills gaps first and serializes
        applies)."""
        before = self._rows.get(key)
        if before is None and event.category == CLUSTER_KEYS:
            # a cluster's key event read before the cluster's own first event: kept for it
            self._waiting.setdefault(key, []).append(event)
            return
        row, changed = self.projection.apply(before, event)
        if not changed or row is None:
            return
        if before is None and event.version == 1 and self.projection.kind is Kind.CLUSTER:
            # seen from its creation on: no key event yet means no key yet
            row = {"management_public_key": None, **row}
        self._put(key, row)
        for waiting in self._waiting.pop(key, []) if before is None else []:
            self.apply(key, waiting)

    def key_known_absent(self, key: str) -> None:
        """Cluster ``key``'s key stream was read to its end: no key in its row means none
        yet (``None``, so that a GET does not look for it in the store)."""
        row = self._rows.get(key)
        if row is not None and "management_public_key" not in row:
            self._put(key, {"management_public_key": None, **row})

    def _put(self, key: str, row: Doc) -> None:
        before = self._rows.get(key)
        old = self._group_names(key, before)
        new = self._group_names(key, row)
        with self._lock:
            self._rows[key] = row
            if before is None:
                self._sorted.pop(None, None)
            for group in old - new:
                self._groups[group].discard(key)
                self._sorted.pop(group, None)
            for group in new - old:
                self._groups.setdefault(group, set()).add(key)
                self._sorted.pop(group, None)

    def _group_names(self, key: str, row: Doc | None) -> set[str]:
        return {index_key.removesuffix(key)
                for index_key in self.projection.index_keys(key, row)}

    def get(self, key: str) -> Doc | None:
        """The row, unless there is none or it was deleted."""
        return _visible(self._rows.get(key))

    def scan(self, project_id: str | None = None) -> Iterator[Doc]:
        """Every visible row in key (id) order: all of them, or (``project_id``) the
        project's own and the public ones."""
        with self._lock:
            if project_id is None:
                keys: Iterable[str] = self._keys(None)
            else:
                keys = _unique(heapq.merge(self._keys(owned_by(project_id)),
                                           self._keys(PUBLIC)))
            rows = [self._rows[key] for key in keys]
        for row in rows:
            doc = _visible(row)
            if doc is not None:
                yield doc

    def _keys(self, group: str | None) -> list[str]:
        """The sorted keys of ``group`` (None: every row), under the lock."""
        keys = self._sorted.get(group)
        if keys is None:
            keys = sorted(self._rows if group is None else self._groups.get(group, ()))
            self._sorted[group] = keys
        return keys


def _visible(row: Doc | None) -> Doc | None:
    if row is None or row[META]["deleted"]:
        return None
    return row


def _unique(keys: Iterator[str]) -> Iterator[str]:
    last = None
    for key in keys:
        if key != last:
            yield key
        last = key


class MemoryReads:
    """Every resource kind's rows in memory, and how events get into them."""

    def __init__(self, store: Store, projections: Sequence[ResourceProjection]) -> None:
        self.store = store
        self.rows = {p.kind: MemoryRows(p) for p in projections}
        self._by_category: dict[str, list[MemoryRows]] = {}
        for rows in self.rows.values():
            self._by_category.setdefault(rows.projection.kind.value, []).append(rows)
            if rows.projection.kind is Kind.CLUSTER:
                self._by_category.setdefault(CLUSTER_KEYS, []).append(rows)
        self.categories = frozenset(self._by_category)
        """The stream categories the rows fold: the feed tail decodes no other event."""
        self._apply_lock = threading.RLock()

    def load(self) -> dict[Kind, str | None]:
        """Each projection's rows from its stored live generation; the feed position each
        was loaded at (None: from the feed's start). The checkpoint is read before the rows:
        rows ahead of it are fine (the fold skips what they applied), behind it are not."""
        positions: dict[Kind, str | None] = {}
        for kind, rows in self.rows.items():
            positions[kind] = self._load(rows)
        return positions

    def _load(self, rows: MemoryRows) -> str | None:
        name = rows.projection.name
        for _ in range(LOAD_ATTEMPTS):
            generation = self.store.live_generation(name)
            if generation is None:
                break
            position = self.store.checkpoint(name, generation)
            loaded = list(self.store.scan_rows(name, generation))
            if self.store.live_generation(name) == generation:  # not dropped while read
                with self._apply_lock:
                    rows.load(loaded)
                    if rows.projection.kind is Kind.CLUSTER:
                        self._settle_cluster_keys(rows, loaded)
                return position
        with self._apply_lock:
            rows.load(())
        return None

    def _settle_cluster_keys(self, rows: MemoryRows, loaded: list[tuple[str, Doc]]) -> None:
        """A loaded cluster row without its key: its key stream read once now, so that a
        GET never has to look for it (none yet is ``None``; the key's event, when it comes,
        replaces it)."""
        for key, row in loaded:
            if "management_public_key" in row:
                continue
            stream = f"{CLUSTER_KEYS}-{key}"
            self.apply(self.store.read(stream, rows.applied(key, stream) + 1), [rows])
            rows.key_known_absent(key)

    def push(self, events: Sequence[RecordedEvent]) -> None:
        """Take in events from anywhere (``EventSink``): each once, whatever comes later."""
        self.apply(events, self.rows.values())

    def apply(self, events: Iterable[RecordedEvent], into: Iterable[MemoryRows]) -> None:
        targets = set(map(id, into))
        with self._apply_lock:
            for event in events:
                for rows in self._by_category.get(event.category, ()):
                    if id(rows) in targets:
                        self._apply_one(rows, event)

    def _apply_one(self, rows: MemoryRows, event: RecordedEvent) -> None:
        key = rows.projection.key(event)
        if key is None:
            return
        last = rows.applied(key, event.stream_id)
        if event.version > last + 1:
            for earlier in self.store.read(event.stream_id, last + 1,
                                           to_version=event.version - 1):
                rows.apply(key, earlier)
        rows.apply(key, event)

    def has(self, stream_id: str, version: int) -> bool:
        """Whether memory has applied ``stream_id`` up to ``version``."""
        category, _, key = stream_id.partition("-")
        return any(rows.applied(key, stream_id) >= version
                   for rows in self._by_category.get(category, ()))

    def catch_up_stream(self, stream_id: str) -> None:
        """Fold the stream's events newer than memory has, read from the store: what a write
        (this process's, or one a client names) brought, before the feed delivers it."""
        category, _, key = stream_id.partition("-")
        takers = self._by_category.get(category, [])
        if not takers or not key:
            return
        with self._apply_lock:
            since = min(rows.applied(key, stream_id) for rows in takers)
            events = list(self.store.read(stream_id, since + 1))
            self.apply(events, takers)


class FeedTail:
    """A thread that feeds ``MemoryReads`` from the feed, from the positions it was loaded
    at (projections loaded at the same position share each page read)."""

    def __init__(self, reads: MemoryReads, positions: dict[Kind, str | None], *,
                 poll: float = DEFAULT_POLL) -> None:
        self.reads = reads
        self.poll = poll
        self._groups: dict[str | None, list[MemoryRows]] = {}
        for kind, position in positions.items():
            self._groups.setdefault(position, []).append(reads.rows[kind])
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._passed = threading.Condition()
        self._fresh_as_of = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> FeedTail:
        self._thread = threading.Thread(target=self._loop, name="feed-tail", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    @property
    def fresh_as_of(self) -> float:
        """When (``time.monotonic``) the last pass that reached the end of the feed began:
        memory holds every event the feed delivered before then."""
        return self._fresh_as_of

    def lag_seconds(self) -> float:
        if not self._fresh_as_of:
            return float("inf")
        return max(0.0, time.monotonic() - self._fresh_as_of)

    def sync(self, timeout: float) -> bool:
        """Wait for a pass begun after this call to reach the end of the feed (whether one
        did within ``timeout``)."""
        asked = time.monotonic()
        self._wake.set()
        with self._passed:
            return self._passed.wait_for(lambda: self._fresh_as_of > asked, timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pass()
            except StoreError as error:
                log.warning("feed tail: %s", error)
            except Exception:
                log.exception("feed tail failed; trying again")
            self._wake.wait(self.poll)
            self._wake.clear()

    def run_pass(self, *, should_stop: Callable[[], bool] | None = None) -> int:
        """Read each group's feed to its end; the events read (of the categories the rows
        fold: the others are skipped undecoded, their positions passed)."""
        begun = time.monotonic()
        stop = should_stop or self._stop.is_set
        read = 0
        for position, rows in list(self._groups.items()):
            at = position
            while not stop():
                page = self.reads.store.read_feed_page(at, limit=PAGE,
                                                       categories=self.reads.categories)
                self.reads.apply(page, rows)
                read += len(page)
                at = page.position
                if page.scanned < PAGE:
                    break
            if at != position:
                del self._groups[position]
                self._groups.setdefault(at, []).extend(rows)
        with self._passed:
            self._fresh_as_of = begun
            self._passed.notify_all()
        return read


class MemoryReadModel:
    """One kind's reads, from memory while the process's tail is current, from the store
    (``ReadModel``) while it knows it is behind; the same interface as ``ReadModel``."""

    def __init__(self, rows: MemoryRows, reads: MemoryReads, tail: FeedTail,
                 stored: ReadModel, *, max_lag: float = DEFAULT_MAX_LAG) -> None:
        self.rows = rows
        self.reads = reads
        self.tail = tail
        self.stored = stored
        self.projection = stored.projection
        self.max_lag = max_lag
        self.from_store: Callable[[], bool] = lambda: False
        """Whether the request at hand must read from the store (set by the API)."""

    def current(self) -> bool:
        return self.tail.lag_seconds() <= self.max_lag

    def written(self, stream_id: str, version: int, audience: str | None = None) -> None:
        """This process wrote ``stream_id`` up to ``version``: folded in before the write
        is answered (and remembered by the store's read model, for when it reads from
        there)."""
        self.stored.written(stream_id, version, audience)
        if not self.reads.has(stream_id, version):
            self.reads.catch_up_stream(stream_id)

    def get(self, key: str) -> Doc | None:
        if self.from_store() or not self.current():
            return self.stored.get(key)
        return self.rows.get(key)

    def scan(self, project_id: str | None = None) -> Iterator[Doc]:
        if not self.current():
            return self.stored.scan(project_id)
        return self.rows.scan(project_id)
