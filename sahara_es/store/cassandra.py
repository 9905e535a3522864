"""The production store on Apache Cassandra: lightweight transactions for every decision.

Events. A stream is split into bounded partitions ``(stream_id, partition_nr)`` of about
``partition_size`` events; an append goes to the partition of its first new version,
``expected_version // partition_size``, and may overflow it by less than one batch. Row
``version = 0`` of each partition is the *head* (a regular row, not a static column: a CAS on a
static column costs a range scan): current version, newest fencing epoch, and ``sealed`` once
the stream moved on to the next partition. An append is one conditional batch on the head::

    UPDATE head SET head_version = n+k [, fence_epoch = e]
        IF head_version = n AND sealed = false [AND fence_epoch <= e]
    INSERT event n+1 ... INSERT event n+k

Crossing into partition t first seals head(t-1) with an LWT carrying the same conditions, then
inserts head(t) with the events ``IF NOT EXISTS``. A sealed head never changes again, so a
writer may finish a crossing that another started and died in.

A stream's first head row also carries its category, found through a storage-attached index
(``list_streams``), so a new stream costs no request beyond its LWT.

The global feed (``cassandra_feed.py``; the argument is in doc/store.rst, "The feed"). An
append's LWT also marks the head it updates (``unrelayed = <second>``), in the same mutation as its
events: whatever commits is marked, with no clock and no second write. A relay, one at a time by
lease and fenced, copies marked heads' new events into one internal stream, ``$feed``, whose
versions are the feed's positions, then clears each mark at the mark's own write timestamp.
Consumers read ``$feed`` in version order and stop at a missing version.

Outcomes. Every failure of an LWT after it was sent is an unknown outcome, found out by a SERIAL
re-read, which completes any Paxos round in flight; an append whose first event is not there
yet waits until its request can no longer be executing before reporting "not applied". The
driver never re-sends a conditional statement by itself (``NoResend``). Errors that mean "not
attempted" retry with tenacity.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import (
    AuthenticationFailed,
    ConsistencyLevel,
    CoordinationFailure,
    RequestValidationException,
    Timeout,
)
from cassandra import Unavailable as DriverUnavailable
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy, TokenAwarePolicy
from cassandra.query import (
    UNSET_VALUE,
    BatchStatement,
    BatchType,
    BoundStatement,
    PreparedStatement,
    dict_factory,
)
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from sahara_es.events import NewEvent, RecordedEvent, category_of
from sahara_es.schema import upgrade_cassandra
from sahara_es.store import serialization
from sahara_es.store.base import (
    MAX_APPEND_BATCH,
    Claim,
    DataKey,
    FeedPage,
    Lease,
    LeaseState,
    Snapshot,
    Store,
    check_claim,
    check_release,
    claim_region,
    wanted_by,
)
from sahara_es.store.cassandra_errors import plain_errors, translated
from sahara_es.store.cassandra_feed import (
    FEED_STREAM,
    RELAYED_FEED_MIGRATION,
    FeedRelay,
    StoredEvent,
    feed_version,
)
from sahara_es.store.cassandra_rows import ProjectionRows
from sahara_es.store.config import CassandraConfig, read_credentials
from sahara_es.store.errors import (
    ConcurrencyConflict,
    ForeignRegion,
    LeaseHeld,
    LeaseLost,
    NameTaken,
    NotFound,
    OutcomeUnknown,
    StoreError,
    Unavailable,
)

Row = dict[str, Any]


class _OutcomeUnknown(Exception):
    """An LWT failed after it was sent: it may or may not have applied.

    ``answered``: the coordinator itself answered (a ``WriteTimeout``, as SERIAL rounds under
    contention between datacenters end quickly): it has given up, so the statement is no longer
    waiting in it, and a SERIAL read now tells what became of it. Otherwise (a client timeout,
    a dropped connection) it may still be queued there.
    """

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(frozen=True)
class _ClaimPlace:
    """Where a claim lives and how it is changed: its table, the condition naming its
    partition with ``keys``, the serial level of its LWTs and the consistency of its reads."""

    table: str
    where: str
    keys: tuple[str, ...]
    serial: str
    read: str


_LOCAL_SERIAL = "LOCAL_SERIAL"


class NoResend(RetryPolicy):  # type: ignore[misc]  # the driver is untyped
    """The driver's retries, minus any re-sending of a statement that is not idempotent.

    The default policy sends a statement again on the next host when a connection drops or a
    server errs after it was sent: for an LWT that may have applied, the second copy would
    conflict with the first, and an append that applied would be reported as a conflict. Here
    such failures reach the store, which finds out what happened. Reads (marked idempotent)
    still move on to another host once.
    """

    def on_request_error(self, query: Any, consistency: Any, error: Any,
                         retry_num: int) -> tuple[int, Any]:
        if query is not None and query.is_idempotent and retry_num == 0:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None

    def on_write_timeout(self, query: Any, consistency: Any, write_type: Any,
                         required_responses: int, received_responses: int,
                         retry_num: int) -> tuple[int, Any]:
        return self.RETHROW, None


_retry_transient = retry(
    retry=retry_if_exception_type(Unavailable),
    stop=stop_after_attempt(6),
    wait=wait_random_exponential(multiplier=0.05, max=2.0),
    reraise=True,
)


_retry_serial_read = retry(
    retry=retry_if_exception_type(Unavailable),
    stop=stop_after_attempt(8),
    wait=wait_random_exponential(multiplier=0.05, max=1.0),
    reraise=True,
)
_SERIALS = ("SERIAL", "LOCAL_SERIAL")


def _consistency(name: str) -> int:
    value: int = getattr(ConsistencyLevel, name)
    return value


IN_STREAMS = 50
"""Streams one relay read or mark-clearing batch names."""
READS_IN_FLIGHT = 32


class CassandraStore(ProjectionRows, Store):

    def __init__(self, config: CassandraConfig | None = None, *,
                 clock: Callable[[], float] = time.time,
                 on_step: Callable[[str], None] | None = None, **overrides: Any) -> None:
        self.config = config or CassandraConfig(**overrides)
        self.clock = clock
        """Seconds since the epoch, for lease times: injected by tests to shift a writer's
        clock (nothing in the feed or in an append's outcome depends on it)."""
        self.on_step = on_step
        """Called with the name of each internal step (``STEPS``) as it is reached: tests
        pause or kill a writer or the relay there."""
        cfg = self.config
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=cfg.local_dc))
        profile = ExecutionProfile(
            load_balancing_policy=policy,
            consistency_level=_consistency(cfg.consistency),
            serial_consistency_level=_consistency(cfg.ownership_serial),
            request_timeout=cfg.request_timeout,
            row_factory=dict_factory,
            retry_policy=NoResend(),
        )
        credentials = read_credentials(cfg)
        self._cluster = Cluster(
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            protocol_version=5,
            # Read from the password file just now, held only by the driver's connections.
            auth_provider=PlainTextAuthProvider(*credentials) if credentials else None,
            **self._cluster_options(),
        )
        del credentials
        try:
            self._session: Session = self._cluster.connect()
        except NoHostAvailable as error:
            if any(isinstance(e, AuthenticationFailed) for e in error.errors.values()):
                said = (f"refused the password of user {cfg.username!r}" if cfg.username
                        else "requires a user and password")
                # Not retryable, and chained to nothing: the driver's error is no business
                # of the caller's and a password must never ride along in a traceback.
                raise StoreError(f"Cassandra at {','.join(cfg.contact_points)} {said}: give"
                                 " the store URL USER@ and password_file=PATH (mode 0600), or"
                                 " set $SAHARA_ES_CASSANDRA_CREDENTIALS") from None
            raise Unavailable(f"no Cassandra node answers at {cfg.contact_points}") from error
        # Preparing a statement waits this long too: the driver's prepare ignores execution
        # profiles and waits its session default (10 s), which it refuses to let a session
        # with profiles set through the public property.
        self._session._default_timeout = cfg.request_timeout
        self._prepared: dict[str, PreparedStatement] = {}
        self._last_partition: dict[str, int] = {}
        self._feed_relay: FeedRelay | None = None
        self._region = cfg.local_dc or self._coordinator_datacenter()
        if self._keyspace_ready():
            try:
                self._check_serial_levels()
            except StoreError:
                self._cluster.shutdown()
                raise
            self._session.set_keyspace(cfg.keyspace)

    # -- plumbing -------------------------------------------------------------------------

    def _cluster_options(self) -> dict[str, Any]:
        """Where the driver connects (a test subclass routes it through a TCP proxy), with
        Nagle's algorithm off: the driver leaves it on, and a request of more than a few KiB
        (an append of tens of events) then waited for a delayed ACK, 40 ms of the 55 that
        such an LWT took here."""
        return {"contact_points": list(self.config.contact_points), "port": self.config.port,
                "sockopts": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]}

    @property
    def region(self) -> str:
        """This process's datacenter: ``local_dc``, or else the one of the node it talks to."""
        return self._region

    def _coordinator_datacenter(self) -> str:
        with plain_errors("asking the node for its datacenter"):
            row = self._session.execute("SELECT data_center FROM system.local").one()
        return str(row["data_center"])

    def _datacenters_replicating(self) -> int:
        """How many datacenters hold the keyspace's replicas (its definition if it exists,
        else the configured replication)."""
        with plain_errors("reading the keyspace's replication"):
            row = self._session.execute(
                "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                (self.config.keyspace,)).one()
        replication = dict(row["replication"]) if row else dict(self.config.replication)
        if replication.get("class", "").endswith("NetworkTopologyStrategy"):
            return sum(1 for dc, n in replication.items()
                       if dc not in ("class", "replication_factor") and int(n) > 0)
        return len({host.datacenter for host in self._cluster.metadata.all_hosts()})

    def _check_serial_levels(self) -> None:
        """Every caller writes a table at one serial level (doc/regions.rst): with replicas
        in several datacenters, LOCAL_SERIAL is for ``region_claims`` alone, whose keys name
        their region. With one datacenter LOCAL_SERIAL and SERIAL are the same rounds."""
        local = [name for name in ("ownership_serial", "claims_serial")
                 if getattr(self.config, name) == _LOCAL_SERIAL]
        if local and self._datacenters_replicating() > 1:
            raise StoreError(
                f"keyspace {self.config.keyspace} spans several datacenters:"
                f" {' and '.join(local)} must be SERIAL (LWTs at LOCAL_SERIAL in two"
                " regions both win); region-local claims use keys made by region_claim_key")

    def _step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def _keyspace_ready(self) -> bool:
        meta = self._cluster.metadata.keyspaces.get(self.config.keyspace)
        return meta is not None and "events" in meta.tables

    def upgrade(self) -> list[int]:
        self._check_serial_levels()
        with plain_errors("applying the schema's migrations"):  # each one safe to run again
            applied = upgrade_cassandra(self._session, self.config.keyspace,
                                        self.config.replication)
        self._prepared.clear()
        if RELAYED_FEED_MIGRATION in applied:
            self._mark_every_head()
        return applied

    def close(self) -> None:
        if self._feed_relay is not None:
            self._feed_relay.stop()
        self._cluster.shutdown()

    def describe(self) -> dict[str, Any]:
        with plain_errors("describing the node"):
            row = self._session.execute("SELECT release_version FROM system.local").one()
            paxos = self._session.execute(
                "SELECT value FROM system_views.settings WHERE name = 'paxos_variant'").one()
        cfg = self.config
        return {
            "backend": "cassandra",
            "cassandra_version": row["release_version"],
            "paxos_variant": paxos["value"] if paxos else "unknown",
            "keyspace": cfg.keyspace,
            "user": cfg.username or "(none)",
            "replication": cfg.replication,
            "consistency": cfg.consistency,
            "region": self.region,
            "ownership_serial": cfg.ownership_serial,
            "claims_serial": cfg.claims_serial,
            "region_claims_serial": _LOCAL_SERIAL,
            "partition_size": cfg.partition_size,
            "feed": "relayed",
            "feed_relay": "on" if cfg.feed_relay else "off",
            "request_timeout": cfg.request_timeout,
        }

    def _prepare(self, cql: str) -> PreparedStatement:
        statement = self._prepared.get(cql)
        if statement is None:
            if self._session.keyspace is None:
                raise StoreError(f"keyspace {self.config.keyspace!r} has no schema yet:"
                                 " run `sahara-es db upgrade`")
            with plain_errors("could not prepare a statement"):
                statement = self._session.prepare(cql)
            self._prepared[cql] = statement
        return statement

    def _run(self, cql: str, params: Sequence[Any] = (), *, serial: str | None = None,
             consistency: str | None = None) -> list[Row]:
        """Execute a plain statement; failures that mean "not attempted" become Unavailable."""
        bound = self._prepare(cql).bind(params)
        if consistency:
            bound.consistency_level = _consistency(consistency)
        if serial:
            bound.serial_consistency_level = _consistency(serial)
        # Plain reads and writes only (LWTs go through ``_lwt``): sending one twice is harmless.
        bound.is_idempotent = True
        if consistency in _SERIALS:
            return self._serial_read(bound)
        with plain_errors():
            return list(self._session.execute(bound))

    @_retry_serial_read
    def _serial_read(self, bound: BoundStatement) -> list[Row]:
        """A read at SERIAL or LOCAL_SERIAL is a Paxos round: under contention between
        datacenters its coordinator gives up quickly ("CAS operation timed out ... 0
        contention retries"). It changes nothing but rounds in flight, so it is tried again."""
        with plain_errors():
            return list(self._session.execute(bound))

    def _lwt(self, statement: Any, serial: str) -> Row:
        """Execute a conditional statement; the row holds ``[applied]`` and current values.

        Only a refusal before anything was sent (no replica alive, no connection) means "not
        attempted"; every other failure, a dropped connection included, is an unknown outcome
        (the driver re-sends nothing: ``NoResend``).
        """
        statement.serial_consistency_level = _consistency(serial)
        try:
            row: Row = self._session.execute(statement).one()
            return row
        except (DriverUnavailable, NoHostAvailable, RequestValidationException) as error:
            raise translated(error) from error  # refused before or as written: not applied
        except (Timeout, CoordinationFailure) as error:
            raise _OutcomeUnknown(f"{type(error).__name__}: {error}", answered=True) from error
        except Exception as error:
            raise _OutcomeUnknown(f"{type(error).__name__}: {error}", answered=False) from error

    def _lwt_resolved(self, statement: Any, serial: str, applied: Callable[[], bool]) -> Row:
        """Run an LWT; on an unknown outcome ask ``applied`` (a SERIAL re-read) for the truth."""
        try:
            return self._lwt(statement, serial)
        except _OutcomeUnknown:
            return {"[applied]": self._settle(applied)}

    @staticmethod
    @retry(retry=retry_if_exception_type(Unavailable), stop=stop_after_attempt(10),
           wait=wait_random_exponential(multiplier=0.1, max=2.0), reraise=True)
    def _settle(applied: Callable[[], bool]) -> bool:
        return applied()

    # -- events: heads and partitions -----------------------------------------------------

    _HEAD_INSERT = (
        "INSERT INTO events (stream_id, partition_nr, version, head_version, fence_epoch,"
        " sealed, category{mark}) VALUES (?, ?, 0, ?, ?, false, ?{one}) IF NOT EXISTS"
    )

    def _head_insert(self, stream_id: str, partition: int, version: int, fence: int, *,
                     marked: bool = False) -> BoundStatement:
        """A partition's head row; the first one names the stream's category (the others
        leave the column unset: no tombstone, no index entry). ``marked``: it comes with
        events the relay has to copy into the feed."""
        category = category_of(stream_id) if partition == 0 else UNSET_VALUE
        cql = self._HEAD_INSERT.format(mark=", unrelayed" if marked else "",
                                       one=", ?" if marked else "")
        mark = (self._mark_value(),) if marked else ()
        return self._prepare(cql).bind((stream_id, partition, version, fence, category, *mark))

    def _mark_value(self) -> int:
        """A mark holds the second it was made by the writer's clock: the relay looks for the
        newest marks by that range first (cheap), and sweeps for every mark now and then, so
        a clock that is off costs a mark's delivery time, never its delivery."""
        return int(self.clock())

    def _head(self, stream_id: str, partition: int, serial: bool = False) -> Row | None:
        rows = self._run(
            "SELECT head_version, fence_epoch, sealed, unrelayed FROM events"
            " WHERE stream_id = ? AND partition_nr = ? AND version = 0",
            (stream_id, partition),
            consistency=self.config.ownership_serial if serial else None,
        )
        return rows[0] if rows else None

    def _current_partition(self, stream_id: str) -> int | None:
        """The highest partition with a head (heads exist for 0..last, without holes)."""
        hint = self._last_partition.get(stream_id, 0)
        if self._head(stream_id, hint) is None:
            if hint == 0:
                return None
            hint = 0
            if self._head(stream_id, 0) is None:
                return None
        low, step = hint, 1  # gallop up from a known head, then bisect
        while self._head(stream_id, low + step) is not None:
            low, step = low + step, step * 2
        high = low + step  # no head here
        while high - low > 1:
            mid = (low + high) // 2
            if self._head(stream_id, mid) is not None:
                low = mid
            else:
                high = mid
        self._last_partition[stream_id] = low
        return low

    _EVENT_INSERT = (
        "INSERT INTO events (stream_id, partition_nr, version, event_id, event_type,"
        " schema_version, data, metadata, origin_stream, origin_version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def _batch_with_events(self, stream_id: str, partition: int, first_version: int,
                           rows: Sequence[StoredEvent]) -> BatchStatement:
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        insert = self._prepare(self._EVENT_INSERT)
        for offset, row in enumerate(rows):
            batch.add(insert, (
                stream_id, partition, first_version + offset, row.event_id, row.event_type,
                row.schema_version, row.data, row.metadata,
                UNSET_VALUE if row.origin_stream is None else row.origin_stream,
                UNSET_VALUE if row.origin_version is None else row.origin_version,
            ))
        return batch

    def _event_ids_at(self, stream_id: str, first: int, last: int) -> list[uuid.UUID]:
        """The ids of the events the stream holds from version ``first`` on (up to ``last``),
        read at SERIAL: any Paxos round in flight on those partitions is finished first."""
        size = self.config.partition_size
        ids: list[uuid.UUID] = []
        for partition in sorted({max(0, (first - 1) // size - 1), (first - 1) // size}):
            ids += [row["event_id"] for row in self._run(
                "SELECT event_id FROM events WHERE stream_id = ? AND partition_nr = ?"
                " AND version >= ? AND version <= ?",
                (stream_id, partition, first, last),
                consistency=self.config.ownership_serial,
            )]
        return ids

    def _refusal(self, stream_id: str, expected: int, head: Row | None,
                 lease: Lease | None) -> Exception:
        """The error an append that did not apply must raise, from the head it found (read
        again when not given)."""
        if head is None and lease is not None:
            partition = self._current_partition(stream_id)
            head = None if partition is None else self._head(stream_id, partition, serial=True)
        if head and lease is not None and (head.get("fence_epoch") or 0) > lease.epoch:
            return LeaseLost(f"{stream_id} is fenced by epoch {head['fence_epoch']}"
                             f" > {lease.epoch}")
        # At SERIAL: this datacenter's replica may not have the appends of another region yet,
        # and a stale version equal to ``expected`` would send the append round in circles.
        actual = self._stream_version(stream_id, serial=True)
        if actual == expected:
            # Only an outcome found to be "not applied" gets here: nothing conflicts, so the
            # append is simply tried again (Unavailable is retried).
            return Unavailable(f"append to {stream_id} did not apply; trying again")
        return ConcurrencyConflict(
            f"{stream_id} is at version {actual}, not {expected}", actual_version=actual
        )

    # -- events: writes -------------------------------------------------------------------

    @_retry_transient
    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        lease: Lease | None = None,
    ) -> int:
        if not events:
            raise ValueError("append needs at least one event")
        if len(events) > MAX_APPEND_BATCH:
            raise ValueError(f"at most {MAX_APPEND_BATCH} events per append")
        if expected_version < 0:
            raise ValueError("expected_version cannot be negative")
        if stream_id == FEED_STREAM:
            raise ValueError(f"{FEED_STREAM} is written by the feed relay only")
        rows = [StoredEvent(event.event_id, event.type, event.schema_version,
                            *serialization.encode(event)) for event in events]
        return self._append_rows(stream_id, rows, expected_version, lease, mark=True)

    def _append_rows(self, stream_id: str, rows: Sequence[StoredEvent], n: int,
                     lease: Lease | None, *, mark: bool) -> int:
        """One attempt at appending ``rows`` after version ``n``; returns the new version or
        raises what happened (``Unavailable`` when it did not apply and may be tried again).

        ``mark``: the head is marked for the relay in the same LWT (every stream but the
        feed's own)."""
        k = len(rows)
        partition = n // self.config.partition_size
        plan = self._plan_append(stream_id, partition, n, lease)
        if isinstance(plan, dict):
            return self._refused(stream_id, n, rows, plan, lease)
        if plan is None:
            statement = self._batch_on_head(stream_id, partition, n, rows, lease, mark)
        else:  # the partition has no head yet: this append creates it, carrying the fence
            statement = self._batch_with_events(stream_id, partition, n + 1, rows)
            fence = max(plan, lease.epoch if lease else 0)
            statement.add(self._head_insert(stream_id, partition, n + k, fence, marked=mark))
        result = self._commit(statement, stream_id, n, rows, lease)
        if isinstance(result, int):
            return result
        if plan is not None and n == 0 and result.get("head_version") == 0:
            # fence() created the empty head first: append through it like any other.
            statement = self._batch_on_head(stream_id, partition, n, rows, lease, mark)
            result = self._commit(statement, stream_id, n, rows, lease)
            if isinstance(result, int):
                return result
        return self._refused(stream_id, n, rows, result, lease)

    def _commit(self, statement: BatchStatement, stream_id: str, n: int,
                rows: Sequence[StoredEvent], lease: Lease | None) -> int | Row:
        """Send an append's LWT: the new version if it applied, else the row that says why.
        An unknown outcome is found out (``_settle_append``), never guessed."""
        self._step("append.before_lwt")
        sent = time.monotonic()
        try:
            result = self._lwt(statement, self.config.ownership_serial)
        except _OutcomeUnknown as unknown:
            self._step("append.after_lwt")
            # A coordinator that answered is done with the statement: no need to wait out
            # a request that can no longer be executing.
            deadline = time.monotonic() if unknown.answered \
                else sent + self.config.request_timeout
            return self._settle_append(stream_id, n, rows, lease, deadline)
        self._step("append.after_lwt")
        if result["[applied]"]:
            self._last_partition[stream_id] = max(n // self.config.partition_size,
                                                  self._last_partition.get(stream_id, 0))
            return n + len(rows)
        return result

    def _refused(self, stream_id: str, n: int, rows: Sequence[StoredEvent], head: Row,
                 lease: Lease | None) -> int:
        """An append the store found not applied: unless the stream holds its very events at
        its versions (an earlier try of this same append applied), raise why."""
        if (head.get("head_version") or 0) >= n + len(rows) and self._event_ids_at(
                stream_id, n + 1, n + len(rows)) == [row.event_id for row in rows]:
            return n + len(rows)
        raise self._refusal(stream_id, n, head, lease)

    def _settle_append(self, stream_id: str, n: int, rows: Sequence[StoredEvent],
                       lease: Lease | None, deadline: float) -> int:
        """What became of an append whose reply never came. Its events at versions n+1…
        mean it applied; other events there mean it lost (conflict, or a newer fence).
        Nothing there yet: the LWT may still be on its way (queued in a coordinator), so the
        store asks again until the request can no longer be executing (``deadline``:
        ``request_timeout`` after it was sent, or at once when the coordinator answered), and
        only then reports "not applied", which the append retries with the same events: a
        proposal that a minority of replicas accepted and a later round completes is then
        found as its own events, never as a conflict."""
        pause = 0.05
        while True:
            try:
                found = self._event_ids_at(stream_id, n + 1, n + len(rows))
            except Unavailable as error:
                if time.monotonic() > deadline + self.config.request_timeout:
                    raise OutcomeUnknown(
                        f"append to {stream_id} after version {n}: sent, and whether it"
                        " applied could not be found out (Cassandra stopped answering);"
                        " retrying the same append is safe") from error
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            if found:
                # All of them: the feed's copies of one event may sit at two versions.
                if found == [row.event_id for row in rows]:
                    return n + len(rows)
                raise self._refusal(stream_id, n, None, lease)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unavailable(f"append to {stream_id} did not apply; trying again")
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 1.0)

    def _batch_on_head(self, stream_id: str, partition: int, n: int,
                       rows: Sequence[StoredEvent], lease: Lease | None,
                       mark: bool) -> BatchStatement:
        batch = self._batch_with_events(stream_id, partition, n + 1, rows)
        marked = ", unrelayed = ?" if mark else ""
        value = (self._mark_value(),) if mark else ()
        if lease is None:
            batch.add(self._prepare(
                f"UPDATE events SET head_version = ?{marked} WHERE stream_id = ?"
                " AND partition_nr = ? AND version = 0 IF head_version = ? AND sealed = false"
            ), (n + len(rows), *value, stream_id, partition, n))
        else:
            batch.add(self._prepare(
                f"UPDATE events SET head_version = ?, fence_epoch = ?{marked} WHERE stream_id = ?"
                " AND partition_nr = ? AND version = 0"
                " IF head_version = ? AND sealed = false AND fence_epoch <= ?"
            ), (n + len(rows), lease.epoch, *value, stream_id, partition, n, lease.epoch))
        return batch

    def _plan_append(self, stream_id: str, partition: int, n: int,
                     lease: Lease | None) -> int | Row | None:
        """How an append after version ``n`` reaches partition ``partition``.

        ``None``: through the partition's existing head. An int: by creating the head, with
        that fencing epoch carried over from the previous partition. A row: refused, with the
        head that says why.
        """
        if n == 0:
            return 0
        if (n % self.config.partition_size >= MAX_APPEND_BATCH
                or self._last_partition.get(stream_id, -1) >= partition):
            return None  # the head exists (or the stream is not at n, which the LWT will say)
        # Near a partition's start: either it holds this stream's last append already, or the
        # stream is crossing into it from the previous partition.
        if self._head(stream_id, partition) is not None:
            return None
        previous = self._head(stream_id, partition - 1, serial=True)
        if previous is None or previous["head_version"] != n:
            return {"[applied]": False, **(previous or {})}
        fence = previous["fence_epoch"]
        if lease is not None and fence > lease.epoch:
            return {"[applied]": False, **previous}
        if previous["sealed"]:
            return int(fence)  # a writer sealed it and died before creating the next head
        new_fence = lease.epoch if lease else fence
        statement = self._prepare(
            "UPDATE events SET sealed = true, fence_epoch = ? WHERE stream_id = ?"
            " AND partition_nr = ? AND version = 0"
            " IF head_version = ? AND sealed = false AND fence_epoch <= ?"
        ).bind((new_fence, stream_id, partition - 1, n, new_fence))

        def sealed() -> bool:
            head = self._head(stream_id, partition - 1, serial=True)
            return bool(head and head["sealed"] and head["head_version"] == n)

        result = self._lwt_resolved(statement, self.config.ownership_serial, sealed)
        if result["[applied]"]:
            return int(new_fence)
        if result.get("sealed") and result.get("head_version") == n and (
            lease is None or result["fence_epoch"] <= lease.epoch
        ):
            return int(result["fence_epoch"])
        return result

    @_retry_transient
    def fence(self, stream_id: str, lease: Lease) -> None:
        for _ in range(20):
            partition = self._current_partition(stream_id)
            if partition is None:
                statement = self._head_insert(stream_id, 0, 0, lease.epoch)
            else:
                head = self._head(stream_id, partition, serial=True)
                assert head is not None
                if head["fence_epoch"] > lease.epoch:
                    raise LeaseLost(f"{stream_id} is fenced by epoch {head['fence_epoch']}")
                if head["sealed"]:
                    statement = self._head_insert(stream_id, partition + 1,
                                                  head["head_version"], lease.epoch)
                else:
                    statement = self._prepare(
                        "UPDATE events SET fence_epoch = ? WHERE stream_id = ?"
                        " AND partition_nr = ? AND version = 0"
                        " IF sealed = false AND fence_epoch <= ?"
                    ).bind((lease.epoch, stream_id, partition, lease.epoch))
            try:
                result = self._lwt(statement, self.config.ownership_serial)
            except _OutcomeUnknown:
                continue  # re-read the heads and try again: fencing twice is harmless
            if result["[applied]"]:
                return
            if (result.get("fence_epoch") or 0) > lease.epoch:
                raise LeaseLost(f"{stream_id} is fenced by epoch {result['fence_epoch']}")
        raise Unavailable(f"could not fence {stream_id}: its heads kept changing")

    # -- events: reads --------------------------------------------------------------------

    _STORED_COLUMNS = ("version, event_id, event_type, schema_version, data, metadata,"
                       " origin_stream, origin_version")

    def _stored(self, stream_id: str, first: int, last: int, *,
                partition: int | None = None) -> Iterator[Row]:
        """The stored rows of versions ``first``..``last`` in version order (of one partition
        when given), page by page."""
        size = self.config.partition_size
        wanted = max(first, 1)
        current = max(0, (wanted - 1) // size - 1) if partition is None else partition
        while wanted <= last and current <= (
                (wanted - 1) // size if partition is None else partition):
            statement = self._prepare(
                f"SELECT {self._STORED_COLUMNS} FROM events WHERE stream_id = ?"
                " AND partition_nr = ? AND version >= ? AND version <= ?"
            ).bind((stream_id, current, wanted, last))
            statement.fetch_size = 1000
            statement.is_idempotent = True
            with plain_errors():
                for row in self._session.execute(statement):
                    yield row
                    wanted = row["version"] + 1
            current += 1

    def _stored_many(self, ranges: Sequence[tuple[str, int, int, int]]) -> list[list[Row]]:
        """For each ``(stream, partition, first, last)``, that partition's stored rows of
        versions ``first``..``last``. Ranges that share a partition number and a first version
        (new streams, typically) are read together, up to ``IN_STREAMS`` streams a request;
        the requests go out concurrently."""
        statement = self._prepare(
            f"SELECT stream_id, {self._STORED_COLUMNS} FROM events WHERE stream_id IN ?"
            " AND partition_nr = ? AND version >= ? AND version <= ?")
        groups: dict[tuple[int, int], list[int]] = {}
        for index, (_, partition, first, _) in enumerate(ranges):
            groups.setdefault((partition, first), []).append(index)
        requests: list[tuple[list[int], Any]] = []
        for (partition, first), indexes in groups.items():
            for start in range(0, len(indexes), IN_STREAMS):
                chunk = indexes[start:start + IN_STREAMS]
                last = max(ranges[i][3] for i in chunk)
                bound = statement.bind(([ranges[i][0] for i in chunk], partition, first, last))
                bound.is_idempotent = True
                bound.fetch_size = None  # a bounded range of a few partitions: one page
                requests.append((chunk, bound))
        results: list[list[Row]] = [[] for _ in ranges]
        for start in range(0, len(requests), READS_IN_FLIGHT):
            window = requests[start:start + READS_IN_FLIGHT]
            futures = [self._session.execute_async(bound) for _, bound in window]
            for (chunk, _), future in zip(window, futures, strict=True):
                with plain_errors():
                    rows = list(future.result())
                wanted = {ranges[i][0]: i for i in chunk}
                for row in sorted(rows, key=lambda r: (r["stream_id"], r["version"])):
                    index = wanted[row["stream_id"]]
                    if row["version"] <= ranges[index][3]:
                        results[index].append(row)
        return results

    def read(
        self, stream_id: str, from_version: int = 1, *, to_version: int | None = None
    ) -> Iterator[RecordedEvent]:
        upper = to_version if to_version is not None else 2**62
        for row in self._stored(stream_id, from_version, upper):
            yield serialization.decode(
                stream_id=stream_id, position="", version=row["version"],
                event_id=row["event_id"], event_type=row["event_type"],
                schema_version=row["schema_version"], data=row["data"],
                metadata=row["metadata"])

    def stream_version(self, stream_id: str) -> int:
        return self._stream_version(stream_id)

    def _stream_version(self, stream_id: str, *, serial: bool = False) -> int:
        partition = self._current_partition(stream_id)
        if partition is None:
            return 0
        head = self._head(stream_id, partition, serial=serial)
        while serial and head and head["sealed"]:
            # Sealed: the stream moved into the next partition (perhaps not written here yet).
            following = self._head(stream_id, partition + 1, serial=True)
            if following is None:
                break  # its writer sealed it and died before making the next head
            partition, head = partition + 1, following
        return int(head["head_version"]) if head else 0

    def list_streams(self, category: str) -> Iterator[str]:
        """In stream id order: the category index answers in token order, and streams made
        before it are in the old ``streams`` table (one stream may be in both)."""
        found: set[str] = set()
        for cql in ("SELECT stream_id FROM events WHERE category = ?",
                    "SELECT stream_id FROM streams WHERE category = ?"):
            statement = self._prepare(cql).bind((category,))
            statement.fetch_size = 1000
            statement.is_idempotent = True
            with plain_errors():
                found.update(row["stream_id"] for row in self._session.execute(statement)
                             if row["stream_id"] != FEED_STREAM)
        yield from sorted(found)

    # -- the global feed ------------------------------------------------------------------

    @property
    def feed_relay(self) -> FeedRelay:
        if self._feed_relay is None:
            self._feed_relay = FeedRelay(self)
        return self._feed_relay

    def read_feed_page(self, after: str | None = None, *, limit: int = 500,
                       categories: frozenset[str] | None = None) -> FeedPage:
        """The feed's events after version ``after``, up to the version the relay committed,
        stopping at the first one not readable here yet: feed numbers are dense, so a copy
        that has not reached this datacenter's replicas is waited for, never passed. A process
        that reads the feed also relays into it (unless ``feed_relay=off``)."""
        start = feed_version(after)
        wanted = wanted_by(categories)
        out: list[RecordedEvent] = []
        scanned = self._read_feed_rows(start, limit, wanted, out)
        if self.config.feed_relay:
            relay = self.feed_relay.start()
            if scanned < limit and relay.pass_once(only_if_held=True, wait=False):
                scanned += self._read_feed_rows(start + scanned, limit - scanned, wanted, out)
        return FeedPage(out, position=str(start + scanned) if scanned else after,
                        scanned=scanned)

    def _read_feed_rows(self, start: int, limit: int, wanted: Callable[[str], bool],
                        out: list[RecordedEvent]) -> int:
        """Read up to ``limit`` feed entries after version ``start``, to the first hole,
        appending the wanted ones, decoded, to ``out``; how many were read."""
        read = 0
        if limit <= 0:
            return read
        for row in self._stored(FEED_STREAM, start + 1, start + limit):
            if row["version"] != start + read + 1:
                break  # a hole: not replicated here yet
            read += 1
            if not wanted(row["origin_stream"]):
                continue
            out.append(serialization.decode(
                stream_id=row["origin_stream"], version=row["origin_version"],
                position=str(row["version"]), event_id=row["event_id"],
                event_type=row["event_type"], schema_version=row["schema_version"],
                data=row["data"], metadata=row["metadata"]))
        return read

    def _marked_heads(self, limit: int, since: int = 0, after_token: int | None = None
                      ) -> list[Row]:
        """Heads whose appends the relay has not copied into the feed yet (those marked from
        second ``since`` on by their writers' clocks; after ``after_token``, for a sweep that
        goes on where its last page ended), with the write timestamp of each mark.

        The index keeps an entry for every mark ever set until compaction drops the cleared
        ones, and the query reads each entry in its range: a range of recent seconds costs
        what was marked in them, a sweep from 0 what was marked since the last compactions."""
        token = "" if after_token is None else " AND token(stream_id, partition_nr) > ?"
        return self._run(
            "SELECT token(stream_id, partition_nr) AS tok, stream_id, partition_nr,"
            " head_version, relayed_version, writetime(unrelayed) AS marked FROM events"
            f" WHERE unrelayed >= ?{token} LIMIT ?",
            (since, *(() if after_token is None else (after_token,)), limit))

    def _relayed(self, updates: Sequence[tuple[Row, int, bool]]) -> list[Any]:
        """Note how far each head was relayed, clearing its mark where all of it was: written
        at the mark's own timestamp, so that the mark of a later append (a later Paxos
        ballot) survives. Returns the requests' futures, in flight: a note that fails leaves
        its mark, and those events are relayed again."""
        clear = self._prepare(
            "UPDATE events USING TIMESTAMP ? SET unrelayed = null, relayed_version = ?"
            " WHERE stream_id = ? AND partition_nr = ? AND version = 0")
        note = self._prepare(
            "UPDATE events USING TIMESTAMP ? SET relayed_version = ?"
            " WHERE stream_id = ? AND partition_nr = ? AND version = 0")
        # Unlogged batches across partitions: one request carries many small writes, each
        # with its own timestamp (the coordinator applies them partition by partition).
        futures = []
        for start in range(0, len(updates), IN_STREAMS):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            batch.is_idempotent = True
            for head, version, complete in updates[start:start + IN_STREAMS]:
                batch.add(clear if complete else note,
                          (head["marked"], version, head["stream_id"], head["partition_nr"]))
            futures.append(self._session.execute_async(batch))
        return futures

    def _mark_every_head(self) -> int:
        """Mark every head with events (once, when the relayed feed is first installed), so
        that events appended before it reach the feed too."""
        statement = self._prepare(
            "SELECT stream_id, partition_nr, head_version FROM events WHERE version = 0"
            " ALLOW FILTERING").bind(())
        statement.fetch_size = 1000
        # At timestamp 1: below every append's, whose mark a clear of this one must not remove.
        mark = self._prepare("UPDATE events USING TIMESTAMP 1 SET unrelayed = 0 WHERE stream_id = ?"
                             " AND partition_nr = ? AND version = 0")
        count = 0
        with plain_errors("marking the heads for the relay"):
            for row in self._session.execute(statement):
                if row["stream_id"] != FEED_STREAM and (row["head_version"] or 0) > 0:
                    self._session.execute(mark, (row["stream_id"], row["partition_nr"]))
                    count += 1
        return count


    # -- leases ---------------------------------------------------------------------------

    def _lease_row(self, resource: str) -> Row | None:
        rows = self._run("SELECT * FROM leases WHERE resource = ?", (resource,),
                         consistency=self.config.ownership_serial)
        return rows[0] if rows else None

    @staticmethod
    def _lease(row: Row) -> Lease:
        return Lease(row["resource"], row["owner"], row["epoch"], row["expires_at"],
                     LeaseState(row["state"]))

    @_retry_transient
    def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        serial = self.config.ownership_serial
        for _ in range(10):
            row = self._lease_row(resource)
            now = self.clock()
            if row is None:
                lease = Lease(resource, owner, 1, now + ttl)
                statement = self._prepare(
                    "INSERT INTO leases (resource, owner, epoch, expires_at, state)"
                    " VALUES (?, ?, ?, ?, 'held') IF NOT EXISTS"
                ).bind((resource, owner, 1, lease.expires_at))
            else:
                held = self._lease(row)
                if not held.expired(now) and held.owner != owner:
                    raise LeaseHeld(f"{resource} is held by {held.owner} (epoch {held.epoch})",
                                    owner=held.owner, expires_at=held.expires_at)
                epoch = held.epoch if not held.expired(now) else held.epoch + 1
                lease = Lease(resource, owner, epoch, now + ttl)
                statement = self._prepare(
                    "UPDATE leases SET owner = ?, epoch = ?, expires_at = ?, state = 'held'"
                    " WHERE resource = ? IF epoch = ? AND expires_at = ? AND state = ?"
                ).bind((owner, epoch, lease.expires_at, resource, held.epoch, held.expires_at,
                        held.state.value))

            def applied(lease: Lease = lease) -> bool:
                current = self._lease_row(resource)
                return bool(current and current["owner"] == owner
                            and current["epoch"] == lease.epoch
                            and current["expires_at"] == lease.expires_at)

            if self._lwt_resolved(statement, serial, applied)["[applied]"]:
                return lease
        raise Unavailable(f"lease {resource} kept changing while being acquired")

    @_retry_transient
    def offer_lease(self, resource: str) -> bool:
        expires_at = self.clock()
        statement = self._prepare(
            "INSERT INTO leases (resource, owner, epoch, expires_at, state)"
            " VALUES (?, '', 0, ?, 'released') IF NOT EXISTS").bind((resource, expires_at))

        def applied() -> bool:
            current = self._lease_row(resource)
            return bool(current and current["epoch"] == 0 and current["owner"] == ""
                        and current["expires_at"] == expires_at)

        return bool(self._lwt_resolved(statement, self.config.ownership_serial,
                                       applied)["[applied]"])

    @_retry_transient
    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        renewed = Lease(lease.resource, lease.owner, lease.epoch, self.clock() + ttl)
        statement = self._prepare(
            "UPDATE leases SET expires_at = ? WHERE resource = ?"
            " IF owner = ? AND epoch = ? AND state = 'held'"
        ).bind((renewed.expires_at, lease.resource, lease.owner, lease.epoch))

        def applied() -> bool:
            current = self._lease_row(lease.resource)
            return bool(current and current["expires_at"] == renewed.expires_at)

        if not self._lwt_resolved(statement, self.config.ownership_serial, applied)["[applied]"]:
            raise LeaseLost(f"{lease.resource}: epoch {lease.epoch} of {lease.owner} is over")
        return renewed

    @_retry_transient
    def release_lease(self, lease: Lease) -> None:
        statement = self._prepare(
            "UPDATE leases SET state = 'released', expires_at = ? WHERE resource = ?"
            " IF owner = ? AND epoch = ?"
        ).bind((self.clock(), lease.resource, lease.owner, lease.epoch))
        self._lwt_resolved(statement, self.config.ownership_serial, lambda: True)

    def delete_lease(self, lease: Lease) -> None:
        statement = self._prepare(
            "DELETE FROM leases WHERE resource = ? IF owner = ? AND epoch = ?"
        ).bind((lease.resource, lease.owner, lease.epoch))

        def gone() -> bool:
            current = self._lease_row(lease.resource)
            return current is None or current["epoch"] != lease.epoch

        self._lwt_resolved(statement, self.config.ownership_serial, gone)

    def get_lease(self, resource: str) -> Lease | None:
        row = self._lease_row(resource)
        return self._lease(row) if row else None

    def list_leases(self) -> Iterator[Lease]:
        statement = self._prepare("SELECT * FROM leases").bind(())
        statement.fetch_size = 1000
        statement.is_idempotent = True
        with plain_errors():
            for row in self._session.execute(statement):
                yield self._lease(row)

    # -- claims ---------------------------------------------------------------------------
    #
    # Two tables, each with one serial level for every caller (doc/regions.rst): ``claims``
    # (global: SERIAL, or what a single-datacenter keyspace configured) and ``region_claims``
    # (keys made by ``region_claim_key``: LOCAL_SERIAL, written by their region only).

    def _claim_place(self, key: str, *, write: bool) -> _ClaimPlace:
        region = claim_region(key)
        if region is None:
            return _ClaimPlace("claims", "key = ?", (key,), self.config.claims_serial,
                               self.config.claims_serial)
        if region != self.region:
            if write:
                raise ForeignRegion(f"claim {key} belongs to region {region}: only its"
                                    f" processes change it (this one is in {self.region})")
            # Another region's claim: its copy here, read without Paxos (possibly stale).
            return _ClaimPlace("region_claims", "region = ? AND key = ?", (region, key),
                               _LOCAL_SERIAL, self.config.consistency)
        return _ClaimPlace("region_claims", "region = ? AND key = ?", (region, key),
                           _LOCAL_SERIAL, _LOCAL_SERIAL)

    def _claim_row(self, key: str, *, write: bool = False) -> Claim:
        place = self._claim_place(key, write=write)
        rows = self._run(f"SELECT * FROM {place.table} WHERE {place.where}", place.keys,
                         consistency=place.read)
        if not rows:
            raise NotFound(f"no claim {key!r}")
        row = rows[0]
        return Claim(key, row["capacity"], row["used"], row["generation"],
                     dict(row["holders"] or {}))

    @_retry_transient
    def define_claim(self, key: str, capacity: int) -> Claim:
        place = self._claim_place(key, write=True)
        columns = ", ".join(("region", "key")[-len(place.keys):])
        marks = ", ".join("?" * len(place.keys))
        for _ in range(20):
            try:
                current = self._claim_row(key, write=True)
            except NotFound:
                statement = self._prepare(
                    f"INSERT INTO {place.table} ({columns}, capacity, used, generation, holders)"
                    f" VALUES ({marks}, ?, 0, 1, {{}}) IF NOT EXISTS"
                ).bind((*place.keys, capacity))
                claim = Claim(key, capacity, 0, 1, {})
            else:
                claim = Claim(key, capacity, current.used, current.generation + 1,
                              current.holders)
                statement = self._prepare(
                    f"UPDATE {place.table} SET capacity = ?, generation = ? WHERE {place.where}"
                    " IF generation = ?"
                ).bind((capacity, claim.generation, *place.keys, current.generation))

            def applied(claim: Claim = claim) -> bool:
                now = self._claim_row(key, write=True)
                return now.generation == claim.generation and now.capacity == capacity

            if self._lwt_resolved(statement, place.serial, applied)["[applied]"]:
                return claim
        raise Unavailable(f"claim {key} kept changing while being defined")

    def get_claim(self, key: str) -> Claim:
        return self._claim_row(key)

    @_retry_transient
    def claim(self, key: str, holder: str, amount: int, expected_generation: int) -> Claim:
        if amount <= 0:
            raise ValueError("a claim needs a positive amount")
        place = self._claim_place(key, write=True)
        current = self._claim_row(key, write=True)
        check_claim(current, holder, amount, expected_generation)
        claim = Claim(key, current.capacity, current.used + amount, current.generation + 1,
                      {**current.holders, holder: amount})
        statement = self._prepare(
            f"UPDATE {place.table} SET used = ?, generation = ?, holders[?] = ?"
            f" WHERE {place.where} IF generation = ?"
        ).bind((claim.used, claim.generation, holder, amount, *place.keys, expected_generation))

        def applied() -> bool:
            now = self._claim_row(key, write=True)
            return now.holders.get(holder) == amount and now.generation >= claim.generation

        if not self._lwt_resolved(statement, place.serial, applied)["[applied]"]:
            raise ConcurrencyConflict(f"claim {key} moved past generation {expected_generation}")
        return claim

    @_retry_transient
    def release_claim(self, key: str, holder: str, expected_generation: int) -> Claim:
        place = self._claim_place(key, write=True)
        current = self._claim_row(key, write=True)
        if not check_release(current, holder, expected_generation):
            return current
        holders = dict(current.holders)
        amount = holders.pop(holder)
        claim = Claim(key, current.capacity, current.used - amount, current.generation + 1,
                      holders)
        statement = self._prepare(
            f"UPDATE {place.table} SET used = ?, generation = ?, holders = holders - ?"
            f" WHERE {place.where} IF generation = ?"
        ).bind((claim.used, claim.generation, {holder}, *place.keys, expected_generation))

        def applied() -> bool:
            now = self._claim_row(key, write=True)
            return holder not in now.holders and now.generation >= claim.generation

        if not self._lwt_resolved(statement, place.serial, applied)["[applied]"]:
            raise ConcurrencyConflict(f"claim {key} moved past generation {expected_generation}")
        return claim

    # -- names ----------------------------------------------------------------------------

    @_retry_transient
    def reserve_name(self, project_id: str, kind: str, name: str, owner_id: str) -> None:
        statement = self._prepare(
            "INSERT INTO names (project_id, kind, name, owner_id) VALUES (?, ?, ?, ?)"
            " IF NOT EXISTS"
        ).bind((project_id, kind, name, owner_id))

        def applied() -> bool:
            return self.name_owner(project_id, kind, name) == owner_id

        result = self._lwt_resolved(statement, self.config.ownership_serial, applied)
        if not result["[applied]"]:
            holder = result.get("owner_id") or self.name_owner(project_id, kind, name)
            if holder != owner_id:
                raise NameTaken(f"{kind} {name!r} already exists", owner_id=holder or "")

    @_retry_transient
    def release_name(self, project_id: str, kind: str, name: str, owner_id: str) -> None:
        statement = self._prepare(
            "DELETE FROM names WHERE project_id = ? AND kind = ? AND name = ? IF owner_id = ?"
        ).bind((project_id, kind, name, owner_id))
        self._lwt_resolved(statement, self.config.ownership_serial, lambda: True)

    def name_owner(self, project_id: str, kind: str, name: str) -> str | None:
        rows = self._run(
            "SELECT owner_id FROM names WHERE project_id = ? AND kind = ? AND name = ?",
            (project_id, kind, name), consistency=self.config.ownership_serial,
        )
        return rows[0]["owner_id"] if rows else None

    # -- data keys ------------------------------------------------------------------------

    @_retry_transient
    def create_data_key(self, owner: str, key_id: str, material: bytes) -> DataKey:
        statement = self._prepare(
            "INSERT INTO data_keys (owner, key_id, material, created_at) VALUES (?, ?, ?, ?)"
            " IF NOT EXISTS"
        ).bind((owner, key_id, material, time.time()))

        def applied() -> bool:
            found = self.get_data_key(owner)
            return found is not None and found.key_id == key_id

        result = self._lwt_resolved(statement, self.config.ownership_serial, applied)
        if result["[applied]"]:
            return DataKey(owner, key_id, material)
        if result.get("key_id") is not None and result.get("material") is not None:
            return DataKey(owner, result["key_id"], bytes(result["material"]))
        found = self.get_data_key(owner)
        if found is None:  # not applied (its reply lost), or another's deleted meanwhile
            raise Unavailable(f"the data key of {owner} was not made: try again")
        return found

    def get_data_key(self, owner: str) -> DataKey | None:
        # A SERIAL read: it sees the key an LWT just agreed on, on whichever replicas.
        rows = self._run("SELECT key_id, material FROM data_keys WHERE owner = ?", (owner,),
                         consistency=self.config.ownership_serial)
        if not rows:
            return None
        return DataKey(owner, rows[0]["key_id"], bytes(rows[0]["material"]))

    @_retry_transient
    def delete_data_key(self, owner: str) -> None:
        # An LWT, not a plain delete: ordered by Paxos after the LWT that made the key, so a
        # writer whose clock runs behind cannot write a tombstone older than the key.
        statement = self._prepare("DELETE FROM data_keys WHERE owner = ? IF EXISTS"
                                  ).bind((owner,))
        result = self._lwt_resolved(statement, self.config.ownership_serial,
                                    lambda: self.get_data_key(owner) is None)
        if not result["[applied]"] and self.get_data_key(owner) is not None:
            raise Unavailable(f"the data key of {owner} was not deleted: try again")

    # -- snapshots ------------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._run("INSERT INTO snapshots (stream_id, version, state) VALUES (?, ?, ?)",
                  (snapshot.stream_id, snapshot.version, serialization.dumps(snapshot.state)))

    def latest_snapshot(self, stream_id: str) -> Snapshot | None:
        rows = self._run(
            "SELECT version, state FROM snapshots WHERE stream_id = ? LIMIT 1", (stream_id,)
        )
        if not rows:
            return None
        return Snapshot(stream_id, rows[0]["version"], serialization.loads(rows[0]["state"]))
