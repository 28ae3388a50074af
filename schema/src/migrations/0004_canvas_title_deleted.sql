-- Canvases get a title (shown in lobbies; changed with PATCH) and can be
-- deleted. A deleted canvas keeps its row, so its id is never reused: the
-- events and snapshots it left behind would otherwise be replayed into a
-- new canvas of the same id after a Redis loss.
ALTER TABLE canvases ADD COLUMN title text CHECK (char_length(title) BETWEEN 1 AND 200);
ALTER TABLE canvases ADD COLUMN deleted_at timestamptz;
