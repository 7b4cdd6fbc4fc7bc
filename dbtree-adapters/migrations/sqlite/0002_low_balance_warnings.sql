-- The low-balance warning of a user's current episode (one email per episode, issue 16):
-- a row exists from the billing pass that warned until the pass that ends the episode.
CREATE TABLE low_balance_warnings (
    user_id    TEXT NOT NULL PRIMARY KEY REFERENCES users (id),
    warned_at  INTEGER NOT NULL
) STRICT;
