-- Objects are not in the pixel snapshots: rebuilding a canvas after a Redis
-- loss replays every object event, read through this index rather than a
-- scan of all the canvas's events.
CREATE INDEX events_objects ON events (canvas_id, seq)
    WHERE kind IN ('object_created', 'object_updated', 'object_moved',
                   'object_deleted', 'object_liked', 'cleared');
