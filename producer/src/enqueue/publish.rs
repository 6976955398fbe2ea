//! Publishing jobs with publisher confirms, in windows, marking each row once its message is
//! confirmed; reconnecting and resuming when the broker fails mid-run.

use super::{EnqueueReport, Kind, Row};
use crate::db::DbArgs;
use crate::state::FileStatus;
use anyhow::Context;
use chrono::{DateTime, Utc};
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vadflow_common::Job;
use vadflow_common::amqp::{self, check_confirmation, message_properties};
use vadflow_common::config::AmqpArgs;
use vadflow_common::session::Backoff;
use vadflow_common::topology::{JOB_ROUTING_KEY, headers, set_header_i64};

/// Messages published before their confirms are awaited.
const WINDOW: usize = 512;

/// A confirm-mode channel to the work exchange that reconnects when the broker fails mid-run.
pub(super) struct Publisher<'a> {
    amqp: &'a AmqpArgs,
    ca_pem: Option<String>,
    budget: std::time::Duration,
    conn: lapin::Connection,
    ch: lapin::Channel,
    exchange: String,
    topology: &'a vadflow_common::Topology,
}

impl<'a> Publisher<'a> {
    pub(super) async fn connect(
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
    pub(super) async fn send(
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

    pub(super) async fn close(self) {
        let _ = self.conn.close(200, "enqueue done".into()).await;
    }
}

async fn open(
    amqp: &AmqpArgs,
    ca_pem: Option<&str>,
    topology: &vadflow_common::Topology,
    budget: std::time::Duration,
) -> anyhow::Result<(lapin::Connection, lapin::Channel)> {
    let conn =
        amqp::connect_retrying(amqp.amqp_url.expose(), ca_pem, "vadflow-producer", budget).await?;
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
        Kind::Window { .. } => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM audio_files WHERE id = ANY($1) AND status IN ({})",
            FileStatus::sql(&FileStatus::NEW_WORK)
        )))
        .bind(&ids),
        Kind::Stale { cutoff } => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM audio_files WHERE id = ANY($1)
               AND status IN ({}) AND updated_at < $2",
            FileStatus::sql(&FileStatus::IN_FLIGHT)
        )))
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
            job.external_id = row.external_id.clone();
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
        Kind::Window { started } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE audio_files AS f
             SET status = '{}', job_id = u.job_id, queued_at = now(), updated_at = now()
             FROM UNNEST($1::bigint[], $2::text[]) AS u(id, job_id)
             WHERE f.id = u.id
               AND f.status IN ({})
               AND (f.finished_at IS NULL OR f.finished_at < $3)",
            FileStatus::Queued,
            FileStatus::sql(&FileStatus::NEW_WORK)
        )))
        .bind(ids)
        .bind(job_ids)
        .bind(started),
        // Unless anything happened to them since they were found stale.
        Kind::Stale { cutoff } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE audio_files AS f
             SET status = '{}', job_id = u.job_id, queued_at = now(), updated_at = now()
             FROM UNNEST($1::bigint[], $2::text[]) AS u(id, job_id)
             WHERE f.id = u.id
               AND f.status IN ({})
               AND f.updated_at < $3",
            FileStatus::Queued,
            FileStatus::sql(&FileStatus::IN_FLIGHT)
        )))
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
