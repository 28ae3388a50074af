-- Durable canvas events, one row per (canvas, sequence number). Replays of
-- the same event are harmless: writers insert with ON CONFLICT DO NOTHING.
CREATE TABLE events (
    canvas_id    text        NOT NULL,
    seq          bigint      NOT NULL,
    epoch        text        NOT NULL,
    kind         text        NOT NULL,
    author_id    text,
    ingest_us    bigint      NOT NULL,
    -- The bus frame as the gateway published it: MessagePack header,
    -- sequence number and event (see shared/src/busframe.rs).
    payload      bytea       NOT NULL,
    persisted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (canvas_id, seq)
);

-- Periodic canvas state, so a canvas can be rebuilt without replaying all
-- of its history: the packed cells as Redis holds them, and the sequence
-- number they include.
CREATE TABLE canvas_snapshots (
    canvas_id text        PRIMARY KEY,
    seq       bigint      NOT NULL,
    epoch     text        NOT NULL,
    cells     bytea       NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);
