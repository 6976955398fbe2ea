//! Helper of `deploy/local/demo.sh`: makes the demo recordings, waits for the pipeline, and
//! prints and checks the summary. Reads the same environment as the binaries (`AMQP_URL`,
//! `DATABASE_URL`, `AWS_*`, `VADFLOW_QUEUE_PREFIX`, `VADFLOW_DB_SCHEMA`, `VADFLOW_RESULTS_BUCKET`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vadflow_common::config::AmqpArgs;
use vadflow_common::s3::S3Args;
use vadflow_common::topology::{header_str, headers};
use vadflow_corpus::audio::{SENTENCES, compose, transcode};
use vadflow_producer::db::DbArgs;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    amqp: AmqpArgs,
    #[command(flatten)]
    s3: S3Args,
    #[arg(long, env = "VADFLOW_RESULTS_BUCKET")]
    bucket: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drop the demo's schema and queues, and make sure its bucket exists.
    Reset,
    /// Write the recordings and their ground truth into DIR.
    Prepare { dir: PathBuf },
    /// Wait until every registered file is done or failed.
    Wait {
        #[arg(long, default_value = "600")]
        timeout_s: u64,
    },
    /// Print the summary and check it against the ground truth in DIR.
    Report { dir: PathBuf },
}

/// (file name, sentence indexes, silences before each sentence and after the last)
const FILES: [(&str, &[usize], &[f64]); 5] = [
    ("interview.wav", &[0, 1, 2], &[0.8, 1.2, 1.5, 0.9]),
    ("voicemail.flac", &[2, 3], &[1.0, 0.9, 1.1]),
    ("meeting.mp3", &[4, 5, 6], &[0.6, 1.4, 1.0, 0.8]),
    ("support-call.ogg", &[7, 0], &[1.5, 1.2, 0.7]),
    ("voice-note.opus", &[3], &[0.7, 1.0]),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Reset => reset(&cli).await,
        Cmd::Prepare { dir } => prepare(dir),
        Cmd::Wait { timeout_s } => wait(&cli, Duration::from_secs(*timeout_s)).await,
        Cmd::Report { dir } => report(&cli, dir).await,
    }
}

async fn reset(cli: &Cli) -> anyhow::Result<()> {
    let pool = cli.db.connect().await?;
    let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", cli.db.db_schema);
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await?;
    let conn = vadflow_common::amqp::connect(cli.amqp.amqp_url.expose(), "vadflow-demo").await?;
    let ch = conn.create_channel().await?;
    for q in cli.amqp.topology()?.all_queues() {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    let _ = conn.close(200, "reset".into()).await;
    let s3 = cli.s3.client().await?;
    if let Err(e) = s3.create_bucket().bucket(&cli.bucket).send().await {
        let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).unwrap_or("");
        anyhow::ensure!(
            code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists",
            "create bucket {}: {}",
            cli.bucket,
            vadflow_common::s3::chain(&e)
        );
    }
    println!(
        "demo: reset schema {} and queues {}.*",
        cli.db.db_schema, cli.amqp.queue_prefix
    );
    Ok(())
}

fn prepare(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut truth = BTreeMap::new();
    for (name, sentences, gaps) in FILES {
        let texts: Vec<&str> = sentences.iter().map(|&i| SENTENCES[i]).collect();
        let speech = compose(&texts, gaps);
        let wav = dir.join(format!(".{name}.src.wav"));
        std::fs::write(&wav, speech.wav())?;
        if name.ends_with(".wav") {
            std::fs::rename(&wav, dir.join(name))?;
        } else {
            let ext = name.rsplit('.').next().unwrap_or("wav");
            transcode(&wav, ext, &dir.join(name));
            std::fs::remove_file(&wav)?;
        }
        truth.insert(name.to_owned(), speech.truth);
    }
    // A recording cut off after its header: what a crashed upload leaves behind.
    let mut corrupt = compose(&[SENTENCES[1]], &[0.5, 0.5]).wav();
    corrupt.truncate(30);
    std::fs::write(dir.join("corrupt.wav"), corrupt)?;
    std::fs::write(dir.join("truth.json"), serde_json::to_vec_pretty(&truth)?)
        .context("write truth.json")?;
    println!(
        "demo: wrote {} recordings and one corrupt file to {}",
        FILES.len(),
        dir.display()
    );
    Ok(())
}

async fn wait(cli: &Cli, timeout: Duration) -> anyhow::Result<()> {
    let pool = cli.db.connect().await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen("vadflow_files").await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audio_files WHERE status NOT IN ('done', 'failed')",
        )
        .fetch_one(&pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, listener.recv()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => anyhow::bail!(
                "{open} files still unfinished after {} s",
                timeout.as_secs()
            ),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    key: String,
    status: String,
    speech_seconds: Option<f64>,
    segment_count: Option<i32>,
    result_prefix: Option<String>,
    last_error: Option<String>,
}

async fn report(cli: &Cli, dir: &Path) -> anyhow::Result<()> {
    let truth: BTreeMap<String, Vec<(f64, f64)>> =
        serde_json::from_slice(&std::fs::read(dir.join("truth.json"))?)?;
    let pool = cli.db.connect().await?;
    let s3 = cli.s3.client().await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT key, status, speech_seconds, segment_count, result_prefix, last_error
         FROM audio_files ORDER BY key",
    )
    .fetch_all(&pool)
    .await?;
    let mut problems = Vec::new();
    println!();
    println!(
        "{:<34} {:<7} {:>8} {:>8}  {:<10} result key",
        "file", "status", "speech s", "segments", "vs truth"
    );
    println!("{}", "-".repeat(120));
    for r in &rows {
        let name = r.key.rsplit('/').next().unwrap_or(&r.key);
        let mut check = String::from("-");
        let key = r
            .result_prefix
            .as_ref()
            .map(|p| format!("{p}segments.json"));
        if let (Some(want), Some(k)) = (truth.get(name), &key) {
            let obj = s3.get_object().bucket(&cli.bucket).key(k).send().await;
            check = match obj {
                Ok(o) => {
                    let doc: serde_json::Value =
                        serde_json::from_slice(&o.body.collect().await?.into_bytes())?;
                    let got = vadflow_corpus::segments_of(&doc);
                    let worst = got
                        .iter()
                        .zip(want)
                        .map(|(g, w)| (g.0 - w.0).abs().max((g.1 - w.1).abs()))
                        .fold(0.0f64, f64::max);
                    if got.len() == want.len() && worst <= 0.3 {
                        format!("ok ±{worst:.2}s")
                    } else {
                        problems.push(format!("{name}: segments {got:?} vs truth {want:?}"));
                        "MISMATCH".into()
                    }
                }
                Err(e) => {
                    problems.push(format!("{name}: cannot read {k}: {e}"));
                    "MISSING".into()
                }
            };
        }
        if truth.contains_key(name) && r.status != "done" {
            problems.push(format!(
                "{name} is {}: {}",
                r.status,
                r.last_error.as_deref().unwrap_or("")
            ));
        }
        println!(
            "{:<34} {:<7} {:>8} {:>8}  {:<10} {}",
            name,
            r.status,
            r.speech_seconds.map_or("-".into(), |s| format!("{s:.2}")),
            r.segment_count.map_or("-".into(), |n| n.to_string()),
            check,
            key.map_or_else(
                || r.last_error.clone().unwrap_or_default(),
                |k| format!("s3://{}/{k}", cli.bucket)
            ),
        );
    }
    // Where the corrupt file went: its row, and the dead-letter queue.
    let corrupt = rows.iter().find(|r| r.key.ends_with("corrupt.wav"));
    match corrupt {
        Some(r) if r.status == "failed" => {}
        _ => problems.push("corrupt.wav is not failed".into()),
    }
    let topology = cli.amqp.topology()?;
    let conn = vadflow_common::amqp::connect(cli.amqp.amqp_url.expose(), "vadflow-demo").await?;
    let ch = conn.create_channel().await?;
    let depth = ch
        .queue_declare(
            topology.dead_letter_queue().as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?
        .message_count();
    let mut consumer = ch
        .basic_consume(
            topology.dead_letter_queue().as_str().into(),
            "vadflow-demo-peek".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut found = false;
    println!();
    println!("dead-letter queue {}:", topology.dead_letter_queue());
    for _ in 0..depth {
        let Some(Ok(d)) = consumer.next().await else {
            break;
        };
        let h = d.properties.headers().as_ref();
        let job = vadflow_common::Job::decode(&d.data).ok();
        let key = job.as_ref().map_or("<unreadable job>", |j| j.key.as_str());
        found |= key.ends_with("corrupt.wav");
        println!(
            "  {key}  reason={}  error={}",
            header_str(h, headers::REASON).unwrap_or_default(),
            header_str(h, headers::ERROR).unwrap_or_default()
        );
    }
    // Closing without acking leaves the dead letters where they are.
    let _ = conn.close(200, "peeked".into()).await;
    if !found {
        problems.push("corrupt.wav is not in the dead-letter queue".into());
    }
    println!();
    if problems.is_empty() {
        println!(
            "demo: OK: every good file is done and matches where speech was placed (±0.3 s); the corrupt file failed and is in the dead-letter queue"
        );
        Ok(())
    } else {
        for p in &problems {
            println!("demo: PROBLEM: {p}");
        }
        anyhow::bail!("{} problems", problems.len())
    }
}
