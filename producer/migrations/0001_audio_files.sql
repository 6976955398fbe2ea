-- The table of audio file references: one row per S3 object, with its processing state.
CREATE TABLE IF NOT EXISTS audio_files (
    id               BIGSERIAL PRIMARY KEY,
    bucket           TEXT NOT NULL,
    key              TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    size_bytes       BIGINT,
    duration_seconds DOUBLE PRECISION,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'queued', 'retrying', 'done', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    last_reason      TEXT,
    job_id           TEXT,
    result_bucket    TEXT,
    result_prefix    TEXT,
    speech_seconds   DOUBLE PRECISION,
    segment_count    INTEGER,
    queued_at        TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT audio_files_object UNIQUE (bucket, key)
);

-- enqueue selects by creation time among rows that still need work.
CREATE INDEX IF NOT EXISTS audio_files_created_todo
    ON audio_files (created_at, id) WHERE status IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS audio_files_status ON audio_files (status);

-- Every result event applied by the collector, once: (job_id, attempt, outcome) is unique, so
-- a redelivered event changes nothing. This is also the audit log of each file's attempts.
CREATE TABLE IF NOT EXISTS job_results (
    job_id         TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('done', 'failed', 'retrying')),
    file_id        BIGINT REFERENCES audio_files (id) ON DELETE CASCADE,
    bucket         TEXT NOT NULL,
    key            TEXT NOT NULL,
    worker_id      TEXT NOT NULL,
    reason         TEXT,
    error          TEXT,
    result_bucket  TEXT,
    result_prefix  TEXT,
    speech_seconds DOUBLE PRECISION,
    segment_count  INTEGER,
    finished_at    TIMESTAMPTZ NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt, outcome)
);
CREATE INDEX IF NOT EXISTS job_results_file ON job_results (file_id);

-- Every status change is announced on channel 'vadflow_files' (payload: schema, id, status), so
-- dashboards and tests can wait for progress instead of polling.
CREATE OR REPLACE FUNCTION notify_audio_file_status() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('vadflow_files', json_build_object(
        'schema', TG_TABLE_SCHEMA, 'id', NEW.id, 'status', NEW.status)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE TRIGGER audio_files_status_notify
    AFTER UPDATE OF status ON audio_files
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notify_audio_file_status();
