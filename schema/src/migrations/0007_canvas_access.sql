-- Who may see a canvas: everyone with a role (public), users with a role
-- for it (members: the token's roles claim or a row of canvas_members),
-- or whoever the app's join hook allows (hook).
ALTER TABLE canvases ADD COLUMN visibility text NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'members', 'hook'));

-- Memberships, managed through the server API: a user's role on a canvas.
CREATE TABLE canvas_members (
    canvas_id  text        NOT NULL REFERENCES canvases (id),
    user_id    text        NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 128),
    role       text        NOT NULL CHECK (role IN ('none', 'spectator', 'player', 'gm')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (canvas_id, user_id)
);
