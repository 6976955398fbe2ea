//! Recording one result event: a `job_results` record, once, and the file's new state, in the
//! caller's transaction. Redelivered events and the dead-letter feed's copy of a failure the
//! worker reported add nothing.

use crate::state::FileStatus;
use anyhow::Context;
use sqlx::{PgConnection, PgPool};
use vadflow_common::wire::{Outcome, ResultEvent};

/// Whether a database error is about the data itself (SQLSTATE class 22, data exception, or 23,
/// integrity constraint violation), so that storing the same event again would fail again.
/// Everything else (connections, restarts, serialization, resources) is worth retrying.
pub fn is_permanent(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<sqlx::Error>())
        .any(|e| match e {
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
            sqlx::Error::Encode(_) | sqlx::Error::ColumnDecode { .. } => true,
            _ => false,
        })
}

/// Text for PostgreSQL, which cannot store NUL in text columns. Such a string never matches a
/// row (rows cannot hold it either), so the replacement loses nothing.
fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Records `event` once and updates the file's row, in its own transaction (with its segments,
/// when `store_segments`). Returns whether anything changed.
pub async fn apply(
    pool: &PgPool,
    event: &ResultEvent,
    store_segments: bool,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await.context("begin transaction")?;
    let applied = apply_in(&mut tx, event, store_segments).await?;
    tx.commit().await.context("commit result")?;
    Ok(applied.changed)
}

/// What storing one event did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Applied {
    /// It added a `job_results` record (false for a record already there).
    pub inserted: bool,
    /// It changed the file's row.
    pub changed: bool,
}

/// Records `event` once and updates the file's row, inside the caller's transaction. With
/// `store_segments`, a done event that moves the row to `done` also replaces the file's
/// `speech_segments` (so a redelivery, or a second job's result for a file already done, writes
/// none: each segment is there once).
pub(super) async fn apply_in(
    tx: &mut PgConnection,
    event: &ResultEvent,
    store_segments: bool,
) -> anyhow::Result<Applied> {
    let mut event = event.clone();
    for field in [
        &mut event.job_id,
        &mut event.bucket,
        &mut event.key,
        &mut event.worker_id,
    ] {
        *field = pg_text(field).into_owned();
    }
    event.error = event.error.as_deref().map(|e| pg_text(e).into_owned());
    event.results_prefix = event
        .results_prefix
        .as_deref()
        .map(|e| pg_text(e).into_owned());
    let event = &event;
    let file_id: Option<i64> = match event.file_id {
        Some(id) => {
            sqlx::query_scalar("SELECT id FROM audio_files WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => {
            sqlx::query_scalar("SELECT id FROM audio_files WHERE bucket = $1 AND key = $2")
                .bind(&event.bucket)
                .bind(&event.key)
                .fetch_optional(&mut *tx)
                .await?
        }
    };
    let finished =
        chrono::DateTime::from_timestamp_millis(event.finished_at_ms).unwrap_or_default();
    let inserted = sqlx::query(
        "INSERT INTO job_results (job_id, attempt, outcome, file_id, bucket, key, worker_id,
                                  reason, error, result_bucket, result_prefix, speech_seconds,
                                  segment_count, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (job_id, attempt, outcome) DO NOTHING",
    )
    .bind(&event.job_id)
    .bind(i32::try_from(event.attempt).unwrap_or(i32::MAX))
    .bind(event.outcome.as_str())
    .bind(file_id)
    .bind(&event.bucket)
    .bind(&event.key)
    .bind(&event.worker_id)
    .bind(event.reason.map(|r| r.as_str()))
    .bind(&event.error)
    .bind(&event.results_bucket)
    .bind(&event.results_prefix)
    .bind(event.speech_s)
    .bind(event.segments.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
    .bind(finished)
    .execute(&mut *tx)
    .await
    .context("record result event")?
    .rows_affected()
        == 1;
    let Some(file_id) = file_id.filter(|_| inserted) else {
        return Ok(Applied {
            inserted,
            changed: false,
        });
    };
    const ATTEMPTS: &str =
        "attempts = (SELECT count(DISTINCT (job_id, attempt)) FROM job_results WHERE file_id = $1)";
    let segments = event.segments.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let reason = event.reason.map(|r| r.as_str());
    let (to, done) = (FileStatus::after(event.outcome), FileStatus::Done);
    let query = match event.outcome {
        Outcome::Done => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE audio_files SET status = '{to}', {ATTEMPTS},
                 last_error = NULL, last_reason = NULL,
                 result_bucket = $2, result_prefix = $3, speech_seconds = $4,
                 segment_count = $5, duration_seconds = $6, finished_at = $7, updated_at = now()
             WHERE id = $1 AND status <> '{done}'"
        )))
        .bind(file_id)
        .bind(&event.results_bucket)
        .bind(&event.results_prefix)
        .bind(event.speech_s)
        .bind(segments)
        .bind(event.duration_s)
        .bind(finished),
        Outcome::Failed => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE audio_files SET status = '{to}', {ATTEMPTS},
                 last_error = $2, last_reason = $3, finished_at = $4, updated_at = now()
             WHERE id = $1 AND status <> '{done}'"
        )))
        .bind(file_id)
        .bind(&event.error)
        .bind(reason)
        .bind(finished),
        // A stale 'retrying' never overrides a final state of the same job.
        Outcome::Retrying => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE audio_files SET status = '{to}', {ATTEMPTS},
                 last_error = $2, last_reason = $3, updated_at = now()
             WHERE id = $1 AND status <> '{done}'
               AND NOT EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = $4
                               AND r.outcome IN ('{}', '{}'))",
            Outcome::Done.as_str(),
            Outcome::Failed.as_str()
        )))
        .bind(file_id)
        .bind(&event.error)
        .bind(reason)
        .bind(&event.job_id),
    };
    let changed = query
        .execute(&mut *tx)
        .await
        .context("update file state")?
        .rows_affected()
        > 0;
    if changed && store_segments && event.outcome == Outcome::Done {
        replace_segments(tx, file_id, event).await?;
    }
    Ok(Applied { inserted, changed })
}

/// Replaces the file's rows in `speech_segments` by the event's segments (none when the event
/// has no list: its `segments.json` could not be read).
async fn replace_segments(
    tx: &mut PgConnection,
    file_id: i64,
    event: &ResultEvent,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM speech_segments WHERE file_id = $1")
        .bind(file_id)
        .execute(&mut *tx)
        .await
        .context("clear the file's segments")?;
    let Some(list) = event.segment_list.as_deref().filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let seq: Vec<i32> = (0..list.len())
        .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    let channel: Vec<Option<i16>> = list
        .iter()
        .map(|s| s.channel().and_then(|c| i16::try_from(c).ok()))
        .collect();
    let start: Vec<f64> = list.iter().map(|s| s.start_ms() as f64 / 1000.0).collect();
    let end: Vec<f64> = list.iter().map(|s| s.end_ms() as f64 / 1000.0).collect();
    let scores: Vec<Option<String>> = list
        .iter()
        .map(|s| s.scores().map(|x| x.to_json().to_string()))
        .collect();
    // A segment that is empty once rounded to the millisecond is no segment: leaving it out
    // keeps the table's CHECK from refusing the whole result.
    sqlx::query(
        "INSERT INTO speech_segments (file_id, seq, channel, start_s, end_s, scores, job_id)
         SELECT $1, q, c, s, e, x::jsonb, $7
         FROM UNNEST($2::int[], $3::smallint[], $4::float8[], $5::float8[], $6::text[])
              AS t (q, c, s, e, x)
         WHERE e > s AND s >= 0",
    )
    .bind(file_id)
    .bind(&seq)
    .bind(&channel)
    .bind(&start)
    .bind(&end)
    .bind(&scores)
    .bind(&event.job_id)
    .execute(&mut *tx)
    .await
    .context("store the file's segments")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_for_postgres_text() {
        assert_eq!(pg_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(
            pg_text("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn only_data_errors_are_permanent() {
        let io = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("begin transaction");
        assert!(!is_permanent(&io));
        let encode = anyhow::Error::new(sqlx::Error::Encode("bad".into()));
        assert!(is_permanent(&encode));
    }
}
