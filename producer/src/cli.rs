//! Command-line interface of `producer`. Every flag has an environment fallback.

use crate::db::DbArgs;
use crate::when::{Stale, parse_stale_after};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use vadflow_common::config::AmqpArgs;
use vadflow_common::s3::S3Args;

#[derive(Debug, Parser)]
#[command(
    name = "producer",
    version,
    about = "vadflow producer: feeds audio jobs from PostgreSQL to RabbitMQ"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (idempotent).
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Add S3 objects to the table of audio files; existing references are left alone.
    Register(RegisterArgs),
    /// Publish jobs for files created in [--since, --until) that are not queued or done, and
    /// publish again the jobs of rows queued for longer than --stale-after.
    Enqueue(EnqueueArgs),
    /// Publish again the jobs of rows queued or retrying for longer than --stale-after (their
    /// messages were lost: purged, or gone with a broker node), and nothing else.
    Reconcile(ReconcileArgs),
    /// Run the collector: the single consumer that writes result events to the database.
    Collect(CollectArgs),
    /// Show file counts by status and the depth of every queue.
    Status(StatusArgs),
    /// Inspect, replay or empty the dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Age past which a queued or retrying row counts as stale (as for enqueue).
    #[arg(long, env = "VADFLOW_STALE_AFTER", default_value = DEFAULT_STALE_AFTER, value_parser = parse_stale_after)]
    pub stale_after: Stale,
}

/// Default of `--stale-after`: far longer than a job of a healthy deployment waits in the queue
/// (docs/operations.md has the rule), short enough that a lost job is redone within a day or two.
pub const DEFAULT_STALE_AFTER: &str = "24h";

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Show dead letters (they stay in the queue): id, reason, attempts, failure time, object.
    List(DlqListArgs),
    /// Republish dead letters to the work queue; each leaves the dead-letter queue only after
    /// the broker confirmed its copy.
    Replay(DlqReplayArgs),
    /// Delete every dead letter, after a confirmation prompt (or --yes).
    Purge(DlqPurgeArgs),
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub amqp: AmqpArgs,
    /// Show at most this many dead letters.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Ids of the dead letters to replay, as `dlq list` shows them.
    #[arg(value_name = "ID", conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Replay every dead letter present now.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DlqPurgeArgs {
    #[command(flatten)]
    pub amqp: AmqpArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub s3: S3Args,

    /// Objects or prefixes: s3://bucket/key registers one object; s3://bucket/prefix/ (or a
    /// key that is not an object) registers every audio object under the prefix.
    #[arg(
        required_unless_present = "sql",
        conflicts_with = "sql",
        value_name = "S3_URI"
    )]
    pub targets: Vec<String>,

    /// Register the files a read-only query lists, from your own catalog tables. Its columns:
    /// `uri` (s3://bucket/key) or `bucket` and `key`; optionally `created_at` (the file's time
    /// for `enqueue --since`; default now) and `external_id` (your id of the file, text or
    /// integer, kept on the row and carried in result events). Rows are streamed and inserted
    /// in batches; files already registered are left alone.
    #[arg(long, value_name = "QUERY", conflicts_with_all = ["from", "all_objects"])]
    pub sql: Option<String>,

    /// Run --sql on this database instead of DATABASE_URL (its default search_path, not
    /// vadflow's schema).
    #[arg(
        long,
        env = "VADFLOW_SOURCE_DATABASE_URL",
        hide_env_values = true,
        requires = "sql"
    )]
    pub source_database_url: Option<vadflow_common::redact::SecretUrl>,

    /// Rows inserted per statement with --sql (bench/register_sql.sh: 5,000 registers 300,000
    /// rows 3.4x as fast as 1,000, for 2 MiB more).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_size: u32,

    /// Upload the audio files under this local directory to the (single) target prefix first,
    /// keeping their relative paths, then register them.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,

    /// Register every object under a prefix, not only known audio extensions.
    #[arg(long)]
    pub all_objects: bool,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,

    /// Start of the creation-time window (inclusive): now, today, yesterday, 36h, 7d,
    /// 2026-11-20 or an RFC 3339 timestamp.
    #[arg(long, value_name = "WHEN")]
    pub since: String,

    /// End of the window (exclusive); same forms as --since.
    #[arg(long, value_name = "WHEN", default_value = "now")]
    pub until: String,

    /// Publish at most this many jobs.
    #[arg(long)]
    pub limit: Option<u32>,

    /// Show what would be published, publish nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Time zone for today, yesterday and dates (IANA name).
    #[arg(long, env = "VADFLOW_TZ", default_value = "UTC")]
    pub tz: String,

    /// Publish again the jobs of rows queued or retrying for longer than this (whatever their
    /// creation time): their messages were lost. An age (30m, 24h, 7d) or off.
    #[arg(long, env = "VADFLOW_STALE_AFTER", default_value = DEFAULT_STALE_AFTER, value_parser = parse_stale_after)]
    pub stale_after: Stale,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,

    /// Rows queued or retrying for longer than this are published again: an age (30m, 24h, 7d).
    #[arg(long, env = "VADFLOW_STALE_AFTER", default_value = DEFAULT_STALE_AFTER, value_parser = parse_stale_after)]
    pub stale_after: Stale,

    /// Publish at most this many jobs.
    #[arg(long)]
    pub limit: Option<u32>,

    /// Show what would be published, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,

    /// Result events fetched ahead from the broker.
    #[arg(long, env = "VADFLOW_COLLECT_PREFETCH", default_value_t = 256)]
    pub prefetch: u16,

    /// Address of the HTTP endpoint serving /healthz, /readyz and /metrics (port 0: any free
    /// port). Off unless set.
    #[arg(long, env = "VADFLOW_HTTP_ADDR")]
    pub http_addr: Option<std::net::SocketAddr>,

    /// Exit once the results queue has been empty for this long (for batch runs and the demo);
    /// by default the writer runs until it is stopped.
    #[arg(long, value_parser = vadflow_common::config::parse_duration)]
    pub exit_when_idle: Option<std::time::Duration>,

    /// Also write each done file's speech segments to the `speech_segments` table, in the same
    /// transaction as its result. Segments travel in the result event (up to 1,000 per file);
    /// for files with more, the collector reads the file's `segments.json` from S3 (the --s3-*
    /// settings, used only then).
    #[arg(long, env = "VADFLOW_STORE_SEGMENTS")]
    pub store_segments: bool,

    /// How often the depth and consumers of every queue are read for /metrics.
    #[arg(long, env = "VADFLOW_QUEUE_POLL_INTERVAL", default_value = "15s", value_parser = vadflow_common::config::parse_duration)]
    pub queue_poll_interval: std::time::Duration,

    #[command(flatten)]
    pub s3: S3Args,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn enqueue_parses_its_everyday_form() {
        let cli = Cli::try_parse_from([
            "producer",
            "enqueue",
            "--since",
            "yesterday",
            "--amqp-url",
            "amqp://u:p@h/%2f",
            "--database-url",
            "postgres://h/db",
        ])
        .expect("parses");
        let Command::Enqueue(args) = cli.command else {
            panic!("not enqueue")
        };
        assert_eq!(args.since, "yesterday");
        assert_eq!(args.until, "now");
        assert_eq!(args.amqp.amqp_url.expose(), "amqp://u:p@h/%2f");
        assert_eq!(args.db.database_url.expose(), "postgres://h/db");
    }
}
