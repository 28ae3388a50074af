-- Events waiting to be sent to the app's webhook (EASEL_WEBHOOK_URL): the
-- persister adds the events of the kinds asked for in the same transaction
-- that stores them, and deletes them once the webhook took them (2xx), so
-- delivery is at least once. event_id ("<canvas>:<seq>") lets the receiver
-- drop a repeat.
CREATE TABLE webhook_outbox (
    id              bigserial   PRIMARY KEY,
    event_id        text        NOT NULL UNIQUE,
    canvas_id       text        NOT NULL,
    seq             bigint      NOT NULL,
    kind            text        NOT NULL,
    -- The bus frame, as in events.payload.
    payload         bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, id);
