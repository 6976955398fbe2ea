//! `producer dlq list|replay|purge`: inspect, replay and empty the dead-letter queue.
//!
//! Listing takes messages with `basic.get` without acking them and closes the channel, which
//! returns every one of them to the queue untouched. Replay republishes a dead letter to the work
//! exchange with publisher confirms and acks (removes) it only after the confirm arrived, so a
//! crash in between leaves a duplicate job, never a lost one. A replayed job gets a new job id,
//! so its attempts and result rows are its own; the dead letter's id goes in a header.

use crate::cli::{DlqListArgs, DlqPurgeArgs, DlqReplayArgs};
use crate::state::FileStatus;
use anyhow::Context;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use serde::Serialize;
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vadflow_common::amqp;
use vadflow_common::config::AmqpArgs;
use vadflow_common::deadletter::{FailureHeaders, Letter};
use vadflow_common::topology::{
    JOB_ROUTING_KEY, Topology, header_i64, headers, set_header_i64, set_header_str,
};
use vadflow_common::{Job, wire};

/// How long `dlq list` and `dlq purge` (which take no database settings) retry an unreachable
/// broker.
const CONNECT_BUDGET: Duration = Duration::from_secs(60);

/// One dead letter as `dlq list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Position in the queue, from 1.
    pub position: u64,
    /// The job id, else the AMQP message id, else `#position`.
    pub id: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub attempts: Option<i64>,
    pub worker: Option<String>,
    pub first_failure_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    /// Times this job was replayed from the dead-letter queue before.
    pub replays: i64,
    pub payload_bytes: usize,
}

impl DeadLetter {
    fn from_delivery(position: u64, d: &Delivery) -> DeadLetter {
        // Best effort: a poison message has no readable job, but still has its headers; one
        // the broker dead-lettered itself has its death record (deadletter.rs reads both).
        let message_id = d.properties.message_id().as_ref().map(|m| m.to_string());
        let letter = Letter::read(
            d.properties.headers().as_ref(),
            &d.data,
            message_id.as_deref(),
        );
        DeadLetter {
            position,
            id: letter
                .id()
                .map_or_else(|| format!("#{position}"), str::to_owned),
            bucket: letter.job.bucket.0.clone(),
            key: letter.job.key.0.clone(),
            reason: letter.reason.map(|r| r.as_str().to_owned()),
            error: letter.error,
            attempts: Some(i64::from(letter.attempt)),
            worker: letter.worker,
            first_failure_ms: letter.first_failure_ms,
            last_failure_ms: letter.last_failure_ms,
            replays: letter.replays,
            payload_bytes: d.data.len(),
        }
    }
}

/// What `dlq replay` did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub replayed: u64,
    /// Requested ids that were not in the dead-letter queue.
    pub not_found: Vec<String>,
    /// Dead letters the broker did not confirm; they stay in the dead-letter queue.
    pub failed: u64,
}

struct Dlq {
    conn: Connection,
    ch: Channel,
    topology: Topology,
}

impl Dlq {
    async fn open(amqp: &AmqpArgs, confirms: bool, budget: Duration) -> anyhow::Result<Dlq> {
        let topology = amqp.topology()?;
        let ca_pem = amqp.ca_pem()?;
        let conn = amqp::connect_retrying(
            amqp.amqp_url.expose(),
            ca_pem.as_deref(),
            "vadflow-producer dlq",
            budget,
        )
        .await?;
        let ch = if confirms {
            amqp::confirm_channel(&conn).await
        } else {
            conn.create_channel().await
        }
        .context("open AMQP channel")?;
        topology
            .declare(&ch)
            .await
            .context("declare AMQP topology")?;
        Ok(Dlq { conn, ch, topology })
    }

    /// Messages in the dead-letter queue now (passive declare).
    async fn depth(&self) -> anyhow::Result<u32> {
        let q = self
            .ch
            .queue_declare(
                self.topology.dead_letter_queue().as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("inspect queue {}", self.topology.dead_letter_queue()))?;
        Ok(q.message_count())
    }

    async fn get(&self) -> anyhow::Result<Option<Delivery>> {
        let got = self
            .ch
            .basic_get(
                self.topology.dead_letter_queue().as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .with_context(|| format!("read queue {}", self.topology.dead_letter_queue()))?;
        Ok(got.map(|m| m.delivery))
    }

    /// Closes the connection; every message taken and not acked returns to the queue.
    async fn close(self) {
        let _ = self.ch.close(200, "done".into()).await;
        let _ = self.conn.close(200, "done".into()).await;
    }
}

/// Lists up to `limit` dead letters, leaving them all in the queue.
pub async fn list(args: &DlqListArgs) -> anyhow::Result<(u32, Vec<DeadLetter>)> {
    let dlq = Dlq::open(&args.amqp, false, CONNECT_BUDGET).await?;
    let depth = dlq.depth().await?;
    let mut letters = Vec::new();
    let result = async {
        while letters.len() < args.limit.min(depth as usize) {
            match dlq.get().await? {
                Some(d) => letters.push(DeadLetter::from_delivery(letters.len() as u64 + 1, &d)),
                None => break,
            }
        }
        anyhow::Ok(())
    }
    .await;
    dlq.close().await;
    result?;
    Ok((depth, letters))
}

/// Prints dead letters as a table.
pub fn print_table(queue: &str, depth: u32, letters: &[DeadLetter]) {
    println!("{queue}: {depth} dead letter(s)");
    if letters.is_empty() {
        return;
    }
    println!(
        "{:>4}  {:<36}  {:<22}  {:>8}  {:<24}  {:<40}  error",
        "#", "id", "reason", "attempts", "last failure (UTC)", "object"
    );
    for l in letters {
        let object = match (&l.bucket, &l.key) {
            (Some(b), Some(k)) => format!("s3://{b}/{k}"),
            _ => format!("({} bytes, unreadable)", l.payload_bytes),
        };
        let when = l
            .last_failure_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
        println!(
            "{:>4}  {:<36}  {:<22}  {:>8}  {:<24}  {:<40}  {}",
            l.position,
            l.id,
            l.reason.as_deref().unwrap_or("-"),
            l.attempts.map_or_else(|| "-".into(), |a| a.to_string()),
            when,
            object,
            l.error.as_deref().unwrap_or("-").replace('\n', " "),
        );
    }
    if (letters.len() as u64) < u64::from(depth) {
        println!(
            "… {} more (use --limit)",
            u64::from(depth) - letters.len() as u64
        );
    }
}

/// The headers of a replayed job: failure headers dropped, attempt count reset, replays counted.
fn replay_headers(old: Option<&FieldTable>) -> FieldTable {
    let mut h = FailureHeaders::strip(old);
    let replays = header_i64(old, headers::REPLAYS).unwrap_or(0);
    set_header_i64(&mut h, headers::REPLAYS, replays.saturating_add(1));
    h
}

/// Republishes the selected dead letters to the work queue; each leaves the dead-letter queue
/// only once the broker confirmed its copy. Rows of replayed jobs go back to `queued`.
pub async fn replay(
    args: &DlqReplayArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<ReplayReport> {
    anyhow::ensure!(
        args.all || !args.ids.is_empty(),
        "name the dead letters to replay (ids from `producer dlq list`) or pass --all"
    );
    let pool = args.db.connect().await?;
    let dlq = Dlq::open(&args.amqp, true, args.db.connect_timeout).await?;
    let wanted: HashSet<&str> = args.ids.iter().map(String::as_str).collect();
    let mut found: HashSet<String> = HashSet::new();
    let mut report = ReplayReport::default();
    let result = async {
        // Only the messages present now: replayed jobs that fail again are not replayed twice.
        let depth = dlq.depth().await?;
        for position in 1..=u64::from(depth) {
            if shutdown.is_cancelled() {
                break;
            }
            let Some(d) = dlq.get().await? else { break };
            let letter = DeadLetter::from_delivery(position, &d);
            if !args.all && !wanted.contains(letter.id.as_str()) {
                continue; // stays unacked, returns to the queue on close
            }
            found.insert(letter.id.clone());
            // A replay is a new job (new id, fresh attempts, its own result rows) for the same
            // object; its results land in the same deterministic place. A message that is not a
            // readable job is replayed as it is, and fails again the same way.
            let (payload, job_id) = match rmp_serde::from_slice::<Job>(&d.data) {
                Ok(mut job) if d.data.len() <= wire::MAX_MESSAGE_BYTES => {
                    job.job_id = uuid::Uuid::now_v7().to_string();
                    (job.encode(), Some(job.job_id))
                }
                _ => (d.data.clone(), None),
            };
            let mut h = replay_headers(d.properties.headers().as_ref());
            set_header_str(&mut h, headers::REPLAY_OF, &letter.id);
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(
                    d.properties
                        .content_type()
                        .clone()
                        .unwrap_or_else(|| ShortString::from(wire::CONTENT_TYPE)),
                )
                .with_headers(h);
            let new_job_id = job_id.clone();
            let message_id = job_id.or_else(|| d.properties.message_id().as_ref().map(|m| m.to_string()));
            let props = match message_id.and_then(|id| ShortString::try_new(id).ok()) {
                Some(id) => props.with_message_id(id),
                None => props,
            };
            let exchange = dlq.topology.work_exchange();
            match amqp::publish_confirmed(&dlq.ch, &exchange, JOB_ROUTING_KEY, &payload, props).await
            {
                Ok(()) => {}
                // The channel failed: nothing more can be replayed (or acked) on it.
                Err(e @ amqp::PublishError::Broker(_)) => return Err(e.into()),
                Err(e) => {
                    tracing::error!(id = %letter.id, error = %e, "replay not confirmed; the dead letter stays");
                    report.failed += 1;
                    continue;
                }
            }
            d.ack(BasicAckOptions::default())
                .await
                .with_context(|| format!("remove dead letter {} after its replay", letter.id))?;
            report.replayed += 1;
            if let (Some(bucket), Some(key)) = (&letter.bucket, &letter.key) {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE audio_files SET status = '{}', job_id = coalesce($3, job_id),
                         queued_at = now(), updated_at = now()
                     WHERE bucket = $1 AND key = $2 AND status IN ({})",
                    FileStatus::Queued,
                    FileStatus::sql(&FileStatus::REPLAYABLE)
                )))
                .bind(bucket)
                .bind(key)
                .bind(&new_job_id)
                .execute(&pool)
                .await
                .with_context(|| format!("mark s3://{bucket}/{key} queued after its replay"))?;
            }
            tracing::info!(id = %letter.id, reason = letter.reason.as_deref().unwrap_or("-"), "dead letter replayed");
        }
        anyhow::Ok(())
    }
    .await;
    dlq.close().await;
    result?;
    if !args.all {
        let mut missing: Vec<String> = wanted
            .iter()
            .filter(|id| !found.contains(**id))
            .map(|id| (*id).to_owned())
            .collect();
        missing.sort();
        report.not_found = missing;
    }
    Ok(report)
}

/// Empties the dead-letter queue, after a confirmation prompt unless `--yes`.
pub async fn purge(args: &DlqPurgeArgs) -> anyhow::Result<u32> {
    let queue = args.amqp.topology()?.dead_letter_queue();
    let dlq = Dlq::open(&args.amqp, false, CONNECT_BUDGET).await?;
    let depth = dlq.depth().await?;
    if !args.yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            dlq.close().await;
            anyhow::bail!(
                "refusing to purge {depth} dead letter(s) from {queue} without confirmation: \
                 stdin is not a terminal; pass --yes"
            );
        }
        print!("purge {depth} dead letter(s) from {queue}? this cannot be undone [y/N] ");
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer).ok();
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            dlq.close().await;
            anyhow::bail!("purge cancelled");
        }
    }
    let purged = dlq
        .ch
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .with_context(|| format!("purge queue {queue}"));
    dlq.close().await;
    purged
}

#[cfg(test)]
mod tests {
    use super::*;
    use vadflow_common::topology::{header_str, set_header_i64, set_header_str};

    #[test]
    fn replay_resets_attempts_and_counts_replays() {
        let mut old = FieldTable::default();
        set_header_i64(&mut old, headers::ATTEMPT, 5);
        set_header_i64(&mut old, headers::ATTEMPTS, 5);
        set_header_str(&mut old, headers::REASON, "timeout");
        set_header_str(&mut old, "traceparent", "00-abc-def-01");
        set_header_i64(&mut old, headers::REPLAYS, 2);
        let new = replay_headers(Some(&old));
        assert_eq!(header_i64(Some(&new), headers::ATTEMPT), None);
        assert_eq!(header_i64(Some(&new), headers::ATTEMPTS), None);
        assert_eq!(header_str(Some(&new), headers::REASON), None);
        assert_eq!(header_i64(Some(&new), headers::REPLAYS), Some(3));
        assert_eq!(
            header_str(Some(&new), "traceparent").as_deref(),
            Some("00-abc-def-01")
        );
        assert_eq!(
            header_i64(Some(&replay_headers(None)), headers::REPLAYS),
            Some(1)
        );
    }
}
