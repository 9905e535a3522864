-- position is the global feed order: SQLite serialises writers, so positions become visible
-- in the order they were assigned and the feed has no gaps.
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY,
    category TEXT NOT NULL,
    version INTEGER NOT NULL,
    fence_epoch INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS streams_by_category ON streams (category, stream_id);

CREATE TABLE IF NOT EXISTS leases (
    resource TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    capacity INTEGER NOT NULL,
    used INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    holders TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS names (
    project_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    PRIMARY KEY (project_id, kind, name)
);

CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (stream_id, version)
);
