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
use crate::state::FileStatus;
use crate::when::{Stale, parse_tz, parse_when, to_chrono};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::fmt;
use tokio_util::sync::CancellationToken;

mod publish;
use publish::Publisher;
pub use publish::publish_window;

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
    pub external_id: Option<String>,
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
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, bucket, key, size_bytes, external_id FROM audio_files
         WHERE created_at >= $1 AND created_at < $2 AND status IN ({})
         ORDER BY created_at, id
         LIMIT $3",
        FileStatus::sql(&FileStatus::NEW_WORK)
    )))
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
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, bucket, key, size_bytes, external_id FROM audio_files
         WHERE status IN ({}) AND updated_at < $1
         ORDER BY updated_at, id
         LIMIT $2",
        FileStatus::sql(&FileStatus::IN_FLIGHT)
    )))
    .bind(cutoff)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("select stale rows")?;
    Ok((Some(cutoff), rows))
}
