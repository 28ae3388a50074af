-- The canvas catalogue: every canvas's size and palette. Colours on the
-- wire are indexes into the palette.
CREATE TABLE canvases (
    id         text        PRIMARY KEY,
    width      integer     NOT NULL CHECK (width BETWEEN 1 AND 4096),
    height     integer     NOT NULL CHECK (height BETWEEN 1 AND 4096),
    -- "#rrggbb" entries, 2 to 256 of them.
    palette    text[]      NOT NULL CHECK (cardinality(palette) BETWEEN 2 AND 256),
    created_at timestamptz NOT NULL DEFAULT now()
);
