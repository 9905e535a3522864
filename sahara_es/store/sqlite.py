"""The embedded store: one SQLite file, safe for several threads and processes on one machine.

Every write is one ``BEGIN IMMEDIATE`` transaction, so checks and writes are atomic exactly
as a Cassandra LWT makes them; WAL mode lets readers go on while a writer commits.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from sahara_es.events import NewEvent, RecordedEvent, category_of
from sahara_es.schema import upgrade_sqlite
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
    rows_by_key_range,
    wanted_by,
)
from sahara_es.store.errors import (
    ConcurrencyConflict,
    LeaseHeld,
    LeaseLost,
    NameTaken,
    NotFound,
    Unavailable,
)

_PAGE = 500
_EVENT_COLUMNS = (
    "position, stream_id, version, event_id, event_type, schema_version, data, metadata"
)

_retry_when_busy = retry(
    retry=retry_if_exception_type(Unavailable),
    stop=stop_after_attempt(5),
    wait=wait_random_exponential(multiplier=0.05, max=1.0),
    reraise=True,
)


def _position(n: int) -> str:
    return f"{n:020d}"


def _row_to_event(row: sqlite3.Row) -> RecordedEvent:
    return serialization.decode(
        stream_id=row["stream_id"],
        version=row["version"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        data=row["data"],
        metadata=row["metadata"],
        position=_position(row["position"]),
    )


def _private_file(path: Path) -> None:
    """Make the database file (and its folder, if new) the service user's alone.

    The file is created 0600 before SQLite opens it, because SQLite gives its ``-wal`` and
    ``-shm`` files the mode of the database file; a file found more open is narrowed.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077 and file.stat().st_uid == os.geteuid():
                file.chmod(0o600)


class SQLiteStore(Store):
    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        if self.path != ":memory:":
            _private_file(Path(self.path))

    # -- connections ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise Unavailable(f"sqlite store busy: {error}") from error
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def upgrade(self) -> list[int]:
        return upgrade_sqlite(self._conn())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def describe(self) -> dict[str, Any]:
        return {"backend": "sqlite", "path": self.path, "sqlite_version": sqlite3.sqlite_version}

    # -- events ---------------------------------------------------------------------------

    @_retry_when_busy
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
        with self._write() as conn:
            head = conn.execute(
                "SELECT version, fence_epoch FROM streams WHERE stream_id = ?", (stream_id,)
            ).fetchone()
            current = head["version"] if head else 0
            fence = head["fence_epoch"] if head else 0
            if lease is not None and fence > lease.epoch:
                raise LeaseLost(f"{stream_id} is fenced by epoch {fence} > {lease.epoch}")
            if current != expected_version:
                ids = [row["event_id"] for row in conn.execute(
                    "SELECT event_id FROM events WHERE stream_id = ? AND version > ?"
                    " AND version <= ? ORDER BY version",
                    (stream_id, expected_version, expected_version + len(events)))]
                if ids == [str(event.event_id) for event in events]:
                    return expected_version + len(events)  # this append, retried: it is done
                raise ConcurrencyConflict(
                    f"{stream_id} is at version {current}, not {expected_version}",
                    actual_version=current,
                )
            rows = []
            for offset, event in enumerate(events, start=1):
                data, metadata = serialization.encode(event)
                rows.append((stream_id, expected_version + offset, str(event.event_id),
                             event.type, event.schema_version, data, metadata))
            conn.executemany(
                "INSERT INTO events (stream_id, version, event_id, event_type, schema_version,"
                " data, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            new_version = expected_version + len(events)
            new_fence = max(fence, lease.epoch) if lease else fence
            conn.execute(
                "INSERT INTO streams (stream_id, category, version, fence_epoch)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET"
                " version = excluded.version, fence_epoch = excluded.fence_epoch",
                (stream_id, category_of(stream_id), new_version, new_fence),
            )
        return new_version

    def read(
        self, stream_id: str, from_version: int = 1, *, to_version: int | None = None
    ) -> Iterator[RecordedEvent]:
        upper = to_version if to_version is not None else 2**62
        next_version = max(from_version, 1)
        while next_version <= upper:
            rows = self._conn().execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version >= ?"
                " AND version <= ? ORDER BY version LIMIT ?",
                (stream_id, next_version, upper, _PAGE),
            ).fetchall()
            for row in rows:
                yield _row_to_event(row)
            if len(rows) < _PAGE:
                return
            next_version = rows[-1]["version"] + 1

    def stream_version(self, stream_id: str) -> int:
        row = self._conn().execute(
            "SELECT version FROM streams WHERE stream_id = ?", (stream_id,)
        ).fetchone()
        return int(row["version"]) if row else 0

    def list_streams(self, category: str) -> Iterator[str]:
        after = ""
        while True:
            rows = self._conn().execute(
                "SELECT stream_id FROM streams WHERE category = ? AND stream_id > ?"
                " ORDER BY stream_id LIMIT ?",
                (category, after, _PAGE),
            ).fetchall()
            for row in rows:
                yield row["stream_id"]
            if len(rows) < _PAGE:
                return
            after = rows[-1]["stream_id"]

    def read_feed_page(self, after: str | None = None, *, limit: int = 500,
                       categories: frozenset[str] | None = None) -> FeedPage:
        start = int(after) if after else 0
        rows = self._conn().execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (start, limit),
        ).fetchall()
        wanted = wanted_by(categories)
        return FeedPage((_row_to_event(row) for row in rows if wanted(row["stream_id"])),
                        position=_position(rows[-1]["position"]) if rows else after,
                        scanned=len(rows))

    @_retry_when_busy
    def fence(self, stream_id: str, lease: Lease) -> None:
        with self._write() as conn:
            head = conn.execute(
                "SELECT fence_epoch FROM streams WHERE stream_id = ?", (stream_id,)
            ).fetchone()
            if head is None:
                conn.execute(
                    "INSERT INTO streams (stream_id, category, version, fence_epoch)"
                    " VALUES (?, ?, 0, ?)",
                    (stream_id, category_of(stream_id), lease.epoch),
                )
            elif head["fence_epoch"] > lease.epoch:
                raise LeaseLost(f"{stream_id} is fenced by epoch {head['fence_epoch']}")
            else:
                conn.execute(
                    "UPDATE streams SET fence_epoch = ? WHERE stream_id = ?",
                    (lease.epoch, stream_id),
                )

    # -- leases ---------------------------------------------------------------------------

    @staticmethod
    def _lease(row: sqlite3.Row) -> Lease:
        return Lease(row["resource"], row["owner"], row["epoch"], row["expires_at"],
                     LeaseState(row["state"]))

    @_retry_when_busy
    def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        with self._write() as conn:
            now = time.time()
            row = conn.execute("SELECT * FROM leases WHERE resource = ?", (resource,)).fetchone()
            if row is None:
                lease = Lease(resource, owner, 1, now + ttl)
            else:
                held = self._lease(row)
                if not held.expired(now):
                    if held.owner != owner:
                        raise LeaseHeld(
                            f"{resource} is held by {held.owner} (epoch {held.epoch})",
                            owner=held.owner, expires_at=held.expires_at,
                        )
                    lease = Lease(resource, owner, held.epoch, now + ttl)
                else:
                    lease = Lease(resource, owner, held.epoch + 1, now + ttl)
            conn.execute(
                "INSERT OR REPLACE INTO leases (resource, owner, epoch, expires_at, state)"
                " VALUES (?, ?, ?, ?, ?)",
                (resource, owner, lease.epoch, lease.expires_at, LeaseState.HELD.value),
            )
        return lease

    @_retry_when_busy
    def offer_lease(self, resource: str) -> bool:
        with self._write() as conn:
            return conn.execute(
                "INSERT OR IGNORE INTO leases (resource, owner, epoch, expires_at, state)"
                " VALUES (?, '', 0, ?, ?)",
                (resource, time.time(), LeaseState.RELEASED.value)).rowcount == 1

    @_retry_when_busy
    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM leases WHERE resource = ?", (lease.resource,)
            ).fetchone()
            if (row is None or row["owner"] != lease.owner or row["epoch"] != lease.epoch
                    or row["state"] != LeaseState.HELD.value):
                raise LeaseLost(f"{lease.resource}: epoch {lease.epoch} of {lease.owner} is over")
            renewed = Lease(lease.resource, lease.owner, lease.epoch, time.time() + ttl)
            conn.execute(
                "UPDATE leases SET expires_at = ? WHERE resource = ?",
                (renewed.expires_at, lease.resource),
            )
        return renewed

    @_retry_when_busy
    def release_lease(self, lease: Lease) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE leases SET state = ?, expires_at = ?"
                " WHERE resource = ? AND owner = ? AND epoch = ?",
                (LeaseState.RELEASED.value, time.time(), lease.resource, lease.owner, lease.epoch),
            )

    def delete_lease(self, lease: Lease) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE resource = ? AND owner = ? AND epoch = ?",
                         (lease.resource, lease.owner, lease.epoch))

    def get_lease(self, resource: str) -> Lease | None:
        row = self._conn().execute(
            "SELECT * FROM leases WHERE resource = ?", (resource,)
        ).fetchone()
        return self._lease(row) if row else None

    def list_leases(self) -> Iterator[Lease]:
        for row in self._conn().execute("SELECT * FROM leases ORDER BY resource").fetchall():
            yield self._lease(row)

    # -- claims ---------------------------------------------------------------------------

    @staticmethod
    def _claim(row: sqlite3.Row) -> Claim:
        return Claim(row["key"], row["capacity"], row["used"], row["generation"],
                     serialization.loads(row["holders"]))

    def _claim_row(self, conn: sqlite3.Connection, key: str) -> Claim:
        row = conn.execute("SELECT * FROM claims WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise NotFound(f"no claim {key!r}")
        return self._claim(row)

    def _save_claim(self, conn: sqlite3.Connection, claim: Claim) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO claims (key, capacity, used, generation, holders)"
            " VALUES (?, ?, ?, ?, ?)",
            (claim.key, claim.capacity, claim.used, claim.generation,
             serialization.dumps(claim.holders)),
        )

    @_retry_when_busy
    def define_claim(self, key: str, capacity: int) -> Claim:
        claim_region(key)  # a region-local key is well formed; on one site every region is local
        with self._write() as conn:
            try:
                current = self._claim_row(conn, key)
                claim = Claim(key, capacity, current.used, current.generation + 1,
                              current.holders)
            except NotFound:
                claim = Claim(key, capacity, 0, 1, {})
            self._save_claim(conn, claim)
        return claim

    def get_claim(self, key: str) -> Claim:
        return self._claim_row(self._conn(), key)

    @_retry_when_busy
    def claim(self, key: str, holder: str, amount: int, expected_generation: int) -> Claim:
        if amount <= 0:
            raise ValueError("a claim needs a positive amount")
        with self._write() as conn:
            current = self._claim_row(conn, key)
            check_claim(current, holder, amount, expected_generation)
            claim = Claim(key, current.capacity, current.used + amount, current.generation + 1,
                          {**current.holders, holder: amount})
            self._save_claim(conn, claim)
        return claim

    @_retry_when_busy
    def release_claim(self, key: str, holder: str, expected_generation: int) -> Claim:
        with self._write() as conn:
            current = self._claim_row(conn, key)
            if not check_release(current, holder, expected_generation):
                return current
            holders = dict(current.holders)
            amount = holders.pop(holder)
            claim = Claim(key, current.capacity, current.used - amount, current.generation + 1,
                          holders)
            self._save_claim(conn, claim)
        return claim

    # -- names ----------------------------------------------------------------------------

    @_retry_when_busy
    def reserve_name(self, project_id: str, kind: str, name: str, owner_id: str) -> None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner_id FROM names WHERE project_id = ? AND kind = ? AND name = ?",
                (project_id, kind, name),
            ).fetchone()
            if row is not None:
                if row["owner_id"] != owner_id:
                    raise NameTaken(f"{kind} {name!r} already exists", owner_id=row["owner_id"])
                return
            conn.execute(
                "INSERT INTO names (project_id, kind, name, owner_id) VALUES (?, ?, ?, ?)",
                (project_id, kind, name, owner_id),
            )

    @_retry_when_busy
    def release_name(self, project_id: str, kind: str, name: str, owner_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM names WHERE project_id = ? AND kind = ? AND name = ?"
                " AND owner_id = ?",
                (project_id, kind, name, owner_id),
            )

    def name_owner(self, project_id: str, kind: str, name: str) -> str | None:
        row = self._conn().execute(
            "SELECT owner_id FROM names WHERE project_id = ? AND kind = ? AND name = ?",
            (project_id, kind, name),
        ).fetchone()
        return row["owner_id"] if row else None

    # -- data keys ------------------------------------------------------------------------

    @_retry_when_busy
    def create_data_key(self, owner: str, key_id: str, material: bytes) -> DataKey:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO data_keys (owner, key_id, material, created_at)"
                " VALUES (?, ?, ?, ?)", (owner, key_id, material, time.time()))
            row = conn.execute("SELECT key_id, material FROM data_keys WHERE owner = ?",
                               (owner,)).fetchone()
        return DataKey(owner, row["key_id"], bytes(row["material"]))

    def get_data_key(self, owner: str) -> DataKey | None:
        row = self._conn().execute(
            "SELECT key_id, material FROM data_keys WHERE owner = ?", (owner,)).fetchone()
        return DataKey(owner, row["key_id"], bytes(row["material"])) if row else None

    @_retry_when_busy
    def delete_data_key(self, owner: str) -> None:
        conn = self._conn()
        # The freed cell is overwritten with zeros, not left for a file reader to find; the
        # WAL frames holding older copies of the page are overwritten as the WAL is reused
        # after a checkpoint (a passive one here: a delete never waits for readers).
        conn.execute("PRAGMA secure_delete = ON")
        try:
            with self._write() as writing:
                writing.execute("DELETE FROM data_keys WHERE owner = ?", (owner,))
        finally:
            conn.execute("PRAGMA secure_delete = OFF")
        with contextlib.suppress(sqlite3.OperationalError):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- snapshots ------------------------------------------------------------------------

    @_retry_when_busy
    def save_snapshot(self, snapshot: Snapshot) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (stream_id, version, state) VALUES (?, ?, ?)",
                (snapshot.stream_id, snapshot.version, serialization.dumps(snapshot.state)),
            )

    def latest_snapshot(self, stream_id: str) -> Snapshot | None:
        row = self._conn().execute(
            "SELECT version, state FROM snapshots WHERE stream_id = ?"
            " ORDER BY version DESC LIMIT 1",
            (stream_id,),
        ).fetchone()
        if row is None:
            return None
        return Snapshot(stream_id, row["version"], serialization.loads(row["state"]))


    # -- projection rows ------------------------------------------------------------------
    # A fenced write checks and sets its fence in the transaction that writes: the check
    # and the write are one, as an LWT makes them on Cassandra.

    @staticmethod
    def _check_fence(what: str, current: int | None, fence: Lease) -> None:
        if current is not None and current > fence.epoch:
            raise LeaseLost(f"{what} is fenced by epoch {current} > {fence.epoch}")

    @_retry_when_busy
    def put_rows(self, projection: str, generation: int,
                 rows: Mapping[str, dict[str, Any] | None], *,
                 fence: Lease | None = None) -> None:
        with self._write() as conn:
            if fence is not None:
                row = conn.execute(
                    "SELECT fence_epoch FROM projection_fences"
                    " WHERE projection = ? AND generation = ?", (projection, generation),
                ).fetchone()
                self._check_fence(f"projection {projection} generation {generation}",
                                  row["fence_epoch"] if row else None, fence)
                conn.execute(
                    "INSERT OR REPLACE INTO projection_fences (projection, generation,"
                    " fence_epoch) VALUES (?, ?, ?)", (projection, generation, fence.epoch))
            conn.executemany(
                "INSERT OR REPLACE INTO projection_rows (projection, generation, key, doc)"
                " VALUES (?, ?, ?, ?)",
                [(projection, generation, key, serialization.dumps(doc))
                 for key, doc in rows.items() if doc is not None])
            conn.executemany(
                "DELETE FROM projection_rows WHERE projection = ? AND generation = ? AND key = ?",
                [(projection, generation, key) for key, doc in rows.items() if doc is None])

    def get_row(self, projection: str, generation: int, key: str) -> dict[str, Any] | None:
        row = self._conn().execute(
            "SELECT doc FROM projection_rows WHERE projection = ? AND generation = ? AND key = ?",
            (projection, generation, key),
        ).fetchone()
        return serialization.loads(row["doc"]) if row else None

    def scan_rows(self, projection: str, generation: int, *,
                  prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        def fetch(condition: str, params: tuple[str, ...], limit: int) -> list[tuple[str, str]]:
            return [(row["key"], row["doc"]) for row in self._conn().execute(
                "SELECT key, doc FROM projection_rows WHERE projection = ? AND generation = ?"
                f" AND {condition} ORDER BY key LIMIT ?",
                (projection, generation, *params, limit)).fetchall()]

        for key, doc in rows_by_key_range(fetch, prefix, _PAGE):
            yield key, serialization.loads(doc)

    @_retry_when_busy
    def drop_rows(self, projection: str, generation: int) -> None:
        with self._write() as conn:
            for table in ("projection_rows", "projection_checkpoints", "projection_fences"):
                conn.execute(f"DELETE FROM {table} WHERE projection = ? AND generation = ?",
                             (projection, generation))

    @_retry_when_busy
    def save_checkpoint(self, projection: str, generation: int, position: str, *,
                        fence: Lease | None = None) -> None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT fence_epoch FROM projection_checkpoints"
                " WHERE projection = ? AND generation = ?", (projection, generation),
            ).fetchone()
            epoch = row["fence_epoch"] if row else None
            if fence is not None:
                self._check_fence(f"the checkpoint of projection {projection} generation"
                                  f" {generation}", epoch, fence)
                epoch = fence.epoch
            conn.execute(
                "INSERT OR REPLACE INTO projection_checkpoints (projection, generation,"
                " position, fence_epoch) VALUES (?, ?, ?, ?)",
                (projection, generation, position, epoch))

    def checkpoint(self, projection: str, generation: int) -> str | None:
        row = self._conn().execute(
            "SELECT position FROM projection_checkpoints WHERE projection = ? AND generation = ?",
            (projection, generation),
        ).fetchone()
        return str(row["position"]) if row else None

    @_retry_when_busy
    def set_live_generation(self, projection: str, generation: int, *,
                            fence: Lease | None = None) -> None:
        what = f"the live generation of projection {projection}"
        with self._write() as conn:
            row = conn.execute(
                "SELECT generation, fence_epoch FROM projection_live WHERE projection = ?",
                (projection,),
            ).fetchone()
            epoch = row["fence_epoch"] if row else None
            if fence is not None:
                self._check_fence(what, epoch, fence)
                epoch = fence.epoch
            if row is not None and row["generation"] > generation:
                raise ConcurrencyConflict(f"{what} is {row['generation']},"
                                          f" newer than {generation}")
            conn.execute("INSERT OR REPLACE INTO projection_live (projection, generation,"
                         " fence_epoch) VALUES (?, ?, ?)", (projection, generation, epoch))

    def live_generation(self, projection: str) -> int | None:
        row = self._conn().execute(
            "SELECT generation FROM projection_live WHERE projection = ?", (projection,)
        ).fetchone()
        return int(row["generation"]) if row else None
