"""CQL and SQLite schemas as versioned migrations."""

from sahara_es.schema.migrations import load_migrations, upgrade_cassandra, upgrade_sqlite

__all__ = ["load_migrations", "upgrade_cassandra", "upgrade_sqlite"]
