-- Data keys (doc/security.rst, "Secrets"): one per resource whose secrets are sealed, kept
-- here and not in the events, which are never deleted, so that deleting the row makes what
-- the key sealed unreadable everywhere (crypto-shredding).
CREATE TABLE IF NOT EXISTS data_keys (
    owner TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    material BLOB NOT NULL,
    created_at REAL NOT NULL
);
