//! `producer enqueue` and `producer reconcile`: publish jobs, and mark a row queued only once the
//! broker confirmed its message.
//!
//! `enqueue` publishes a job for every file created in `[since, until)` that is neither queued
//! nor done; then, like `reconcile`, it publishes again every row left `queued` or `retrying`
//! for longer than `--stale-after` (a job whose message vanished: purged, lost with a broker
//! node, returned while rows were being marked). The default age (24 h) is longer than a job of
//! a healthy deployment waits; see docs/operations.md for the rule. A duplicate job is harmless:
//! outputs are idempotent and a `done` row never changes again.
//!
//! Publishes are pipelined in windows: a window's messages are sent back to back, then its
//! confirms are awaited, then its confirmed rows are marked in one statement. A crash between a
//! confirm and the update leaves the row as it was, so the next run publishes it again: at worst
//! a duplicate job, never a lost one. When the broker connection fails mid-run, the command
//! reconnects (within `--connect-timeout`) and publishes the rows still unmarked.

use crate::cli::{EnqueueArgs, ReconcileArgs};
use crate::db::DbArgs;
use crate::when::{Stale, parse_tz, parse_when, to_chrono};
use anyhow::Context;
use chrono::{DateTime, Utc};
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use std::fmt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vadflow_common::Job;
use vadflow_common::amqp::{self, check_confirmation, message_properties};
use vadflow_common::config::AmqpArgs;
use vadflow_common::session::Backoff;
use vadflow_common::topology::{JOB_ROUTING_KEY, headers, set_header_i64};

/// Messages published before their confirms are awaited.
const WINDOW: usize = 512;

/// What `enqueue` (or `reconcile`) did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnqueueReport {
    /// Rows in the window that were not queued or done.
    pub selected: u64,
    /// Jobs confirmed by the broker and marked queued.
    pub published: u64,
    /// Jobs confirmed but whose row changed meanwhile (finished already), or rows not published
    /// because the run was stopped.
    pub skipped: u64,
    /// Jobs the broker returned or nacked; their rows stay as they were.
    pub failed: u64,
    /// Rows `queued` or `retrying` for longer than `--stale-after`.
    pub stale: u64,
    /// Stale rows published again and confirmed.
    pub republished: u64,
    pub dry_run: bool,
}

impl fmt::Display for EnqueueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "enqueue: selected={} published={} skipped={} failed={} stale={} republished={}{}",
            self.selected,
            self.published,
            self.skipped,
            self.failed,
            self.stale,
            self.republished,
            if self.dry_run { " (dry run)" } else { "" }
        )
    }
}

/// A file reference selected for publishing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub bucket: String,
    pub key: String,
    pub size_bytes: Option<i64>,
}

/// Which rows a publish is for, and so which rows its confirms may mark.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// New work: rows `pending` or `failed`, unless a result arrived after `started`.
    Window { started: DateTime<Utc> },
    /// Lost work: rows still `queued` or `retrying` and unchanged since before `cutoff`.
    Stale { cutoff: DateTime<Utc> },
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
    let limit = args.limit.map_or(i64::MAX, i64::from);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, bucket, key, size_bytes FROM audio_files
         WHERE created_at >= $1 AND created_at < $2 AND status IN ('pending', 'failed')
         ORDER BY created_at, id
         LIMIT $3",
    )
    .bind(to_chrono(since))
    .bind(to_chrono(until))
    .bind(limit)
    .fetch_all(&pool)
    .await
    .context("select files to enqueue")?;
    let (cutoff, stale) = select_stale(&pool, args.stale_after, started, limit).await?;

    let mut report = EnqueueReport {
        selected: rows.len() as u64,
        stale: stale.len() as u64,
        dry_run: args.dry_run,
        ..Default::default()
    };
    tracing::info!(%since, %until, selected = report.selected, stale = report.stale, "selected files to enqueue");
    if args.dry_run || (rows.is_empty() && stale.is_empty()) {
        for r in rows.iter().chain(&stale).take(20) {
            tracing::info!(file_id = r.id, bucket = %r.bucket, key = %r.key, "would enqueue");
        }
        return Ok(report);
    }

    let mut publisher = Publisher::connect(&args.amqp, &args.db, &topology).await?;
    let result = async {
        publisher
            .send(&pool, Kind::Window { started }, rows, shutdown, &mut report)
            .await?;
        if let Some(cutoff) = cutoff {
            publisher
                .send(&pool, Kind::Stale { cutoff }, stale, shutdown, &mut report)
                .await?;
        }
        anyhow::Ok(())
    }
    .await;
    publisher.close().await;
    result?;
    // Window rows neither published nor failed were stopped by a shutdown.
    report.skipped += report
        .selected
        .saturating_sub(report.published + report.skipped + report.failed);
    tracing::info!(
        selected = report.selected,
        published = report.published,
        skipped = report.skipped,
        failed = report.failed,
        stale = report.stale,
        republished = report.republished,
        "enqueue finished"
    );
    Ok(report)
}

/// `producer reconcile`: only the stale part of `enqueue`.
pub async fn reconcile(
    args: &ReconcileArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<EnqueueReport> {
    let topology = args.amqp.topology()?;
    let pool = args.db.connect().await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .context("read the database clock")?;
    let limit = args.limit.map_or(i64::MAX, i64::from);
    let (cutoff, stale) = select_stale(&pool, args.stale_after, now, limit).await?;
    let mut report = EnqueueReport {
        stale: stale.len() as u64,
        dry_run: args.dry_run,
        ..Default::default()
    };
    let Some(cutoff) = cutoff.filter(|_| !args.dry_run && !stale.is_empty()) else {
        for r in stale.iter().take(20) {
            tracing::info!(file_id = r.id, bucket = %r.bucket, key = %r.key, "would republish");
        }
        return Ok(report);
    };
    let mut publisher = Publisher::connect(&args.amqp, &args.db, &topology).await?;
    let result = publisher
        .send(&pool, Kind::Stale { cutoff }, stale, shutdown, &mut report)
        .await;
    publisher.close().await;
    result?;
    tracing::info!(
        stale = report.stale,
        republished = report.republished,
        failed = report.failed,
        "reconcile finished"
    );
    Ok(report)
}

/// Rows `queued` or `retrying` since before `now - age` (none when `age` is off), oldest first,
/// with the cutoff used.
async fn select_stale(
    pool: &sqlx::PgPool,
    age: Stale,
    now: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<(Option<DateTime<Utc>>, Vec<Row>)> {
    let Stale(Some(age)) = age else {
        return Ok((None, Vec::new()));
    };
    let cutoff = now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    let rows = sqlx::query_as(
        "SELECT id, bucket, key, size_bytes FROM audio_files
         WHERE status IN ('queued', 'retrying') AND updated_at < $1
         ORDER BY updated_at, id
         LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("select stale rows")?;
    Ok((Some(cutoff), rows))
}

/// A confirm-mode channel to the work exchange that reconnects when the broker fails mid-run.
struct Publisher<'a> {
    amqp: &'a AmqpArgs,
    ca_pem: Option<String>,
    budget: std::time::Duration,
    conn: lapin::Connection,
    ch: lapin::Channel,
    exchange: String,
    topology: &'a vadflow_common::Topology,
}

impl<'a> Publisher<'a> {
    async fn connect(
        amqp: &'a AmqpArgs,
        db: &DbArgs,
        topology: &'a vadflow_common::Topology,
    ) -> anyhow::Result<Publisher<'a>> {
        let ca_pem = amqp.ca_pem()?;
        let (conn, ch) = open(amqp, ca_pem.as_deref(), topology, db.connect_timeout).await?;
        Ok(Publisher {
            amqp,
            ca_pem,
            budget: db.connect_timeout,
            conn,
            ch,
            exchange: topology.work_exchange(),
            topology,
        })
    }

    /// Publishes a job per row, reconnecting for at most the connect budget when the broker
    /// fails; rows handled before the failure are not published again.
    async fn send(
        &mut self,
        pool: &sqlx::PgPool,
        kind: Kind,
        rows: Vec<Row>,
        shutdown: &CancellationToken,
        report: &mut EnqueueReport,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.budget;
        let mut backoff = Backoff::new();
        let mut rest = rows;
        loop {
            let mut handled = 0;
            let sent = publish(
                pool,
                &self.ch,
                &self.exchange,
                kind,
                &rest,
                shutdown,
                report,
                &mut handled,
            )
            .await;
            let e = match sent {
                Ok(()) => return Ok(()),
                Err(e) if broker_failed(&e) && Instant::now() < deadline => e,
                Err(e) => return Err(e),
            };
            tracing::warn!(
                error = format!("{e:#}"),
                "the broker failed mid-run; reconnecting to publish the rest"
            );
            rest = still_unmarked(pool, kind, &rest[handled..]).await?;
            let pause = backoff
                .next_delay()
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
            let left = deadline.saturating_duration_since(Instant::now());
            let (conn, ch) = open(self.amqp, self.ca_pem.as_deref(), self.topology, left).await?;
            let old = std::mem::replace(&mut self.conn, conn);
            let _ = old.close(200, "reconnected".into()).await;
            self.ch = ch;
        }
    }

    async fn close(self) {
        let _ = self.conn.close(200, "enqueue done".into()).await;
    }
}

async fn open(
    amqp: &AmqpArgs,
    ca_pem: Option<&str>,
    topology: &vadflow_common::Topology,
    budget: std::time::Duration,
) -> anyhow::Result<(lapin::Connection, lapin::Channel)> {
    let conn = amqp::connect_retrying(&amqp.amqp_url, ca_pem, "vadflow-producer", budget).await?;
    let ch = amqp::confirm_channel(&conn)
        .await
        .context("open AMQP channel")?;
    topology
        .declare(&ch)
        .await
        .context("declare AMQP topology")?;
    Ok((conn, ch))
}

/// Whether publishing failed because the broker connection or channel failed (worth
/// reconnecting), rather than because of the database or a refused message.
fn broker_failed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<lapin::Error>().is_some()
            || matches!(
                c.downcast_ref::<amqp::PublishError>(),
                Some(amqp::PublishError::Broker(_))
            )
    })
}

/// Of `rows`, those whose state still calls for publishing them (a run interrupted by the broker
/// may have marked some of them already).
async fn still_unmarked(pool: &sqlx::PgPool, kind: Kind, rows: &[Row]) -> anyhow::Result<Vec<Row>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let open: Vec<i64> = match kind {
        Kind::Window { .. } => sqlx::query_scalar(
            "SELECT id FROM audio_files WHERE id = ANY($1) AND status IN ('pending', 'failed')",
        )
        .bind(&ids),
        Kind::Stale { cutoff } => sqlx::query_scalar(
            "SELECT id FROM audio_files WHERE id = ANY($1)
               AND status IN ('queued', 'retrying') AND updated_at < $2",
        )
        .bind(&ids)
        .bind(cutoff),
    }
    .fetch_all(pool)
    .await
    .context("find the rows still to publish")?;
    let open: std::collections::HashSet<i64> = open.into_iter().collect();
    Ok(rows
        .iter()
        .filter(|r| open.contains(&r.id))
        .cloned()
        .collect())
}

/// Publishes new work (`enqueue`'s window) for `rows` on `ch` to `exchange`, once, without
/// reconnecting: returned or nacked jobs are counted as failed and their rows stay pending.
pub async fn publish_window(
    pool: &sqlx::PgPool,
    ch: &lapin::Channel,
    exchange: &str,
    rows: &[Row],
    started: DateTime<Utc>,
    shutdown: &CancellationToken,
    report: &mut EnqueueReport,
) -> anyhow::Result<()> {
    let kind = Kind::Window { started };
    publish(pool, ch, exchange, kind, rows, shutdown, report, &mut 0).await
}

/// Publishes a job per row to `exchange` in confirmed windows and marks the confirmed rows.
/// Returned or nacked jobs are counted as failed and their rows stay as they were. Stops
/// between windows when `shutdown` is cancelled. `handled` counts the rows of the windows
/// completed, so that a caller can resume after a broker failure.
#[allow(clippy::too_many_arguments)]
async fn publish(
    pool: &sqlx::PgPool,
    ch: &lapin::Channel,
    exchange: &str,
    kind: Kind,
    rows: &[Row],
    shutdown: &CancellationToken,
    report: &mut EnqueueReport,
    handled: &mut usize,
) -> anyhow::Result<()> {
    for window in rows.chunks(WINDOW) {
        if shutdown.is_cancelled() {
            tracing::warn!("stopping: remaining rows stay as they are");
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
                    // Mark what was confirmed so far, then fail: the rest stay as they were.
                    mark(pool, kind, &confirmed_ids, &confirmed_jobs, report).await?;
                    return Err(anyhow::Error::new(e).context(format!(
                        "broker failed after {} jobs were confirmed; unconfirmed rows stay as they were",
                        report.published + report.republished
                    )));
                }
                Err(e) => {
                    tracing::warn!(file_id = id, job_id = %job_id, error = %e, "job not accepted by the broker; row stays as it was");
                    report.failed += 1;
                }
            }
        }
        mark(pool, kind, &confirmed_ids, &confirmed_jobs, report).await?;
        *handled += window.len();
    }
    Ok(())
}

/// Marks confirmed rows queued (with their new job id) and counts them in the report.
async fn mark(
    pool: &sqlx::PgPool,
    kind: Kind,
    ids: &[i64],
    job_ids: &[String],
    report: &mut EnqueueReport,
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let query = match kind {
        // Unless a result for them arrived after this run started (the worker was faster than
        // this update) or they changed state meanwhile.
        Kind::Window { started } => sqlx::query(
            "UPDATE audio_files AS f
             SET status = 'queued', job_id = u.job_id, queued_at = now(), updated_at = now()
             FROM UNNEST($1::bigint[], $2::text[]) AS u(id, job_id)
             WHERE f.id = u.id
               AND f.status IN ('pending', 'failed')
               AND (f.finished_at IS NULL OR f.finished_at < $3)",
        )
        .bind(ids)
        .bind(job_ids)
        .bind(started),
        // Unless anything happened to them since they were found stale.
        Kind::Stale { cutoff } => sqlx::query(
            "UPDATE audio_files AS f
             SET status = 'queued', job_id = u.job_id, queued_at = now(), updated_at = now()
             FROM UNNEST($1::bigint[], $2::text[]) AS u(id, job_id)
             WHERE f.id = u.id
               AND f.status IN ('queued', 'retrying')
               AND f.updated_at < $3",
        )
        .bind(ids)
        .bind(job_ids)
        .bind(cutoff),
    };
    let marked = query
        .execute(pool)
        .await
        .context(
            "mark published rows queued (their jobs are on the queue; a rerun may duplicate them)",
        )?
        .rows_affected();
    match kind {
        Kind::Window { .. } => {
            report.published += marked;
            report.skipped += ids.len() as u64 - marked;
        }
        Kind::Stale { .. } => report.republished += marked,
    }
    Ok(())
}
