//! `producer enqueue`: publish a job for every file created in `[since, until)` that is neither
//! queued nor done, and mark a row queued only once the broker confirmed its message.
//!
//! Publishes are pipelined in windows: a window's messages are sent back to back, then its
//! confirms are awaited, then its confirmed rows are marked in one statement. A crash between a
//! confirm and the update leaves the row pending, so the next run publishes it again: at worst a
//! duplicate job (which the worker handles idempotently), never a lost one.

use crate::cli::EnqueueArgs;
use crate::when::{parse_tz, parse_when, to_chrono};
use anyhow::Context;
use chrono::{DateTime, Utc};
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use std::fmt;
use tokio_util::sync::CancellationToken;
use vadflow_common::Job;
use vadflow_common::amqp::{self, check_confirmation, message_properties};
use vadflow_common::topology::{JOB_ROUTING_KEY, headers, set_header_i64};

/// Messages published before their confirms are awaited.
const WINDOW: usize = 512;

/// What `enqueue` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnqueueReport {
    /// Rows in the window that were not queued or done.
    pub selected: u64,
    /// Jobs confirmed by the broker and marked queued.
    pub published: u64,
    /// Jobs confirmed but whose row changed meanwhile (finished already), or rows not published
    /// because the run was stopped.
    pub skipped: u64,
    /// Jobs the broker returned or nacked; their rows stay pending.
    pub failed: u64,
    pub dry_run: bool,
}

impl fmt::Display for EnqueueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "enqueue: selected={} published={} skipped={} failed={}{}",
            self.selected,
            self.published,
            self.skipped,
            self.failed,
            if self.dry_run { " (dry run)" } else { "" }
        )
    }
}

/// A file reference selected for enqueueing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub bucket: String,
    pub key: String,
    pub size_bytes: Option<i64>,
}

pub async fn run(
    args: &EnqueueArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<EnqueueReport> {
    let tz = parse_tz(&args.tz).map_err(anyhow::Error::msg)?;
    let now = jiff::Timestamp::now();
    let since = parse_when(&args.since, now, &tz).map_err(anyhow::Error::msg)?;
    let until = parse_when(&args.until, now, &tz).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        since < until,
        "--since {since} is not before --until {until}"
    );
    let topology = args.amqp.topology()?;
    let pool = args.db.connect().await?;

    // The database's clock: results finished after this moment belong to this run's jobs.
    let started: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .context("read the database clock")?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, bucket, key, size_bytes FROM audio_files
         WHERE created_at >= $1 AND created_at < $2 AND status IN ('pending', 'failed')
         ORDER BY created_at, id
         LIMIT $3",
    )
    .bind(to_chrono(since))
    .bind(to_chrono(until))
    .bind(args.limit.map_or(i64::MAX, i64::from))
    .fetch_all(&pool)
    .await
    .context("select files to enqueue")?;

    let mut report = EnqueueReport {
        selected: rows.len() as u64,
        dry_run: args.dry_run,
        ..Default::default()
    };
    tracing::info!(%since, %until, selected = report.selected, "selected files to enqueue");
    if args.dry_run || rows.is_empty() {
        for r in rows.iter().take(20) {
            tracing::info!(file_id = r.id, bucket = %r.bucket, key = %r.key, "would enqueue");
        }
        return Ok(report);
    }

    let ca_pem = args.amqp.ca_pem()?;
    let conn =
        amqp::connect_tls(&args.amqp.amqp_url, ca_pem.as_deref(), "vadflow-producer").await?;
    let ch = amqp::confirm_channel(&conn)
        .await
        .context("open AMQP channel")?;
    topology
        .declare(&ch)
        .await
        .context("declare AMQP topology")?;
    let exchange = topology.work_exchange();

    publish(&pool, &ch, &exchange, &rows, started, shutdown, &mut report).await?;
    report.skipped += report.selected - report.published - report.skipped - report.failed;
    let _ = conn.close(200, "enqueue done".into()).await;
    tracing::info!(
        selected = report.selected,
        published = report.published,
        skipped = report.skipped,
        failed = report.failed,
        "enqueue finished"
    );
    Ok(report)
}

/// Publishes a job per row to `exchange` in confirmed windows and marks the confirmed rows
/// queued. Returned or nacked jobs are counted as failed and their rows stay pending. Stops
/// between windows when `shutdown` is cancelled.
pub async fn publish(
    pool: &sqlx::PgPool,
    ch: &lapin::Channel,
    exchange: &str,
    rows: &[Row],
    started: DateTime<Utc>,
    shutdown: &CancellationToken,
    report: &mut EnqueueReport,
) -> anyhow::Result<()> {
    for window in rows.chunks(WINDOW) {
        if shutdown.is_cancelled() {
            tracing::warn!("stopping: remaining rows stay pending");
            break;
        }
        let mut pending = Vec::with_capacity(window.len());
        for row in window {
            let mut job = Job::new(&row.bucket, &row.key);
            job.file_id = Some(row.id);
            job.size = row.size_bytes.and_then(|s| u64::try_from(s).ok());
            if let Err(e) = job.validate() {
                // Register refuses such keys; a row inserted by other means may still have one.
                tracing::warn!(file_id = row.id, error = %e, "not enqueuing a row with an invalid reference");
                report.failed += 1;
                continue;
            }
            let mut h = FieldTable::default();
            set_header_i64(&mut h, headers::ATTEMPT, 1);
            // OpenTelemetry messaging conventions: a producer span per message, its context in
            // the message headers for the worker's span to continue.
            let span = vadflow_common::trace::send_span(
                &tracing::Span::current(),
                exchange,
                JOB_ROUTING_KEY,
                &job.job_id,
            );
            vadflow_common::trace::inject(&span, &mut h);
            let confirm = ch
                .basic_publish(
                    exchange.into(),
                    JOB_ROUTING_KEY.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &job.encode(),
                    message_properties(&job.job_id, h),
                )
                .await
                .context("publish job")?;
            pending.push((row.id, job.job_id, confirm));
        }
        let mut confirmed_ids = Vec::with_capacity(pending.len());
        let mut confirmed_jobs = Vec::with_capacity(pending.len());
        for (id, job_id, confirm) in pending {
            let outcome = confirm
                .await
                .map_err(amqp::PublishError::from)
                .and_then(|c| check_confirmation(c, exchange, JOB_ROUTING_KEY));
            match outcome {
                Ok(()) => {
                    confirmed_ids.push(id);
                    confirmed_jobs.push(job_id);
                }
                Err(e @ amqp::PublishError::Broker(_)) => {
                    // Mark what was confirmed so far, then fail: the rest stay pending.
                    let marked =
                        mark_queued(pool, &confirmed_ids, &confirmed_jobs, started).await?;
                    report.published += marked;
                    return Err(anyhow::Error::new(e).context(format!(
                        "broker failed after {} jobs were confirmed; unconfirmed rows stay pending",
                        report.published
                    )));
                }
                Err(e) => {
                    tracing::warn!(file_id = id, job_id = %job_id, error = %e, "job not accepted by the broker; row stays pending");
                    report.failed += 1;
                }
            }
        }
        let marked = mark_queued(pool, &confirmed_ids, &confirmed_jobs, started).await?;
        report.published += marked;
        report.skipped += confirmed_ids.len() as u64 - marked;
    }
    Ok(())
}

/// Marks confirmed rows queued, unless a result for them arrived after this run started (the
/// worker was faster than this update) or they changed state meanwhile.
async fn mark_queued(
    pool: &sqlx::PgPool,
    ids: &[i64],
    job_ids: &[String],
    started: DateTime<Utc>,
) -> anyhow::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE audio_files AS f
         SET status = 'queued', job_id = u.job_id, queued_at = now(), updated_at = now()
         FROM UNNEST($1::bigint[], $2::text[]) AS u(id, job_id)
         WHERE f.id = u.id
           AND f.status IN ('pending', 'failed')
           AND (f.finished_at IS NULL OR f.finished_at < $3)",
    )
    .bind(ids)
    .bind(job_ids)
    .bind(started)
    .execute(pool)
    .await
    .context(
        "mark published rows queued (their jobs are on the queue; a rerun may duplicate them)",
    )?
    .rows_affected();
    Ok(done)
}
