-- Events the persister found numbered like a stored event but different
-- from it: Redis came back behind Postgres and a write reused a sequence
-- number before anything rebuilt the canvas. They were acked to a client,
-- so they are kept here (never dropped), for the operator to inspect and
-- replay (docs/OPERATIONS.md, "Diverged events").
CREATE TABLE diverged_events (
    canvas_id    text        NOT NULL,
    seq          bigint      NOT NULL,
    epoch        text        NOT NULL,
    kind         text        NOT NULL,
    author_id    text,
    ingest_us    bigint      NOT NULL,
    payload      bytea       NOT NULL,
    -- The epoch of the stored event it collided with.
    stored_epoch text        NOT NULL,
    found_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (canvas_id, seq, epoch)
);
