"""The global feed on Cassandra: committed events relayed, by one fenced relay at a time, into
a densely numbered stream.

Every append marks the head row it updates in the same LWT as its events (``cassandra.py``), so
a mark exists exactly when events were committed. The relay:

1. holds the ``feed-relay`` lease and has fenced the feed stream ``$feed`` with its epoch, so
   a relay that lost the lease (paused, partitioned) can no longer append to it;
2. reads the marked heads (a storage-attached index on the mark: the last seconds' marks, and
   every mark at each sweep) with each mark's write timestamp, and each one's events after
   the version it relayed last, in version order, stopping a stream at its first missing
   version (and at a partition whose previous one is not all in the feed);
3. appends copies of those events to ``$feed``, fenced appends of up to 100 events: a feed
   version only ever holds what its one successful LWT wrote;
4. writes, at each mark's own timestamp, how far it relayed, clearing the mark where all of
   it was: an append that committed meanwhile wrote its mark with a later Paxos ballot, a
   larger timestamp, so its mark survives the clear.

A relay that dies between 3 and 4 leaves marks that the next relay copies again: delivery is
at least once, never less. The relay runs in a thread of any process that reads the feed
(``read_feed`` starts it), and a reader at the end of the feed runs a pass itself when its
process holds the lease. doc/store.rst, "The feed", argues it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sahara_es.store.base import MAX_APPEND_BATCH, Lease
from sahara_es.store.errors import ConcurrencyConflict, LeaseHeld, LeaseLost, StoreError

if TYPE_CHECKING:
    from sahara_es.store.cassandra import CassandraStore

log = logging.getLogger(__name__)

FEED_STREAM = "$feed"
"""The stream the relay writes: its versions are the feed's positions."""
FEED_BATCH_BYTES = 32 * 1024
"""A feed append's size at most (and at most 100 events): well below Cassandra's limits."""
RELAY_LEASE = "feed-relay"
RELAYED_FEED_MIGRATION = 5
"""The schema migration that brought the relayed feed: events older than it are marked once."""

MARKS_PER_PASS = 1000
RECENT_SECONDS = 2
"""A pass looks for the marks of the last seconds: those of writers whose clocks run more than
this behind the relay's wait for the next sweep."""
SWEEP_SECONDS = 5.0
IDLE_SECONDS = 30.0
"""A relay thread stops (and gives its lease up) once its process has not read the feed for
this long; the next read starts it again."""
COMPLETE_KEPT = 100_000
"""Partitions known to be all in the feed, and streams' versions known to be copied into it,
remembered (then forgotten all at once)."""
TAKEOVER_TAIL = 5000
"""The feed versions a relay reads back when it takes over: what its predecessor copied
without noting it yet (notes in flight, or failed) is not copied again."""
EVENTS_PER_PASS = 2000
EVENTS_PER_HEAD = 500

Row = dict[str, Any]


@dataclass(frozen=True)
class StoredEvent:
    """An event as the events table stores it; a copy in the feed names where it comes from."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: str
    metadata: str
    origin_stream: str | None = None
    origin_version: int | None = None


def feed_version(position: str | None) -> int:
    """The feed version a position names; a position of the feed before it was relayed
    (``bucket:entry:version``) reads as the start: delivery is at least once."""
    if not position or not position.isdigit():
        return 0
    return int(position)


def _chunks(events: list[StoredEvent]) -> Iterator[list[StoredEvent]]:
    """Feed appends: up to 100 events and ``FEED_BATCH_BYTES`` each (one event at least)."""
    chunk: list[StoredEvent] = []
    size = 0
    for event in events:
        weight = len(event.data) + len(event.metadata) + 200
        if chunk and (len(chunk) >= MAX_APPEND_BATCH or size + weight > FEED_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += weight
    if chunk:
        yield chunk


@dataclass(frozen=True)
class _Slice:
    """What one pass relays of one head: ``events`` (contiguous), up to ``version``;
    ``complete`` when that is all the head has."""

    head: Row
    events: list[StoredEvent]
    version: int
    complete: bool


class FeedRelay:
    def __init__(self, store: CassandraStore, *, ttl: float = 10.0, poll: float = 0.05,
                 owner: str | None = None) -> None:
        self.store = store
        self.ttl = ttl
        self.poll = poll
        self.owner = owner or f"relay-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._lease: Lease | None = None
        self._renew_at = 0.0
        self._next_try = 0.0
        self._feed_version = 0
        self._sweep_at = 0.0
        self._sweep_token: int | None = None
        self._complete: set[tuple[str, int]] = set()
        self._copied: dict[str, int] = {}
        self._clearing: dict[tuple[str, int], tuple[int, int]] = {}
        self._clearing_lock = threading.Lock()
        self._read_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- running --------------------------------------------------------------------------

    def start(self) -> FeedRelay:
        """Relay in a background thread while this process reads the feed: each call (every
        ``read_feed``) keeps it going, and it stops, giving the lease up, once no read came
        for ``IDLE_SECONDS`` (a process that stopped reading relays for no one)."""
        self._read_at = time.monotonic()
        if self._thread is None and not self._stop.is_set():
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="feed-relay",
                                                    daemon=True)
                    self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._lock:
            self._give_up()

    @property
    def holding(self) -> bool:
        return self._lease is not None

    def _loop(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() - self._read_at > IDLE_SECONDS:
                with self._lock:
                    self._give_up()
                    self._thread = None
                return
            try:
                relayed = self.pass_once(wait=False)
            except StoreError as error:
                log.warning("feed relay: %s", error)
                relayed = 0
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("feed relay failed; trying again")
                relayed = 0
            if not relayed:
                # Holding: look again soon. Not holding: not before the lease is tried again.
                pause = self.poll if self.holding else self._next_try - time.monotonic()
                self._stop.wait(max(self.poll, pause))

    def _give_up(self) -> None:
        if self._lease is not None:
            with contextlib.suppress(StoreError):
                self.store.release_lease(self._lease)
            self._lease = None

    def pass_once(self, *, only_if_held: bool = False, wait: bool = True) -> int:
        """Relay what is marked now; the number of events copied into the feed. ``wait``:
        return once the marks are cleared (else the next pass knows they are on the way)."""
        if only_if_held and not self.holding:
            return 0
        with self._lock:
            if self._stop.is_set():
                return 0
            lease = self._hold()
            if lease is None:
                return 0
            try:
                return self._relay(lease, wait)
            except LeaseLost:
                log.info("feed relay: %s lost the lease", self.owner)
                self._lease = None
                return 0

    # -- the lease ------------------------------------------------------------------------

    def _hold(self) -> Lease | None:
        now = time.monotonic()
        if self._lease is not None:
            if now < self._renew_at:
                return self._lease
            try:
                self._lease = self.store.renew_lease(self._lease, self.ttl)
                self._renew_at = now + self.ttl / 4
                return self._lease
            except LeaseLost:
                self._lease = None
        if now < self._next_try:
            return None
        try:
            lease = self.store.acquire_lease(RELAY_LEASE, self.owner, self.ttl)
        except (LeaseHeld, LeaseLost):
            self._next_try = now + self.ttl / 4
            return None
        # Fenced before anything is read: an older relay can no longer append to the feed.
        self.store.fence(FEED_STREAM, lease)
        self._feed_version = self.store.stream_version(FEED_STREAM)
        self._copied = self._copied_lately()
        self._sweep_at, self._sweep_token = 0.0, None
        self._lease, self._renew_at = lease, now + self.ttl / 4
        log.info("feed relay: %s relays (epoch %d) from feed version %d", self.owner,
                 lease.epoch, self._feed_version)
        return lease

    def _copied_lately(self) -> dict[str, int]:
        """Each stream's highest version among the feed's last ``TAKEOVER_TAIL`` copies. Read
        after the fence, so no older relay adds to it; a copy not readable here yet is only
        copied again (a duplicate), never skipped."""
        copied: dict[str, int] = {}
        first = max(1, self._feed_version - TAKEOVER_TAIL + 1)
        for row in self.store._stored(FEED_STREAM, first, self._feed_version):
            stream, version = row["origin_stream"], row["origin_version"]
            if stream is not None and version > copied.get(stream, 0):
                copied[stream] = version
        return copied

    def _remember_copied(self, chunk: Sequence[StoredEvent]) -> None:
        if len(self._copied) > COMPLETE_KEPT:
            self._copied.clear()
        for event in chunk:
            if event.origin_stream is not None and event.origin_version is not None:
                self._copied[event.origin_stream] = max(
                    self._copied.get(event.origin_stream, 0), event.origin_version)

    # -- one pass -------------------------------------------------------------------------

    def _relay(self, lease: Lease, wait: bool) -> int:
        now = time.monotonic()
        sweeping = now >= self._sweep_at
        if sweeping:  # every mark, however old its second, a page at a time by token
            found = self.store._marked_heads(MARKS_PER_PASS, 0, self._sweep_token)
            full = len(found) >= MARKS_PER_PASS
            self._sweep_token = found[-1]["tok"] if full else None
            self._sweep_at = now if full else now + SWEEP_SECONDS
        else:  # the marks of the last seconds, by this clock
            found = self.store._marked_heads(MARKS_PER_PASS, int(self.store.clock())
                                             - RECENT_SECONDS)
            if len(found) >= MARKS_PER_PASS:
                self._sweep_at = now  # a backlog: sweep next, it may hold older marks too
        marks = self._unnoted(found)
        if not marks:
            return 0
        slices = self._read(marks)
        self.store._step("relay.after_read")
        copies = [event for piece in slices for event in piece.events]
        for chunk in _chunks(copies):
            try:
                self._feed_version = self.store._append_rows(
                    FEED_STREAM, chunk, self._feed_version, lease, mark=False)
            except ConcurrencyConflict as conflict:
                # Not another relay (that is LeaseLost): this one's count was behind. What
                # this pass appended already is relayed again (its marks stay).
                self._feed_version = conflict.actual_version or self.store.stream_version(
                    FEED_STREAM)
                return 0
            self._remember_copied(chunk)
            self.store._step("relay.after_feed_append")
        self._note([piece for piece in slices if piece.events or piece.complete], wait)
        return len(copies)

    def _note(self, slices: Sequence[_Slice], wait: bool) -> None:
        """Send how far each head was relayed; until that lands, the next pass passes over
        the marks it clears and starts each head after what was relayed (so the notes of
        one pass overlap the next pass's reads instead of delaying them)."""
        keys = [(piece.head["stream_id"], piece.head["partition_nr"]) for piece in slices]
        with self._clearing_lock:
            for key, piece in zip(keys, slices, strict=True):
                self._clearing[key] = (piece.head["marked"], piece.version)
        futures = self.store._relayed([(piece.head, piece.version, piece.complete)
                                       for piece in slices])
        pending = {"count": len(futures)}

        def landed(_: Any) -> None:
            with self._clearing_lock:
                pending["count"] -= 1
                if pending["count"] == 0:
                    for key, piece in zip(keys, slices, strict=True):
                        if self._clearing.get(key) == (piece.head["marked"], piece.version):
                            del self._clearing[key]

        for future in futures:
            future.add_callbacks(landed, landed)
        if wait:
            for future in futures:
                with contextlib.suppress(Exception):  # the mark stays: relayed again
                    future.result()

    def _unnoted(self, marks: Sequence[Row]) -> list[Row]:
        """The marks with the notes still in flight applied: a mark being cleared is left
        out, and a head starts after what was relayed of it."""
        with self._clearing_lock:
            clearing = dict(self._clearing)
        out = []
        for mark in marks:
            noted = clearing.get((mark["stream_id"], mark["partition_nr"]))
            if noted is None:
                out.append(mark)
            elif mark["marked"] != noted[0] or noted[1] < mark["head_version"]:
                # Marked again since, or only partly relayed: relay what is left.
                relayed = max(mark["relayed_version"] or 0, noted[1])
                out.append({**mark, "relayed_version": relayed})
        return out

    def _read(self, marks: Sequence[Row]) -> list[_Slice]:
        """The slices to relay, streams in the order of their oldest mark (the feed follows
        the order of commits, roughly), each stream's heads in partition order; every head's
        events are read at once, concurrently."""
        streams: dict[str, list[Row]] = {}
        for mark in marks:
            streams.setdefault(mark["stream_id"], []).append(mark)
        order = sorted(streams.values(), key=lambda heads: min(h["marked"] for h in heads))
        wanted: list[tuple[Row, int, int]] = []
        budget = EVENTS_PER_PASS
        for heads in order:
            if budget <= 0:
                break
            heads.sort(key=lambda h: h["partition_nr"])
            if not self._before_relayed(heads[0]["stream_id"], heads[0]["partition_nr"]):
                continue  # the partition before is not all in the feed yet: keep the order
            for head in heads:
                # What this relay (or, before its takeover, another) copied without a note
                # landing (in flight, failed, or the relay died): not copied again.
                first = min(max(self._first_unrelayed(head, heads),
                                self._copied.get(head["stream_id"], 0) + 1),
                            head["head_version"] + 1)
                last = min(head["head_version"], first + min(budget, EVENTS_PER_HEAD) - 1)
                wanted.append((head, first, last))
                budget -= max(0, last - first + 1)
        found = self.store._stored_many(
            [(head["stream_id"], head["partition_nr"], first, last)
             for head, first, last in wanted])
        slices: list[_Slice] = []
        stalled: set[str] = set()
        for (head, first, _), rows in zip(wanted, found, strict=True):
            stream = head["stream_id"]
            if stream in stalled:
                continue  # the stream's later partitions wait for the one before
            events: list[StoredEvent] = []
            for row in rows:
                if row["version"] != first + len(events):
                    break  # a hole: not readable here yet
                events.append(StoredEvent(
                    row["event_id"], row["event_type"], row["schema_version"], row["data"],
                    row["metadata"], origin_stream=stream, origin_version=row["version"]))
            version = first + len(events) - 1
            piece = _Slice(head, events, version, version >= head["head_version"])
            slices.append(piece)
            if not piece.complete:
                stalled.add(stream)
        return slices

    def _before_relayed(self, stream: str, partition: int) -> bool:
        """Whether every partition before ``partition`` is in the feed: a stream's events
        reach the feed in version order even when an older partition's mark is found later
        (a sweep) than a newer one's."""
        if partition == 0 or (stream, partition - 1) in self._complete:
            return True
        with self._clearing_lock:
            if (stream, partition - 1) in self._clearing:
                return False  # its note is on the way: the next pass knows
        before = self.store._head(stream, partition - 1)
        if before is not None and before["unrelayed"] is not None:
            return False  # still marked: not all in the feed
        if len(self._complete) > COMPLETE_KEPT:
            self._complete.clear()
        self._complete.add((stream, partition - 1))  # sealed and relayed: for good
        return True

    def _first_unrelayed(self, head: Row, heads: Sequence[Row]) -> int:
        """The first version of the head's partition not relayed yet."""
        if head["relayed_version"] is not None:
            return int(head["relayed_version"]) + 1
        partition = head["partition_nr"]
        if partition == 0:
            return 1
        # A partition starts after the sealed one before it.
        before = next((h for h in heads if h["partition_nr"] == partition - 1), None)
        if before is None:
            before = self.store._head(head["stream_id"], partition - 1)
        return (before["head_version"] if before else 0) + 1
