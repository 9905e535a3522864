"""The store interface: events, leases, claims, unique names, snapshots and data keys.

One abstract class, two implementations (``cassandra.py``, ``sqlite.py``) that pass one
contract suite (``tests/contract``). Everything above this layer talks to ``Store`` only.
"""

from __future__ import annotations

import abc
import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sahara_es.events import NewEvent, RecordedEvent, category_of
from sahara_es.store.errors import ClaimRejected, ConcurrencyConflict, NotFound


class LeaseState(enum.StrEnum):
    HELD = "held"
    RELEASED = "released"


@dataclass(frozen=True)
class Lease:
    """Single ownership of a resource. ``epoch`` grows by one at every change of owner.

    Times are seconds since the epoch on the writer's clock: engines must run NTP, and
    ``ttl`` must be far larger than the clock skew between them.
    """

    resource: str
    owner: str
    epoch: int
    expires_at: float
    state: LeaseState = LeaseState.HELD

    def expired(self, now: float) -> bool:
        return self.state is LeaseState.RELEASED or now >= self.expires_at


@dataclass(frozen=True)
class Claim:
    """A keyed counter with a capacity, changed only by compare-and-set on ``generation``.

    ``holders`` maps each holder (a cluster, an instance...) to the amount it holds, so that a
    release names what it gives back and a retried claim by the same holder is recognised.
    """

    key: str
    capacity: int
    used: int
    generation: int
    holders: dict[str, int] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return self.capacity - self.used


@dataclass(frozen=True)
class Snapshot:
    stream_id: str
    version: int
    state: dict[str, Any]


@dataclass(frozen=True)
class DataKey:
    """The key that seals one resource's secrets (``sahara_es.commands.secrets``).

    Kept outside the event log, in a row that can be deleted: once it is gone, the sealed
    secrets its resource's events carry can no longer be read by anyone (crypto-shredding).
    ``key_id`` names this key among every key the resource ever had: a key made again after
    a delete is another key, and what the first one sealed stays unreadable.
    """

    owner: str
    key_id: str
    material: bytes = field(repr=False)


REGION_CLAIM_PREFIX = "@"
_REGION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,48}")


def region_claim_key(region: str, key: str) -> str:
    """The key of a claim on a resource of one region only (its hosts' capacity, its address
    pools, quotas kept per region): ``@<region>/<key>``.

    Such a claim is changed at LOCAL_SERIAL, by processes of that region only, and kept apart
    from global claims (a table of its own on Cassandra): a key is never written at
    LOCAL_SERIAL from two regions, nor at LOCAL_SERIAL and SERIAL (doc/regions.rst).
    """
    if not _REGION_NAME.fullmatch(region):
        raise ValueError(f"invalid region name {region!r}")
    return f"{REGION_CLAIM_PREFIX}{region}/{key}"


def claim_region(key: str) -> str | None:
    """The region of a region-local claim key (``region_claim_key``); ``None`` for a global
    claim, changed at SERIAL from anywhere."""
    if not key.startswith(REGION_CLAIM_PREFIX):
        return None
    region, slash, rest = key[1:].partition("/")
    if not slash or not rest or not _REGION_NAME.fullmatch(region):
        raise ValueError(f"invalid region claim key {key!r}: @<region>/<key>")
    return region


def check_claim(current: Claim, holder: str, amount: int, expected_generation: int) -> None:
    """The guards of a claim, the same for every backend."""
    if current.generation != expected_generation:
        raise ConcurrencyConflict(
            f"claim {current.key} is at generation {current.generation},"
            f" not {expected_generation}"
        )
    if holder in current.holders:
        raise ClaimRejected(f"{holder} already holds {current.holders[holder]} of {current.key}")
    if current.used + amount > current.capacity:
        raise ClaimRejected(
            f"{current.key}: {amount} asked, {current.free} of {current.capacity} free"
        )


def check_release(current: Claim, holder: str, expected_generation: int) -> bool:
    """The guard of a release, the same for every backend: whether ``holder`` holds anything.

    A release on a generation that moved is a conflict; releasing nothing is a no-op.
    """
    if current.generation != expected_generation:
        raise ConcurrencyConflict(f"claim {current.key} is at generation {current.generation}")
    return holder in current.holders


MAX_APPEND_BATCH = 100
"""Most events one append may carry: a batch stays inside one bounded partition."""


# The store is split by concept: each narrow interface below has its own contract suite in
# tests/contract/ (both backends), and a consumer asks for the one it uses. ``Store`` is all
# of them, as each backend implements them.


class FeedPage(list[RecordedEvent]):
    """The events of one ``read_feed``, and how far in the feed it read.

    ``position`` is the feed position the read reached (its last entry's, kept or skipped;
    ``after`` when it read none): the next read goes on after it. ``scanned`` is how many
    entries it read: fewer than the ``limit`` asked means the feed's end (as it was then)."""

    def __init__(self, events: Iterable[RecordedEvent] = (), *, position: str | None,
                 scanned: int) -> None:
        super().__init__(events)
        self.position = position
        self.scanned = scanned


def wanted_by(categories: frozenset[str] | None) -> Callable[[str], bool]:
    """Whether a feed entry of stream ``stream_id`` is to be decoded and kept, told from its
    stream id alone, before its payload is decoded."""
    if categories is None:
        return lambda stream_id: True
    return lambda stream_id: category_of(stream_id) in categories


class EventStore(abc.ABC):
    """Streams of events appended with optimistic concurrency, fenced by leases, and the
    global feed of every stream's events."""

    @abc.abstractmethod
    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        lease: Lease | None = None,
    ) -> int:
        """Append ``events`` atomically after ``expected_version``; return the new version.

        Raises ``ConcurrencyConflict`` (nothing written) when the stream is not at
        ``expected_version``. With ``lease``, the append succeeds only while that lease's epoch
        is the newest that fenced the stream (``LeaseLost`` otherwise), and fences it.

        The outcome reported is what happened: before reporting a conflict or a failure the
        store looks for its own event ids at the versions it asked for, so an append that
        applied is never reported as failed, and the same append retried (same event ids,
        same ``expected_version``) returns the version it reached the first time.
        ``OutcomeUnknown`` only when the backend stopped answering before that could be found
        out; retrying is then safe.
        """

    @abc.abstractmethod
    def read(
        self, stream_id: str, from_version: int = 1, *, to_version: int | None = None
    ) -> Iterator[RecordedEvent]:
        """The stream's events from ``from_version`` on, in order, streamed page by page."""

    @abc.abstractmethod
    def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it does not exist)."""

    @abc.abstractmethod
    def list_streams(self, category: str) -> Iterator[str]:
        """Ids of the streams of a category (``cluster`` lists every ``cluster-*`` stream)."""

    def read_feed(self, after: str | None = None, *, limit: int = 500) -> list[RecordedEvent]:
        """Events of every stream after the feed position ``after``, in a stable order.

        Repeated calls, each with the last ``position`` returned, deliver every committed
        event, never skipping one, each stream's events in version order. An event may be
        delivered twice (after a crash of whatever numbers the feed), so consumers apply
        events idempotently by ``(stream_id, version)``. How each backend keeps this promise
        is argued in ``doc/store.rst`` ("The feed").
        """
        return self.read_feed_page(after, limit=limit)

    @abc.abstractmethod
    def read_feed_page(self, after: str | None = None, *, limit: int = 500,
                       categories: frozenset[str] | None = None) -> FeedPage:
        """``read_feed``, decoding and returning only the events of streams of
        ``categories`` (all of them when None), told apart by stream id before decoding.

        ``limit`` bounds the feed entries read, kept or skipped. A consumer goes on after
        the page's ``position`` (the last entry read, skipped or not), not after its last
        event's, and has reached the feed's end when the page ``scanned`` fewer than
        ``limit`` entries: so it passes what it skips once, and never waits on it again.
        """

    @abc.abstractmethod
    def fence(self, stream_id: str, lease: Lease) -> None:
        """Make ``lease`` the newest owner of the stream: older epochs can no longer append.

        A new owner calls this before it reads the history it will act on.
        """


class LeaseStore(abc.ABC):
    """Leases: single ownership of a resource for a while, with an epoch that fences."""

    @abc.abstractmethod
    def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        """Take the resource; ``LeaseHeld`` while another owner's lease has not expired.

        Re-acquiring one's own live lease renews it with the same epoch.
        """

    @abc.abstractmethod
    def offer_lease(self, resource: str) -> bool:
        """Create the resource's lease released and never held (epoch 0), so that the next
        ``acquire_lease`` takes it at epoch 1; unless it has a lease already. Whether this
        call created it. One write: how a submitter makes new work findable."""

    @abc.abstractmethod
    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend the lease; ``LeaseLost`` if another owner (a newer epoch) took it."""

    @abc.abstractmethod
    def release_lease(self, lease: Lease) -> None:
        """Give the resource up so another owner may take it at once."""

    @abc.abstractmethod
    def delete_lease(self, lease: Lease) -> None:
        """Forget the resource's lease, if it is still ``lease`` (owner and epoch); a no-op
        otherwise. For work that is over, so that ``list_leases`` stays as small as the work
        in progress. Streams keep their fence: a later lease of the resource, starting again
        at epoch 1, cannot append to a stream fenced by a higher epoch."""

    @abc.abstractmethod
    def get_lease(self, resource: str) -> Lease | None: ...

    @abc.abstractmethod
    def list_leases(self) -> Iterator[Lease]: ...


class ClaimStore(abc.ABC):
    """Claims: holders' shares of a capacity, changed by generation (quotas, hosts, pools).

    A key made by ``region_claim_key`` is a region-local claim: only processes of that region
    (``region``) change it (``ForeignRegion`` elsewhere); others read a possibly stale copy.
    """

    @property
    def region(self) -> str | None:
        """The region (Cassandra datacenter) this process is in, whose region-local claims it
        may change; ``None`` for a store on one site only, where every region is local."""
        return None

    @abc.abstractmethod
    def define_claim(self, key: str, capacity: int) -> Claim:
        """Create the claim with ``capacity``, or change the capacity of an existing one."""

    @abc.abstractmethod
    def get_claim(self, key: str) -> Claim:
        """The claim's current state; ``NotFound`` if it was never defined."""

    @abc.abstractmethod
    def claim(self, key: str, holder: str, amount: int, expected_generation: int) -> Claim:
        """Add ``amount`` for ``holder`` if the generation is still ``expected_generation``.

        ``ClaimRejected`` if it would exceed the capacity, ``ConcurrencyConflict`` if the
        generation moved (re-read and try again).
        """

    @abc.abstractmethod
    def release_claim(self, key: str, holder: str, expected_generation: int) -> Claim:
        """Give back everything ``holder`` holds (a no-op if it holds nothing)."""

    def claim_with_retry(self, key: str, holder: str, amount: int, attempts: int = 50) -> Claim:
        """Claim ``amount``, re-reading the generation after each conflict.

        Idempotent per holder: a holder that already holds ``amount`` gets the claim back.
        """
        last: ConcurrencyConflict | None = None
        for _ in range(attempts):
            current = self.get_claim(key)
            if current.holders.get(holder) == amount:
                return current
            try:
                return self.claim(key, holder, amount, current.generation)
            except ConcurrencyConflict as conflict:
                last = conflict
        assert last is not None
        raise last

    def release_with_retry(self, key: str, holder: str, attempts: int = 50) -> None:
        """Give back everything ``holder`` holds of ``key``, re-reading the generation after
        each conflict; nothing held, or no such claim, is fine (idempotent)."""
        last: ConcurrencyConflict | None = None
        for _ in range(attempts):
            try:
                current = self.get_claim(key)
            except NotFound:
                return
            if holder not in current.holders:
                return
            try:
                self.release_claim(key, holder, current.generation)
                return
            except ConcurrencyConflict as conflict:
                last = conflict
        assert last is not None
        raise last


class NameStore(abc.ABC):
    """Unique names per project and kind."""

    @abc.abstractmethod
    def reserve_name(self, project_id: str, kind: str, name: str, owner_id: str) -> None:
        """Reserve a name per project and kind; ``NameTaken`` if another owner has it."""

    @abc.abstractmethod
    def release_name(self, project_id: str, kind: str, name: str, owner_id: str) -> None:
        """Free the name if ``owner_id`` holds it (a no-op otherwise)."""

    @abc.abstractmethod
    def name_owner(self, project_id: str, kind: str, name: str) -> str | None: ...


class SnapshotStore(abc.ABC):
    """Snapshots of aggregates, so loading one does not fold its whole stream."""

    @abc.abstractmethod
    def save_snapshot(self, snapshot: Snapshot) -> None: ...

    @abc.abstractmethod
    def latest_snapshot(self, stream_id: str) -> Snapshot | None: ...


class DataKeyStore(abc.ABC):
    """Per-resource data keys, kept apart from the immutable events so they can be deleted
    (crypto-shredding: doc/security.rst)."""

    @abc.abstractmethod
    def create_data_key(self, owner: str, key_id: str, material: bytes) -> DataKey:
        """Keep ``material`` as ``owner``'s data key unless it has one already; return the one
        it has. Two writers making it at once agree on one: the first written wins and both
        get it back."""

    @abc.abstractmethod
    def get_data_key(self, owner: str) -> DataKey | None:
        """``owner``'s data key; ``None`` if it never had one or it was deleted."""

    @abc.abstractmethod
    def delete_data_key(self, owner: str) -> None:
        """Forget ``owner``'s data key (a no-op when it has none): whatever it sealed can no
        longer be opened."""


class RowStore(abc.ABC):
    """The rows of read models, their checkpoints and live generations."""

    # Read models keep JSON documents by key, per projection and generation: a rebuild fills
    # a fresh generation from zero and then makes it live. One runner writes a generation.
    #
    # Fencing (doc/projections.rst): a write given ``fence`` (the writer's lease) is refused
    # with ``LeaseLost``, changing nothing, when a newer epoch has already written that
    # generation's rows (per projection name), its checkpoint, or the projection's live
    # generation; it makes its own epoch the newest one seen there. Writes without ``fence``
    # are not checked (tools that own the generation they write). The live generation never
    # moves back to an older one, fenced or not.

    @abc.abstractmethod
    def put_rows(self, projection: str, generation: int,
                 rows: Mapping[str, dict[str, Any] | None], *,
                 fence: Lease | None = None) -> None:
        """Write each row's document (``None`` deletes the row)."""

    @abc.abstractmethod
    def get_row(self, projection: str, generation: int, key: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def scan_rows(self, projection: str, generation: int, *,
                  prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        """Every row of the generation whose key starts with ``prefix``, in key order,
        streamed page by page."""

    @abc.abstractmethod
    def drop_rows(self, projection: str, generation: int) -> None:
        """Forget the generation: its rows, its checkpoint and their fences."""

    @abc.abstractmethod
    def save_checkpoint(self, projection: str, generation: int, position: str, *,
                        fence: Lease | None = None) -> None:
        """The feed position the generation has applied everything up to."""

    @abc.abstractmethod
    def checkpoint(self, projection: str, generation: int) -> str | None: ...

    @abc.abstractmethod
    def set_live_generation(self, projection: str, generation: int, *,
                            fence: Lease | None = None) -> None:
        """Make ``generation`` the one readers use. ``ConcurrencyConflict`` (nothing changed)
        if a newer generation is live already: another rebuild finished first."""

    @abc.abstractmethod
    def live_generation(self, projection: str) -> int | None: ...


class Store(EventStore, LeaseStore, ClaimStore, NameStore, SnapshotStore, DataKeyStore,
            RowStore):
    """Every narrow store at once, as each backend implements them, with its lifecycle."""

    @abc.abstractmethod
    def upgrade(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What this store is, for humans and benchmarks (backend, version, settings)."""

    def close(self) -> None:
        """Release connections."""


FIRST_ROWS_PAGE = 100
"""A scan's first page is small: a list page stops reading after the rows it shows."""

KeyRangePage = Callable[[str, tuple[str, ...], int], Sequence[tuple[str, str]]]
"""``fetch(condition, params, limit)``: up to ``limit`` (key, doc) rows of a projection
generation in key order, where ``condition`` (on ``key``, with ``params``) holds."""


def rows_by_key_range(fetch: KeyRangePage, prefix: str,
                      page: int) -> Iterator[tuple[str, str]]:
    """Every (key, doc) row whose key starts with ``prefix``, in key order, page by page;
    the same CQL and SQL condition serves both stores."""
    end = prefix_end(prefix)
    upper = ("", ()) if end is None else (" AND key < ?", (end,))
    start, after, size = ">=", prefix, FIRST_ROWS_PAGE
    while True:
        rows = fetch(f"key {start} ?{upper[0]}", (after, *upper[1]), size)
        yield from rows
        if len(rows) < size:
            return
        start, after, size = ">", rows[-1][0], page


def prefix_end(prefix: str) -> str | None:
    """The least key above every key that starts with ``prefix`` (``None``: no bound), in
    the code-point order both stores sort text keys in."""
    for cut in range(len(prefix), 0, -1):
        following = ord(prefix[cut - 1]) + 1
        if 0xD800 <= following <= 0xDFFF:  # surrogates are no text: skip past them
            following = 0xE000
        if following <= 0x10FFFF:
            return prefix[:cut - 1] + chr(following)
    return None
