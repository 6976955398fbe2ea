//! `producer status`: where a run stands. File counts by status from the database, and the depth
//! of every queue (passive declares, so nothing is created or changed).

use crate::cli::StatusArgs;
use crate::state::FileStatus;
use anyhow::Context;
use serde::Serialize;
use vadflow_common::amqp;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueDepth {
    pub queue: String,
    /// Ready messages, or `None` if the queue does not exist (the topology is not declared yet).
    pub messages: Option<u32>,
    pub consumers: Option<u32>,
}

/// Files by status (a JSON object in `--json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileCounts {
    pub pending: i64,
    pub queued: i64,
    pub retrying: i64,
    pub done: i64,
    pub failed: i64,
    pub total: i64,
    /// Rows `queued` or `retrying` for longer than `--stale-after` (included in those counts):
    /// their jobs are presumed lost, and the next `enqueue` or `reconcile` publishes them again.
    pub stale: i64,
    /// The age used for `stale`, in seconds (`null` when off).
    pub stale_after_s: Option<u64>,
}

impl FileCounts {
    fn rows(&self) -> [(&'static str, i64); 6] {
        [
            (FileStatus::Pending.as_str(), self.pending),
            (FileStatus::Queued.as_str(), self.queued),
            (FileStatus::Retrying.as_str(), self.retrying),
            (FileStatus::Done.as_str(), self.done),
            (FileStatus::Failed.as_str(), self.failed),
            ("total", self.total),
        ]
    }

    /// The stale line of the table, e.g. `stale (queued or retrying > 24h)`.
    fn stale_label(&self) -> Option<String> {
        let secs = self.stale_after_s?;
        let age = if secs % 3600 == 0 {
            format!("{}h", secs / 3600)
        } else if secs % 60 == 0 {
            format!("{}m", secs / 60)
        } else {
            format!("{secs}s")
        };
        Some(format!("stale (queued or retrying > {age})"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub files: FileCounts,
    pub queues: Vec<QueueDepth>,
}

pub async fn run(args: &StatusArgs) -> anyhow::Result<Status> {
    let topology = args.amqp.topology()?;
    let pool = args.db.connect().await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM audio_files GROUP BY status")
            .fetch_all(&pool)
            .await
            .context("count files by status")?;
    let count = |s: FileStatus| {
        rows.iter()
            .find(|(st, _)| st == s.as_str())
            .map_or(0, |(_, n)| *n)
    };
    let stale = match args.stale_after.0 {
        Some(age) => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM audio_files
                 WHERE status IN ({}) AND updated_at < now() - $1",
            FileStatus::sql(&FileStatus::IN_FLIGHT)
        )))
        .bind(chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX))
        .fetch_one(&pool)
        .await
        .context("count stale files")?,
        None => 0,
    };
    let files = FileCounts {
        pending: count(FileStatus::Pending),
        queued: count(FileStatus::Queued),
        retrying: count(FileStatus::Retrying),
        done: count(FileStatus::Done),
        failed: count(FileStatus::Failed),
        total: rows.iter().map(|(_, n)| n).sum(),
        stale,
        stale_after_s: args.stale_after.0.map(|d| d.as_secs()),
    };

    let ca_pem = args.amqp.ca_pem()?;
    let conn = amqp::connect_retrying(
        args.amqp.amqp_url.expose(),
        ca_pem.as_deref(),
        "vadflow-producer status",
        args.db.connect_timeout,
    )
    .await?;
    let queues = topology
        .depths(&conn)
        .await
        .context("read queue depths")?
        .into_iter()
        .map(|(queue, depth)| QueueDepth {
            queue,
            messages: depth.map(|d| d.0),
            consumers: depth.map(|d| d.1),
        })
        .collect();
    let _ = conn.close(200, "done".into()).await;
    Ok(Status { files, queues })
}

pub fn print_table(schema: &str, s: &Status) {
    println!("files ({schema}.audio_files)");
    for (status, n) in s.files.rows() {
        println!("  {status:<10} {n:>10}");
    }
    if let Some(label) = s.files.stale_label() {
        println!("  {label}: {}", s.files.stale);
    }
    println!();
    println!("{:<40} {:>10} {:>10}", "queue", "messages", "consumers");
    for q in &s.queues {
        let show = |v: Option<u32>| v.map_or_else(|| "missing".to_owned(), |n| n.to_string());
        println!(
            "{:<40} {:>10} {:>10}",
            q.queue,
            show(q.messages),
            show(q.consumers)
        );
    }
}
