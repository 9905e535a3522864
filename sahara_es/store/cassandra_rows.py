"""Read-model rows on Cassandra: each projection's rows, one partition per generation, with
the feed position each generation has applied (``projection_rows``, ``projection_checkpoints``,
``projection_live``). Mixed into ``CassandraStore``, whose plumbing (``_run``, ``_prepare``,
``_session``) it uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cassandra import OperationTimedOut, WriteTimeout
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from sahara_es.store import serialization
from sahara_es.store.base import MAX_APPEND_BATCH, rows_by_key_range
from sahara_es.store.errors import Unavailable

ROWS_PAGE = 1000


class ProjectionRows:
    _session: Session
    _NOT_ATTEMPTED: tuple[type[Exception], ...]

    if TYPE_CHECKING:  # provided by CassandraStore
        def _prepare(self, cql: str) -> PreparedStatement: ...

        def _run(self, cql: str, params: Sequence[Any] = (), *, serial: str | None = None,
                 consistency: str | None = None) -> list[dict[str, Any]]: ...

    def put_rows(self, projection: str, generation: int,
                 rows: Mapping[str, dict[str, Any] | None]) -> None:
        upsert = self._prepare("INSERT INTO projection_rows (projection, generation, key, doc)"
                               " VALUES (?, ?, ?, ?)")
        delete = self._prepare("DELETE FROM projection_rows"
                               " WHERE projection = ? AND generation = ? AND key = ?")
        items = list(rows.items())
        for start in range(0, len(items), MAX_APPEND_BATCH):
            # One partition per generation: an unlogged batch is one mutation, not a fan-out.
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for key, doc in items[start:start + MAX_APPEND_BATCH]:
                if doc is None:
                    batch.add(delete, (projection, generation, key))
                else:
                    batch.add(upsert, (projection, generation, key, serialization.dumps(doc)))
            try:
                self._session.execute(batch)
            except (*self._NOT_ATTEMPTED, OperationTimedOut, WriteTimeout) as error:
                raise Unavailable(str(error)) from error

    def get_row(self, projection: str, generation: int, key: str) -> dict[str, Any] | None:
        rows = self._run("SELECT doc FROM projection_rows"
                         " WHERE projection = ? AND generation = ? AND key = ?",
                         (projection, generation, key))
        return serialization.loads(rows[0]["doc"]) if rows else None

    def scan_rows(self, projection: str, generation: int, *,
                  prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
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

    def save_checkpoint(self, projection: str, generation: int, position: str) -> None:
        self._run("INSERT INTO projection_checkpoints (projection, generation, position)"
                  " VALUES (?, ?, ?)", (projection, generation, position))

    def checkpoint(self, projection: str, generation: int) -> str | None:
        rows = self._run("SELECT position FROM projection_checkpoints"
                         " WHERE projection = ? AND generation = ?", (projection, generation))
        return str(rows[0]["position"]) if rows else None

    def set_live_generation(self, projection: str, generation: int) -> None:
        self._run("INSERT INTO projection_live (projection, generation) VALUES (?, ?)",
                  (projection, generation))

    def live_generation(self, projection: str) -> int | None:
        rows = self._run("SELECT generation FROM projection_live WHERE projection = ?",
                         (projection,))
        return int(rows[0]["generation"]) if rows else None
