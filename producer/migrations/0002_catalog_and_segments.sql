-- The catalog's own id of a file (`register --sql`'s external_id column), kept on the row and
-- carried in jobs and result events.
ALTER TABLE audio_files ADD COLUMN IF NOT EXISTS external_id TEXT;
CREATE INDEX IF NOT EXISTS audio_files_external_id
    ON audio_files (external_id) WHERE external_id IS NOT NULL;

-- The speech segments of done files, written by the collector with --store-segments in the
-- same transaction as the file's result. A file's segments are replaced as a whole, only when
-- its result is recorded (not on a redelivery), so each segment is there once.
CREATE TABLE IF NOT EXISTS speech_segments (
    file_id     BIGINT NOT NULL REFERENCES audio_files (id) ON DELETE CASCADE,
    -- 0-based position in the file's segments.json.
    seq         INTEGER NOT NULL,
    -- 1-based channel, only when channels were analysed separately.
    channel     SMALLINT,
    start_s     DOUBLE PRECISION NOT NULL,
    end_s       DOUBLE PRECISION NOT NULL,
    -- Per-segment scores, when the worker computed them (a JSON object).
    scores      JSONB,
    job_id      TEXT NOT NULL,
    PRIMARY KEY (file_id, seq),
    CHECK (end_s > start_s AND start_s >= 0)
);
