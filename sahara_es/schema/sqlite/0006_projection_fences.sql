-- Fenced projection writes (doc/projections.rst): the newest lease epoch that wrote each
-- generation's rows, each checkpoint, and each projection's live generation. Fenced writes
-- check and set it in the transaction that writes; an older epoch is refused.
CREATE TABLE IF NOT EXISTS projection_fences (
    projection TEXT NOT NULL,
    generation INTEGER NOT NULL,
    fence_epoch INTEGER NOT NULL,
    PRIMARY KEY (projection, generation)
);

ALTER TABLE projection_checkpoints ADD COLUMN fence_epoch INTEGER;

ALTER TABLE projection_live ADD COLUMN fence_epoch INTEGER;
