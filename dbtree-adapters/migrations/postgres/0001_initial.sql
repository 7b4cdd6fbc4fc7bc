-- dbtree schema, PostgreSQL. Forward-only: never edit a released migration; add a new one.
-- Every rule that must hold under concurrency is also a constraint here.

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text,                       -- NULL once the account is deleted
    balance          bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    earned_total     bigint NOT NULL DEFAULT 0 CHECK (earned_total >= 0),
    spent_total      bigint NOT NULL DEFAULT 0 CHECK (spent_total >= 0),
    last_harvest_at  timestamptz,
    streak_days      integer NOT NULL DEFAULT 0 CHECK (streak_days >= 0),
    streak_last_day  date,
    created_at       timestamptz NOT NULL,
    deleted_at       timestamptz,
    CONSTRAINT users_email_iff_live CHECK ((email IS NULL) = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX users_live_email ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE ledger_entries (
    seq              bigserial PRIMARY KEY,
    id               uuid NOT NULL UNIQUE,
    user_id          uuid NOT NULL REFERENCES users (id),
    kind             text NOT NULL CHECK (kind IN ('welcome_bonus', 'harvest', 'streak_bonus',
                         'instance_create', 'instance_hourly', 'instance_refund', 'admin_grant')),
    delta            bigint NOT NULL CHECK (delta <> 0),
    balance_after    bigint NOT NULL CHECK (balance_after >= 0),
    idempotency_key  text NOT NULL UNIQUE,
    instance_id      uuid,
    created_at       timestamptz NOT NULL,
    CONSTRAINT ledger_sign_matches_kind CHECK (
        (kind IN ('instance_create', 'instance_hourly')) = (delta < 0))
);
CREATE INDEX ledger_entries_user ON ledger_entries (user_id, seq DESC);
CREATE INDEX ledger_entries_instance ON ledger_entries (user_id, instance_id, seq DESC)
    WHERE instance_id IS NOT NULL;
CREATE INDEX ledger_entries_harvest_day ON ledger_entries (user_id, created_at)
    WHERE kind IN ('harvest', 'streak_bonus');

-- Ledger entries are immutable: no UPDATE, no DELETE, ever.
CREATE FUNCTION ledger_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_immutable();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_immutable();

CREATE TABLE sign_in_codes (
    id               bigserial PRIMARY KEY,
    email            text NOT NULL,
    code_hash        bytea NOT NULL CHECK (length(code_hash) = 32),
    issued_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    wrong_attempts   integer NOT NULL DEFAULT 0 CHECK (wrong_attempts >= 0),
    used             boolean NOT NULL DEFAULT false
);
CREATE INDEX sign_in_codes_email ON sign_in_codes (email, issued_at DESC);

CREATE TABLE sessions (
    token_hash       bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id          uuid NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE quizzes (
    id                  bigserial PRIMARY KEY,
    category            text NOT NULL CHECK (category IN ('basics', 'sql', 'design', 'performance', 'cloud')),
    difficulty          text NOT NULL CHECK (difficulty IN ('easy', 'normal', 'hard')),
    question            text NOT NULL UNIQUE,
    options             text[] NOT NULL CHECK (cardinality(options) BETWEEN 2 AND 6),
    correct_option      smallint NOT NULL,
    time_limit_seconds  integer NOT NULL CHECK (time_limit_seconds BETWEEN 10 AND 30),
    explanation         text NOT NULL DEFAULT '',
    uses                bigint NOT NULL DEFAULT 0 CHECK (uses >= 0),
    retired             boolean NOT NULL DEFAULT false,
    CONSTRAINT quizzes_correct_option_exists CHECK (
        correct_option >= 0 AND correct_option < cardinality(options))
);

CREATE TABLE lemons (
    position         smallint PRIMARY KEY CHECK (position BETWEEN 0 AND 9),
    quiz_id          bigint NOT NULL REFERENCES quizzes (id),
    cycle            bigint NOT NULL DEFAULT 0 CHECK (cycle >= 0),
    ripe             boolean NOT NULL,
    harvested_at     timestamptz,
    regrows_at       timestamptz,
    harvested_by     uuid REFERENCES users (id),
    CONSTRAINT lemons_regrowing_has_times CHECK (
        ripe OR (harvested_at IS NOT NULL AND regrows_at IS NOT NULL))
);

CREATE TABLE quiz_attempts (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id),
    position         smallint NOT NULL CHECK (position BETWEEN 0 AND 9),
    lemon_cycle      bigint NOT NULL,
    quiz_id          bigint NOT NULL REFERENCES quizzes (id),
    started_at       timestamptz NOT NULL,
    time_limit_ms    bigint NOT NULL CHECK (time_limit_ms > 0),
    answer_option    smallint,
    answer_correct   boolean,
    answer_on_time   boolean,
    answered_at      timestamptz,
    challenge        jsonb,
    harvest          jsonb NOT NULL,
    CONSTRAINT quiz_attempts_answer_complete CHECK (
        (answer_option IS NULL) = (answered_at IS NULL)
        AND (answer_option IS NULL) = (answer_correct IS NULL)
        AND (answer_option IS NULL) = (answer_on_time IS NULL))
);
CREATE INDEX quiz_attempts_correct_day ON quiz_attempts (answered_at)
    WHERE answer_correct AND answer_on_time;

CREATE TABLE instances (
    id                uuid PRIMARY KEY,
    owner_id          uuid NOT NULL REFERENCES users (id),
    name              text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{1,38})[a-z0-9]$'),
    engine            text NOT NULL CHECK (engine IN ('postgresql', 'redis', 'mongodb')),
    size              text CHECK (size IN ('tiny', 'small', 'medium', 'large')),
    cpu_milli         integer NOT NULL CHECK (cpu_milli > 0),
    memory_mib        integer NOT NULL CHECK (memory_mib > 0),
    disk_gib          integer NOT NULL CHECK (disk_gib > 0),
    creation_cost     bigint NOT NULL CHECK (creation_cost >= 0),
    hourly_cost       bigint NOT NULL CHECK (hourly_cost >= 0),
    status            text NOT NULL CHECK (status IN ('provisioning', 'running', 'stopped',
                          'paused', 'error', 'deleting', 'deleted')),
    status_reason     text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    paused_at         timestamptz,
    last_billed_hour  bigint,
    CONSTRAINT instances_paused_has_time CHECK ((status = 'paused') = (paused_at IS NOT NULL))
);
-- A name is unique among an owner's live instances, enforced by the database.
CREATE UNIQUE INDEX instances_live_name ON instances (owner_id, name)
    WHERE status IN ('provisioning', 'running', 'stopped', 'paused');
CREATE INDEX instances_owner ON instances (owner_id, created_at DESC);
CREATE INDEX instances_status ON instances (status) WHERE status <> 'deleted';

CREATE TABLE node_ports (
    port             integer PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),
    instance_id      uuid NOT NULL UNIQUE,
    reserved_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE support_inquiries (
    id               bigserial PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id),
    category         text NOT NULL CHECK (category IN ('bug', 'billing', 'feature', 'other')),
    subject          text NOT NULL CHECK (length(subject) BETWEEN 1 AND 480),
    message          text NOT NULL CHECK (length(message) BETWEEN 1 AND 16000),
    created_at       timestamptz NOT NULL
);
