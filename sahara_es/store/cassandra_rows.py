"""Read-model rows on Cassandra: each projection's rows, one partition per generation, with
the feed position each generation has applied (``projection_rows``, ``projection_checkpoints``,
``projection_live``). Mixed into ``CassandraStore``, whose plumbing (``_run``, ``_prepare``,
``_lwt``, ``_lwt_resolved``, ``_session``) it uses.

Fenced writes (``fence=lease``) are LWTs that check and set ``fence_epoch``: a static column
of the generation's rows partition (one value per partition and no row, so no scan can ever
return it), a column of the checkpoint row and of the live row. Each first tries the common
condition (``fence_epoch <= epoch``) and, when the value was never set (a ``<=`` on a null is
false), again with ``= null``. An unknown outcome is settled by a SERIAL read of what the write
would have left; a write found not in place is sent again, which is harmless: it is idempotent
and it carries the same epoch. See doc/projections.rst.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from sahara_es.store import serialization
from sahara_es.store.base import MAX_APPEND_BATCH, Lease, rows_by_key_range
from sahara_es.store.cassandra_errors import plain_errors
from sahara_es.store.errors import ConcurrencyConflict, LeaseLost, Unavailable

if TYPE_CHECKING:
    from sahara_es.store.config import CassandraConfig

ROWS_PAGE = 1000
FENCED_ATTEMPTS = 6
"""Tries of one fenced write: the first may meet an unset fence, later ones lost replies."""

Row = dict[str, Any]
Conditional = Callable[[Row | None], Any]
"""Builds the LWT from what the last try saw (``None``: nothing yet, assume values are set)."""


class ProjectionRows:
    _session: Session
    config: CassandraConfig

    if TYPE_CHECKING:  # provided by CassandraStore
        def _prepare(self, cql: str) -> PreparedStatement: ...

        def _run(self, cql: str, params: Sequence[Any] = (), *, serial: str | None = None,
                 consistency: str | None = None) -> list[dict[str, Any]]: ...

        def _lwt_resolved(self, statement: Any, serial: str,
                          applied: Callable[[], bool]) -> Row: ...

    # -- fenced writes --------------------------------------------------------------------

    def _conditional(self, what: str, statement: Conditional, current: Callable[[], Row | None],
                     in_place: Callable[[Row | None], bool],
                     refuse: Callable[[Row], None]) -> None:
        """Run ``statement`` until it applies or ``refuse`` raises on the values that made it
        fail. ``current`` reads those values at SERIAL and ``in_place`` says whether they are
        what the write leaves: after an unknown outcome that read is the truth."""
        seen: Row | None = None
        for _ in range(FENCED_ATTEMPTS):
            read: list[Row | None] = []

            def applied(read: list[Row | None] = read) -> bool:
                read[:] = [current()]
                return in_place(read[0])

            result = self._lwt_resolved(statement(seen), self.config.ownership_serial, applied)
            if result["[applied]"]:
                return
            seen = (read[0] or {}) if read else result
            refuse(seen)
        raise Unavailable(f"{what}: could not be written, its fence kept changing")

    @staticmethod
    def _refuse_older(what: str, lease: Lease) -> Callable[[Row], None]:
        def refuse(row: Row) -> None:
            epoch = row.get("fence_epoch")
            if epoch is not None and epoch > lease.epoch:
                raise LeaseLost(f"{what} is fenced by epoch {epoch} > {lease.epoch}")
        return refuse

    @staticmethod
    def _fence_condition(seen: Row | None) -> str:
        if seen is not None and seen.get("fence_epoch") is None:
            return "fence_epoch = null"
        return "fence_epoch <= ?"

    # -- rows -----------------------------------------------------------------------------

    def put_rows(self, projection: str, generation: int,
                 rows: Mapping[str, dict[str, Any] | None], *,
                 fence: Lease | None = None) -> None:
        upsert = self._prepare("INSERT INTO projection_rows (projection, generation, key, doc)"
                               " VALUES (?, ?, ?, ?)")
        delete = self._prepare("DELETE FROM projection_rows"
                               " WHERE projection = ? AND generation = ? AND key = ?")
        items = [(key, None if doc is None else serialization.dumps(doc))
                 for key, doc in rows.items()]
        if not items and fence is not None:  # the fence alone: a new owner's first write

            def fence_only(condition: BoundStatement | None) -> BatchStatement:
                statement = BatchStatement(batch_type=BatchType.UNLOGGED)
                if condition is not None:
                    statement.add(condition)
                return statement

            self._put_fenced(projection, generation, {}, fence, fence_only)
            return
        for start in range(0, len(items), MAX_APPEND_BATCH):
            chunk = items[start:start + MAX_APPEND_BATCH]

            def batch(condition: BoundStatement | None, chunk: list[tuple[str, str | None]]
                      = chunk) -> BatchStatement:
                # One partition per generation: an unlogged batch is one mutation, not a
                # fan-out; with the fence's condition it is one LWT.
                statement = BatchStatement(batch_type=BatchType.UNLOGGED)
                if condition is not None:
                    statement.add(condition)
                for key, doc in chunk:
                    if doc is None:
                        statement.add(delete, (projection, generation, key))
                    else:
                        statement.add(upsert, (projection, generation, key, doc))
                return statement

            if fence is None:
                with plain_errors():
                    self._session.execute(batch(None))
            else:
                self._put_fenced(projection, generation, dict(chunk), fence, batch)

    def _put_fenced(self, projection: str, generation: int, docs: dict[str, str | None],
                    lease: Lease,
                    batch: Callable[[BoundStatement | None], BatchStatement]) -> None:
        what = f"projection {projection} generation {generation}"

        def statement(seen: Row | None) -> BatchStatement:
            condition = self._fence_condition(seen)
            fenced = self._prepare(
                "UPDATE projection_rows SET fence_epoch = ? WHERE projection = ?"
                f" AND generation = ? IF {condition}")
            params = (lease.epoch, projection, generation)
            return batch(fenced.bind(params + ((lease.epoch,) if "?" in condition else ())))

        def current() -> Row | None:
            serial = self.config.ownership_serial
            head = self._run("SELECT fence_epoch FROM projection_rows"
                             " WHERE projection = ? AND generation = ? LIMIT 1",
                             (projection, generation), consistency=serial)
            found = self._run("SELECT key, doc FROM projection_rows"
                              " WHERE projection = ? AND generation = ? AND key IN ?",
                              (projection, generation, list(docs)),
                              consistency=serial) if docs else []
            return {"fence_epoch": head[0]["fence_epoch"] if head else None,
                    "docs": {row["key"]: row["doc"] for row in found}}

        def in_place(row: Row | None) -> bool:
            return bool(row and row["fence_epoch"] == lease.epoch and row["docs"] == {
                key: doc for key, doc in docs.items() if doc is not None})

        self._conditional(what, statement, current, in_place, self._refuse_older(what, lease))

    def get_row(self, projection: str, generation: int, key: str) -> dict[str, Any] | None:
        rows = self._run("SELECT doc FROM projection_rows"
                         " WHERE projection = ? AND generation = ? AND key = ?",
                         (projection, generation, key))
        return serialization.loads(rows[0]["doc"]) if rows else None

    def scan_rows(self, projection: str, generation: int, *,
                  prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        # Every read names a key range: a partition holding only its fence (the static
        # column) then returns no row at all.
        def fetch(condition: str, params: tuple[str, ...], limit: int) -> list[tuple[str, str]]:
            return [(row["key"], row["doc"]) for row in self._run(
                "SELECT key, doc FROM projection_rows WHERE projection = ? AND generation = ?"
                f" AND {condition} LIMIT ?", (projection, generation, *params, limit))]

        for key, doc in rows_by_key_range(fetch, prefix, ROWS_PAGE):
            yield key, serialization.loads(doc)

    def drop_rows(self, projection: str, generation: int) -> None:
        self._run("DELETE FROM projection_rows WHERE projection = ? AND generation = ?",
                  (projection, generation))
        self._run("DELETE FROM projection_checkpoints WHERE projection = ? AND generation = ?",
                  (projection, generation))

    # -- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, projection: str, generation: int, position: str, *,
                        fence: Lease | None = None) -> None:
        if fence is None:
            self._run("INSERT INTO projection_checkpoints (projection, generation, position)"
                      " VALUES (?, ?, ?)", (projection, generation, position))
            return
        lease = fence
        what = f"the checkpoint of projection {projection} generation {generation}"

        def statement(seen: Row | None) -> BoundStatement:
            condition = self._fence_condition(seen)
            params = (position, lease.epoch, projection, generation)
            return self._prepare(
                "UPDATE projection_checkpoints SET position = ?, fence_epoch = ?"
                f" WHERE projection = ? AND generation = ? IF {condition}"
            ).bind(params + ((lease.epoch,) if "?" in condition else ()))

        def current() -> Row | None:
            rows = self._run("SELECT position, fence_epoch FROM projection_checkpoints"
                             " WHERE projection = ? AND generation = ?",
                             (projection, generation), consistency=self.config.ownership_serial)
            return rows[0] if rows else None

        def in_place(row: Row | None) -> bool:
            return bool(row and row["position"] == position
                        and row["fence_epoch"] == lease.epoch)

        self._conditional(what, statement, current, in_place, self._refuse_older(what, lease))

    def checkpoint(self, projection: str, generation: int) -> str | None:
        rows = self._run("SELECT position FROM projection_checkpoints"
                         " WHERE projection = ? AND generation = ?", (projection, generation))
        return str(rows[0]["position"]) if rows and rows[0]["position"] is not None else None

    # -- the live generation --------------------------------------------------------------

    def set_live_generation(self, projection: str, generation: int, *,
                            fence: Lease | None = None) -> None:
        """An LWT even unfenced: the live generation only moves forward."""
        what = f"the live generation of projection {projection}"

        def statement(seen: Row | None) -> BoundStatement:
            unset = seen is not None and seen.get("generation") is None
            conditions = ["generation = null" if unset else "generation <= ?"]
            params: list[Any] = [generation]
            if fence is not None:
                conditions.append(self._fence_condition(seen))
                params.append(fence.epoch)
            bound = [generation] if not unset else []
            if fence is not None and "?" in conditions[-1]:
                bound.append(fence.epoch)
            return self._prepare(
                f"UPDATE projection_live SET generation = ?{', fence_epoch = ?' if fence else ''}"
                f" WHERE projection = ? IF {' AND '.join(conditions)}"
            ).bind((*params, projection, *bound))

        def current() -> Row | None:
            rows = self._run("SELECT generation, fence_epoch FROM projection_live"
                             " WHERE projection = ?", (projection,),
                             consistency=self.config.ownership_serial)
            return rows[0] if rows else None

        def in_place(row: Row | None) -> bool:
            return bool(row and row["generation"] == generation
                        and (fence is None or row["fence_epoch"] == fence.epoch))

        def refuse(row: Row) -> None:
            if fence is not None:
                self._refuse_older(what, fence)(row)
            live = row.get("generation")
            if live is not None and live > generation:
                raise ConcurrencyConflict(f"{what} is {live}, newer than {generation}")

        self._conditional(what, statement, current, in_place, refuse)

    def live_generation(self, projection: str) -> int | None:
        rows = self._run("SELECT generation FROM projection_live WHERE projection = ?",
                         (projection,))
        return int(rows[0]["generation"]) if rows and rows[0]["generation"] is not None \
            else None
