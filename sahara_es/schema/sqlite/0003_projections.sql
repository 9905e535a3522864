-- Read models: each projection's rows, per generation (a rebuild writes a fresh generation,
-- then makes it live), with the feed position each generation has applied.
CREATE TABLE IF NOT EXISTS projection_rows (
    projection TEXT NOT NULL,
    generation INTEGER NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (projection, generation, key)
);

CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT NOT NULL,
    generation INTEGER NOT NULL,
    position TEXT NOT NULL,
    PRIMARY KEY (projection, generation)
);

CREATE TABLE IF NOT EXISTS projection_live (
    projection TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
);
