-- Chat history is read newest first by `before` (GET /api/canvases/{id}/chat,
-- the `chat_history` request); on a busy canvas chat is a small share of the
-- events, so it gets its own index rather than a filtered scan of the key.
CREATE INDEX events_chat ON events (canvas_id, seq) WHERE kind = 'chat';
