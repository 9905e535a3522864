"""Keeping read models up to date, and reading them.

``Projector`` applies the feed to the live generation of each projection, on a thread, in
whichever process holds the ``projector`` lease: every API worker and the all-in-one service
start one, and exactly one of them writes at a time (a rebuild may run beside it: it writes a
fresh generation). It stops writing as soon as it cannot be sure it still holds the lease,
and every row, checkpoint and live-generation write carries that lease: one that arrives after
another projector took over (the process paused past its lease) is refused by the store.

``ReadModel`` answers the API's reads from the rows, and repairs a row that lags behind its
stream by folding the stream's newer events in memory: a client that just wrote reads its
write, while the feed (on Cassandra, read after a settle window) catches up.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sahara_es.events.resources import META, Doc
from sahara_es.projections.base import APPLIED, Projection, update_together
from sahara_es.projections.registry import every_projection
from sahara_es.projections.resources import PUBLIC, ResourceProjection, owned_by
from sahara_es.store import Lease, LeaseHeld, LeaseLost, Store, StoreError

log = logging.getLogger(__name__)

PROJECTOR_LEASE = "projector"


@dataclass(frozen=True)
class Lag:
    projection: str
    events: int
    """Feed events not applied yet (counted up to ``LAG_COUNT_LIMIT``)."""
    seconds: float
    """Age of the oldest event not applied yet (0 when none)."""
    checkpoint: str | None


LAG_COUNT_LIMIT = 100
"""A health check reads at most this many feed events per projection: a projector far behind
(a fresh process on a long feed) must not make ``/healthz`` itself slow (10 000 events for
each of seven projections took 10 to 16 s on a long Cassandra feed, past a probe's timeout)."""
GENERATION_CACHE_SECONDS = 1.0
RECENT_SECONDS = 300.0
ROWS_KEPT = 5000
EVERYONE = "*"
"""The audience of a public resource's write: every project's list looks at it."""


class Projector:
    """``lease``: the resource whose lease this projector takes (one projector writes the
    projections at a time); its epoch fences every write.

    ``projections``: what it keeps up to date, by default every registered projection. The
    holder of the shared ``projector`` lease is the one writer of the live projections, so a
    projector on that lease keeps every registered projection, those it was not given too:
    one left out would never be built on a fresh store (``projections verify`` then fails on
    it), or would be kept only while a process that happened to list it held the lease."""

    def __init__(self, store: Store, projections: Sequence[Projection] | None = None, *,
                 owner: str, ttl: float = 10.0, poll: float = 0.2,
                 lease: str = PROJECTOR_LEASE) -> None:
        self.store = store
        given = list(projections or [])
        self.projections = (every_projection(given)
                            if projections is None or lease == PROJECTOR_LEASE else given)
        self.owner = owner
        self.ttl = ttl
        self.poll = poll
        self.resource = lease
        self._lease: Lease | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_until = 0.0

    def start(self) -> Projector:
        self._thread = threading.Thread(target=self._loop, name="projector", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """Something was written: catch up now rather than at the next poll."""
        self._wake.set()

    @property
    def active(self) -> bool:
        return time.monotonic() < self._lease_until

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._hold_lease():
                    self.run_once()
            except LeaseLost as error:
                self._lease_until = 0.0
                log.warning("projector %s: another took over, its write was refused: %s",
                            self.owner, error)
            except StoreError as error:
                log.warning("projector: %s", error)
            except Exception:
                log.exception("projector failed; trying again")
            self._wake.wait(self.poll)
            self._wake.clear()

    def _hold_lease(self) -> bool:
        sent = time.monotonic()
        try:
            lease = self.store.acquire_lease(self.resource, self.owner, self.ttl)
        except LeaseHeld:
            self._lease_until = 0.0
            return False
        except LeaseLost:
            self._lease_until = 0.0
            return False
        # Trusted for half its TTL from when the request left: a running process stops
        # writing well before another can take over; one paused mid-write is fenced.
        if self._lease is None or self._lease.epoch != lease.epoch:
            self._fence(lease)
        self._lease = lease
        self._lease_until = sent + min(self.ttl / 2, lease.expires_at - time.time())
        return True

    def _fence(self, lease: Lease) -> None:
        """A new owner fences every partition it will write before it reads any: a paused
        former owner's late write to one of them (a row, its index, a checkpoint) would
        otherwise land between this owner's read and its own first write there."""
        for projection in self.projections:
            generation = self.store.live_generation(projection.name)
            if generation is None:
                continue
            for name in filter(None, (projection.name, projection.index)):
                self.store.put_rows(name, generation, {}, fence=lease)
            position = self.store.checkpoint(projection.name, generation)
            if position is not None:
                self.store.save_checkpoint(projection.name, generation, position, fence=lease)

    def run_once(self) -> int:
        """Apply the feed's new events to every projection: each page read once for all,
        every write fenced by the lease last held."""
        return update_together(self.store, self.projections, fence=self._lease,
                               should_stop=lambda: self._stop.is_set() or not self.active)

    def release(self) -> None:
        lease = self.store.get_lease(self.resource)
        if lease is not None and lease.owner == self.owner:
            self.store.release_lease(lease)
        self._lease_until = 0.0


def lag(store: Store, projection: Projection) -> Lag:
    generation = store.live_generation(projection.name)
    position = store.checkpoint(projection.name, generation) if generation is not None else None
    pending = store.read_feed(position, limit=LAG_COUNT_LIMIT)
    seconds = 0.0
    if pending:
        oldest = min(e.metadata.occurred_at for e in pending)
        seconds = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
    return Lag(projection.name, len(pending), round(seconds, 3), position)


class ReadModel:
    """Reads of one kind's live rows, each brought up to its stream's last version."""

    def __init__(self, store: Store, projection: ResourceProjection) -> None:
        self.store = store
        self.projection = projection
        self.category = projection.kind.value
        self._recent: dict[str, tuple[int, float, str | None]] = {}
        self._lock = threading.Lock()
        self._live: tuple[float, int | None] | None = None
        self._rows: OrderedDict[tuple[int, str], Doc] = OrderedDict()

    def written(self, stream_id: str, version: int, audience: str | None = None) -> None:
        """This process wrote ``stream_id`` up to ``version``: lists repair that row until
        they find the projection showing it (or, as a bound on memory, ``RECENT_SECONDS``
        passed: a projector that far behind is an outage ``/healthz`` reports).
        ``audience``: the owning project, ``EVERYONE`` for a public resource, ``None`` when
        not known (every list looks at it)."""
        with self._lock:
            known, _, known_audience = self._recent.get(stream_id, (0, 0.0, None))
            self._recent[stream_id] = (max(version, known), time.monotonic(),
                                       audience or known_audience)

    def _generation(self, *, fresh: bool = False) -> int | None:
        """The live generation, remembered for a second: it changes only when the projection
        is rebuilt, and a read that finds nothing in a remembered one asks again."""
        now = time.monotonic()
        if fresh or self._live is None or now - self._live[0] > GENERATION_CACHE_SECONDS:
            self._live = (now, self.store.live_generation(self.projection.name))
        return self._live[1]

    def get(self, key: str) -> Doc | None:
        """The row brought up to its stream. A row read before is kept in memory: the stream
        read that brings it up to date is made anyway, so what is kept can never be stale."""
        row, generation = None, None
        for fresh in (False, True):
            generation = self._generation(fresh=fresh)
            if generation is None:
                continue
            row = self._remembered(generation, key)
            if row is None:
                row = self.store.get_row(self.projection.name, generation, key)
            if row is not None:
                break
        row = self._repair(row, f"{self.category}-{key}")
        if row is not None and generation is not None:
            self._remember(generation, key, row)
        return self._visible(row)

    def _remembered(self, generation: int, key: str) -> Doc | None:
        with self._lock:
            row = self._rows.get((generation, key))
            if row is not None:
                self._rows.move_to_end((generation, key))
            return row

    def _remember(self, generation: int, key: str, row: Doc) -> None:
        with self._lock:
            self._rows[(generation, key)] = row
            self._rows.move_to_end((generation, key))
            while len(self._rows) > ROWS_KEPT:
                self._rows.popitem(last=False)

    def scan(self, project_id: str | None = None) -> Iterator[Doc]:
        """Every visible row in key (id) order, with this process's recent writes included:
        all of them, or (``project_id``) the project's own and the public ones, read from the
        projection's index."""
        generation = self._generation()
        horizon = time.monotonic() - RECENT_SECONDS
        with self._lock:
            for stream in [s for s, (_, at, _) in self._recent.items() if at < horizon]:
                del self._recent[stream]
            recent = {stream: version for stream, (version, _, audience) in self._recent.items()
                      if project_id is None or audience in (None, EVERYONE, project_id)}
        rows: Iterator[tuple[str, Doc]]
        if generation is None:
            rows = iter(())
        elif project_id is None:
            rows = self.store.scan_rows(self.projection.name, generation)
        else:
            rows = _by_key(self._scan_index(generation, owned_by(project_id)),
                           self._scan_index(generation, PUBLIC))
        missing = sorted(stream.split("-", 1)[1] for stream in recent)
        for key, row in _merge_keys(rows, missing):
            stream = f"{self.category}-{key}"
            if stream in recent:
                done = (row or {}).get(APPLIED, {}).get(stream, 0) >= recent[stream]
                if not done:
                    unlisted = row is None
                    row = self._repair(row, stream)
                    # A deleted resource the rows do not list is listed right already.
                    done = unlisted and (row is None or row[META]["deleted"])
                if done:
                    with self._lock:
                        if self._recent.get(stream, (0, 0.0, None))[0] == recent[stream]:
                            del self._recent[stream]
            doc = self._visible(row)
            if doc is not None:
                yield doc

    def _scan_index(self, generation: int, prefix: str) -> Iterator[tuple[str, Doc]]:
        index = self.projection.index
        assert index is not None
        for key, row in self.store.scan_rows(index, generation, prefix=prefix):
            yield key.removeprefix(prefix), row

    def _repair(self, row: Doc | None, stream: str) -> Doc | None:
        applied = (row or {}).get(APPLIED, {}).get(stream, 0)
        for event in self.store.read(stream, applied + 1):
            row, _ = self.projection.apply(row, event)
        return row

    @staticmethod
    def _visible(row: Doc | None) -> Doc | None:
        if row is None or row[META]["deleted"]:
            return None
        return row


def _by_key(*scans: Iterator[tuple[str, Doc]]) -> Iterator[tuple[str, Doc]]:
    """Scans in key order merged into one, each key once (a project's public resource is
    in both of its index scans)."""
    last = None
    for key, row in heapq.merge(*scans, key=lambda item: item[0]):
        if key != last:
            yield key, row
        last = key


def _merge_keys(rows: Iterator[tuple[str, Doc]],
                extra: list[str]) -> Iterator[tuple[str, Doc | None]]:
    """The rows in key order, with the ``extra`` keys (sorted) that have no row yet."""
    pending = iter(extra)
    nxt = next(pending, None)
    for key, row in rows:
        while nxt is not None and nxt < key:
            yield nxt, None
            nxt = next(pending, None)
        if nxt == key:
            nxt = next(pending, None)
        yield key, row
    while nxt is not None:
        yield nxt, None
        nxt = next(pending, None)
