"""Versioned schema migrations for both stores, applied by ``sahara-es db upgrade``.

Migrations are files named ``NNNN_description.cql`` / ``.sql`` beside this module; each store
records the versions it applied, so an upgrade applies only the new ones, in order.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cassandra.cluster import Session


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations of ``dialect`` (``cql`` or ``sqlite``), oldest first."""
    found = []
    folder = resources.files("sahara_es.schema").joinpath(dialect)
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.(cql|sql)", entry.name)
        if not match:
            continue
        body = _strip_comments(entry.read_text())
        statements = [s.strip() for s in body.split(";") if s.strip()]
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    return sorted(found, key=lambda m: m.version)


def replication_cql(replication: dict[str, Any]) -> str:
    """``{'class': 'SimpleStrategy', 'replication_factor': 1}`` or a per-datacenter map."""
    parts = ", ".join(f"'{k}': {v!r}" if not isinstance(v, str) else f"'{k}': '{v}'"
                      for k, v in replication.items())
    return "{" + parts + "}"


def upgrade_cassandra(session: Session, keyspace: str, replication: dict[str, Any]) -> list[int]:
    """Create the keyspace if needed and apply pending migrations; return the versions applied."""
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]{0,47}", keyspace):
        raise ValueError(f"invalid keyspace name {keyspace!r}")
    replicas = replication_cql(replication)
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replicas}")
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations "
        "(version int PRIMARY KEY, name text, applied_at double)"
    )
    applied = {row["version"] for row in session.execute(
        f"SELECT version FROM {keyspace}.schema_migrations"
    )}
    session.set_keyspace(keyspace)
    done = []
    for migration in load_migrations("cql"):
        if migration.version in applied:
            continue
        for statement in migration.statements:
            _execute_again_safely(session, statement)
        session.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.name, time.time()),
        )
        done.append(migration.version)
    if done:
        session.cluster.control_connection.wait_for_schema_agreement()
        _wait_for_indexes(session, keyspace)
    return done


def _execute_again_safely(session: Session, statement: str) -> None:
    """Run a migration statement; one that an interrupted upgrade applied already (CQL has no
    ``ADD … IF NOT EXISTS`` for columns) is passed over."""
    from cassandra import InvalidRequest

    try:
        session.execute(statement, timeout=60)
    except InvalidRequest as error:
        if not (statement.upper().startswith("ALTER TABLE") and "already exists" in str(error)):
            raise


def _wait_for_indexes(session: Session, keyspace: str, timeout: float = 600) -> None:
    """Storage-attached indexes answer queries only once built (over the rows a table held
    when the index was made): wait for this node to have built the keyspace's."""
    deadline = time.monotonic() + timeout
    while True:
        building = [row["index_name"] for row in session.execute(
            "SELECT keyspace_name, index_name, is_queryable FROM system_views.sai_column_indexes")
            if row["keyspace_name"] == keyspace and not row["is_queryable"]]
        if not building:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"indexes {', '.join(building)} of {keyspace} still building")
        time.sleep(0.2)


def upgrade_sqlite(conn: sqlite3.Connection) -> list[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT, applied_at REAL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    done = []
    for migration in load_migrations("sqlite"):
        if migration.version in applied:
            continue
        with conn:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        done.append(migration.version)
    return done
