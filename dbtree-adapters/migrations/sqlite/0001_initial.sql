-- dbtree schema, SQLite. Forward-only: never edit a released migration; add a new one.
-- The same tables and constraints as the PostgreSQL schema, in SQLite's types (STRICT tables):
-- identifiers are hyphenated lower-case UUID text, times are INTEGER milliseconds since the Unix
-- epoch (UTC), dates are 'YYYY-MM-DD' text, booleans are 0/1, arrays and documents are JSON text.

CREATE TABLE users (
    id               TEXT NOT NULL PRIMARY KEY,
    email            TEXT,                       -- NULL once the account is deleted
    balance          INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    earned_total     INTEGER NOT NULL DEFAULT 0 CHECK (earned_total >= 0),
    spent_total      INTEGER NOT NULL DEFAULT 0 CHECK (spent_total >= 0),
    last_harvest_at  INTEGER,
    streak_days      INTEGER NOT NULL DEFAULT 0 CHECK (streak_days >= 0),
    streak_last_day  TEXT,
    created_at       INTEGER NOT NULL,
    deleted_at       INTEGER,
    CONSTRAINT users_email_iff_live CHECK ((email IS NULL) = (deleted_at IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX users_live_email ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE ledger_entries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL REFERENCES users (id),
    kind             TEXT NOT NULL CHECK (kind IN ('welcome_bonus', 'harvest', 'streak_bonus',
                         'instance_create', 'instance_hourly', 'instance_refund', 'admin_grant')),
    delta            INTEGER NOT NULL CHECK (delta <> 0),
    balance_after    INTEGER NOT NULL CHECK (balance_after >= 0),
    idempotency_key  TEXT NOT NULL UNIQUE,
    instance_id      TEXT,
    created_at       INTEGER NOT NULL,
    CONSTRAINT ledger_sign_matches_kind CHECK (
        (kind IN ('instance_create', 'instance_hourly')) = (delta < 0))
) STRICT;
CREATE INDEX ledger_entries_user ON ledger_entries (user_id, seq DESC);
CREATE INDEX ledger_entries_instance ON ledger_entries (user_id, instance_id, seq DESC)
    WHERE instance_id IS NOT NULL;
CREATE INDEX ledger_entries_harvest_day ON ledger_entries (user_id, created_at)
    WHERE kind IN ('harvest', 'streak_bonus');

-- Ledger entries are immutable: no UPDATE, no DELETE, ever.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are immutable');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are immutable');
END;

CREATE TABLE sign_in_codes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    email            TEXT NOT NULL,
    code_hash        BLOB NOT NULL CHECK (length(code_hash) = 32),
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    wrong_attempts   INTEGER NOT NULL DEFAULT 0 CHECK (wrong_attempts >= 0),
    used             INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
) STRICT;
CREATE INDEX sign_in_codes_email ON sign_in_codes (email, issued_at DESC);

CREATE TABLE sessions (
    token_hash       BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id          TEXT NOT NULL REFERENCES users (id),
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE quizzes (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    category            TEXT NOT NULL CHECK (category IN ('basics', 'sql', 'design', 'performance', 'cloud')),
    difficulty          TEXT NOT NULL CHECK (difficulty IN ('easy', 'normal', 'hard')),
    question            TEXT NOT NULL UNIQUE,
    options             TEXT NOT NULL CHECK (json_valid(options) AND json_type(options) = 'array'
                            AND json_array_length(options) BETWEEN 2 AND 6),
    correct_option      INTEGER NOT NULL,
    time_limit_seconds  INTEGER NOT NULL CHECK (time_limit_seconds BETWEEN 10 AND 30),
    explanation         TEXT NOT NULL DEFAULT '',
    uses                INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),
    retired             INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1)),
    CONSTRAINT quizzes_correct_option_exists CHECK (
        correct_option >= 0 AND correct_option < json_array_length(options))
) STRICT;

CREATE TABLE lemons (
    position         INTEGER NOT NULL PRIMARY KEY CHECK (position BETWEEN 0 AND 9),
    quiz_id          INTEGER NOT NULL REFERENCES quizzes (id),
    cycle            INTEGER NOT NULL DEFAULT 0 CHECK (cycle >= 0),
    ripe             INTEGER NOT NULL CHECK (ripe IN (0, 1)),
    harvested_at     INTEGER,
    regrows_at       INTEGER,
    harvested_by     TEXT REFERENCES users (id),
    CONSTRAINT lemons_regrowing_has_times CHECK (
        ripe OR (harvested_at IS NOT NULL AND regrows_at IS NOT NULL))
) STRICT;

CREATE TABLE quiz_attempts (
    id               TEXT NOT NULL PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    position         INTEGER NOT NULL CHECK (position BETWEEN 0 AND 9),
    lemon_cycle      INTEGER NOT NULL,
    quiz_id          INTEGER NOT NULL REFERENCES quizzes (id),
    started_at       INTEGER NOT NULL,
    time_limit_ms    INTEGER NOT NULL CHECK (time_limit_ms > 0),
    answer_option    INTEGER,
    answer_correct   INTEGER CHECK (answer_correct IN (0, 1)),
    answer_on_time   INTEGER CHECK (answer_on_time IN (0, 1)),
    answered_at      INTEGER,
    challenge        TEXT CHECK (challenge IS NULL OR json_valid(challenge)),
    harvest          TEXT NOT NULL CHECK (json_valid(harvest)),
    CONSTRAINT quiz_attempts_answer_complete CHECK (
        (answer_option IS NULL) = (answered_at IS NULL)
        AND (answer_option IS NULL) = (answer_correct IS NULL)
        AND (answer_option IS NULL) = (answer_on_time IS NULL))
) STRICT;
CREATE INDEX quiz_attempts_correct_day ON quiz_attempts (answered_at)
    WHERE answer_correct AND answer_on_time;

CREATE TABLE instances (
    id                TEXT NOT NULL PRIMARY KEY,
    owner_id          TEXT NOT NULL REFERENCES users (id),
    -- '^[a-z0-9]([-a-z0-9]{1,38})[a-z0-9]$' in GLOB terms
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 3 AND 40
                          AND name NOT GLOB '*[^-a-z0-9]*' AND name GLOB '[a-z0-9]*[a-z0-9]'),
    engine            TEXT NOT NULL CHECK (engine IN ('postgresql', 'redis', 'mongodb')),
    size              TEXT CHECK (size IN ('tiny', 'small', 'medium', 'large')),
    cpu_milli         INTEGER NOT NULL CHECK (cpu_milli > 0),
    memory_mib        INTEGER NOT NULL CHECK (memory_mib > 0),
    disk_gib          INTEGER NOT NULL CHECK (disk_gib > 0),
    creation_cost     INTEGER NOT NULL CHECK (creation_cost >= 0),
    hourly_cost       INTEGER NOT NULL CHECK (hourly_cost >= 0),
    status            TEXT NOT NULL CHECK (status IN ('provisioning', 'running', 'stopped',
                          'paused', 'error', 'deleting', 'deleted')),
    status_reason     TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    paused_at         INTEGER,
    last_billed_hour  INTEGER,
    CONSTRAINT instances_paused_has_time CHECK ((status = 'paused') = (paused_at IS NOT NULL))
) STRICT;
-- A name is unique among an owner's live instances, enforced by the database.
CREATE UNIQUE INDEX instances_live_name ON instances (owner_id, name)
    WHERE status IN ('provisioning', 'running', 'stopped', 'paused');
CREATE INDEX instances_owner ON instances (owner_id, created_at DESC);
CREATE INDEX instances_status ON instances (status) WHERE status <> 'deleted';

CREATE TABLE node_ports (
    port             INTEGER NOT NULL PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
    instance_id      TEXT NOT NULL UNIQUE,
    reserved_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
) STRICT;

CREATE TABLE support_inquiries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          TEXT NOT NULL REFERENCES users (id),
    category         TEXT NOT NULL CHECK (category IN ('bug', 'billing', 'feature', 'other')),
    subject          TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 480),
    message          TEXT NOT NULL CHECK (length(message) BETWEEN 1 AND 16000),
    created_at       INTEGER NOT NULL
) STRICT;
