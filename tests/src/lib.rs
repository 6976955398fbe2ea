//! Test harness for vadflow's integration tests, against the real RabbitMQ, PostgreSQL and S3
//! server of the local stack (`deploy/local/up.sh`).
//!
//! Every test gets its own queue prefix, database schema and key prefix ([`TestCtx`]), so tests
//! run in parallel without seeing each other's data. Waiting is done on events (PostgreSQL
//! notifications, broker deliveries), each bounded by a deadline so a broken build fails instead
//! of hanging.

pub use vadflow_corpus::{audio, corpus, eval, segments_of};

pub mod broker;
pub mod poison;
pub mod proxy;
pub mod s3fault;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vadflow_common::Topology;
use vadflow_common::config::AmqpArgs;
use vadflow_common::s3::S3Args;
use vadflow_producer::db::DbArgs;

/// Default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The shared S3 bucket for tests; each test writes under its own prefix.
pub const BUCKET: &str = "vadflow-test";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Connection settings of the stack, from the environment with the local stack's defaults.
#[derive(Debug, Clone)]
pub struct Stack {
    pub amqp_url: String,
    pub database_url: String,
    pub s3: S3Args,
}

impl Stack {
    pub fn from_env() -> Stack {
        // The AWS SDK must never look for cloud metadata: tests talk to loopback only.
        require_metadata_disabled();
        Stack {
            amqp_url: env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            database_url: env_or(
                "DATABASE_URL",
                "postgres://vadflow:vadflow@127.0.0.1:5432/vadflow",
            ),
            s3: S3Args::local(
                &env_or("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                &env_or("AWS_ACCESS_KEY_ID", "vadflow-dev"),
                &env_or("AWS_SECRET_ACCESS_KEY", "vadflow-dev-secret"),
            ),
        }
    }
}

fn require_metadata_disabled() {
    assert_eq!(
        std::env::var("AWS_EC2_METADATA_DISABLED").as_deref(),
        Ok("true"),
        "run the tests with AWS_EC2_METADATA_DISABLED=true (tests/run.sh sets it)"
    );
}

/// Path of a workspace binary (`worker`, `producer`), built by `cargo test` alongside the tests.
pub fn bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (tests/run.sh), which builds it",
        path.display()
    );
    path
}

/// A row of `audio_files`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FileRow {
    pub id: i64,
    pub bucket: String,
    pub key: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub last_reason: Option<String>,
    pub result_bucket: Option<String>,
    pub result_prefix: Option<String>,
    pub speech_seconds: Option<f64>,
    pub segment_count: Option<i32>,
    pub duration_seconds: Option<f64>,
}

/// A running in-process service (worker or collector).
#[derive(Debug)]
pub struct Running {
    pub token: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops it and waits for a clean exit.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .map_err(|_| anyhow::anyhow!("did not stop within the deadline"))??
    }
}

/// One test's private world.
#[derive(Debug)]
pub struct TestCtx {
    pub id: String,
    pub stack: Stack,
    pub topology: Topology,
    pub amqp: AmqpArgs,
    pub db: DbArgs,
    pub pool: PgPool,
    pub s3: aws_sdk_s3::Client,
    /// Key prefix of this test's source objects, ending in `/`.
    pub prefix: String,
    /// Results prefix of this test, ending in `/`.
    pub results_prefix: String,
}

impl TestCtx {
    /// Creates the test's schema (migrated), topology and S3 bucket.
    pub async fn new(name: &str) -> TestCtx {
        let stack = Stack::from_env();
        let short = uuid::Uuid::now_v7().simple().to_string();
        let id = format!("{name}-{}", &short[short.len() - 10..]);
        let amqp = AmqpArgs {
            amqp_url: vadflow_common::redact::SecretUrl::new(stack.amqp_url.clone()),
            queue_prefix: format!("t-{id}"),
            amqp_ca_file: None,
            retry_base: Duration::from_millis(200),
        };
        let topology = amqp.topology().expect("valid test topology");
        let db = DbArgs {
            database_url: vadflow_common::redact::SecretUrl::new(stack.database_url.clone()),
            db_schema: format!("t_{}", id.replace('-', "_")),
            db_max_connections: 4,
            connect_timeout: Duration::from_secs(30),
        };
        let pool = db
            .connect()
            .await
            .expect("connect to PostgreSQL (is deploy/local/up.sh run?)");
        db.migrate(&pool).await.expect("migrate");
        let s3 = stack.s3.client().await.expect("S3 client");
        match s3.create_bucket().bucket(BUCKET).send().await {
            Ok(_) => {}
            Err(e) => {
                let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).unwrap_or("");
                assert!(
                    code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists",
                    "create bucket {BUCKET}: {}",
                    vadflow_common::s3::chain(&e)
                );
            }
        }
        TestCtx {
            prefix: format!("{id}/audio/"),
            results_prefix: format!("{id}/results/"),
            id,
            stack,
            topology,
            amqp,
            db,
            pool,
            s3,
        }
    }

    /// Uploads an object to the test bucket.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {}", vadflow_common::s3::chain(&e)));
    }

    /// Reads an object, or `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(
            out.body
                .collect()
                .await
                .expect("read body")
                .into_bytes()
                .to_vec(),
        )
    }

    /// Inserts a file reference directly, with a chosen creation time.
    pub async fn insert_file(&self, key: &str, created_at: chrono::DateTime<chrono::Utc>) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO audio_files (bucket, key, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(BUCKET)
        .bind(key)
        .bind(created_at)
        .fetch_one(&self.pool)
        .await
        .expect("insert file")
    }

    pub async fn files(&self) -> Vec<FileRow> {
        sqlx::query_as(
            "SELECT id, bucket, key, status, attempts, last_error, last_reason, result_bucket,
                    result_prefix, speech_seconds, segment_count, duration_seconds
             FROM audio_files ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .expect("select files")
    }

    /// Uploads and registers `files` (name, bytes) under the test's prefix, enqueues them, runs a
    /// worker and the collector until every row has an outcome, asserts each is `done`, and
    /// returns their `segments.json` documents in order.
    pub async fn process_files(&self, files: &[(&str, Vec<u8>)]) -> Vec<serde_json::Value> {
        let now = chrono::Utc::now();
        for (name, bytes) in files {
            let key = format!("{}{name}", self.prefix);
            self.put(&key, bytes.clone()).await;
            self.insert_file(&key, now - chrono::Duration::hours(1))
                .await;
        }
        let report = self.enqueue("yesterday", "now", None, false).await;
        assert_eq!(report.published, files.len() as u64);
        let worker = self.spawn_worker(self.worker_args()).await;
        let collector = self.spawn_collector();
        let rows = self
            .wait_files("every file has an outcome", |rows| {
                rows.iter()
                    .all(|r| r.status == "done" || r.status == "failed")
            })
            .await;
        let mut docs = Vec::new();
        for (name, _) in files {
            let key = format!("{}{name}", self.prefix);
            let row = rows.iter().find(|r| r.key == key).expect("row");
            assert_eq!(row.status, "done", "{key}: {row:?}");
            let doc = self
                .get(&format!(
                    "{}{BUCKET}/{key}/segments.json",
                    self.results_prefix
                ))
                .await
                .expect("segments.json");
            docs.push(serde_json::from_slice(&doc).expect("json"));
        }
        worker.stop().await.expect("worker stops cleanly");
        collector.stop().await.expect("collector stops cleanly");
        docs
    }

    /// Waits, on status-change notifications, until `done(rows)` holds; returns the rows.
    pub async fn wait_files(&self, what: &str, done: impl Fn(&[FileRow]) -> bool) -> Vec<FileRow> {
        let mut listener = PgListener::connect_with(&self.pool).await.expect("listen");
        listener.listen("vadflow_files").await.expect("listen");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let rows = self.files().await;
            if done(&rows) {
                return rows;
            }
            match tokio::time::timeout_at(deadline, listener.recv()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("notification stream failed: {e}"),
                Err(_) => panic!("timed out waiting for {what}; rows: {rows:#?}"),
            }
        }
    }

    /// Runs `producer enqueue` in-process.
    pub async fn enqueue(
        &self,
        since: &str,
        until: &str,
        limit: Option<u32>,
        dry_run: bool,
    ) -> vadflow_producer::enqueue::EnqueueReport {
        let args = vadflow_producer::cli::EnqueueArgs {
            db: self.db.clone(),
            amqp: self.amqp.clone(),
            since: since.into(),
            until: until.into(),
            limit,
            dry_run,
            tz: "UTC".into(),
            stale_after: vadflow_producer::when::Stale(None),
        };
        vadflow_producer::enqueue::run(&args, &CancellationToken::new())
            .await
            .expect("enqueue")
    }

    /// Worker settings for this test, parsed from a `worker run` command line the way the binary
    /// parses its own; adjust the fields before [`TestCtx::spawn_worker`].
    pub fn worker_args(&self) -> vadflow_worker::cli::RunArgs {
        let s3 = &self.stack.s3;
        let worker_id = format!("test-worker-{}", self.id);
        let argv: Vec<&str> = vec![
            "worker",
            "run",
            "--amqp-url",
            &self.stack.amqp_url,
            "--queue-prefix",
            &self.amqp.queue_prefix,
            "--retry-base",
            "200ms",
            "--s3-endpoint",
            s3.endpoint.as_deref().unwrap_or_default(),
            "--s3-region",
            s3.region.as_deref().unwrap_or_default(),
            "--s3-access-key-id",
            s3.access_key_id.as_deref().unwrap_or_default(),
            "--s3-secret-access-key",
            s3.secret_access_key
                .as_ref()
                .map(|s| s.expose())
                .unwrap_or_default(),
            "--results-bucket",
            BUCKET,
            "--results-prefix",
            &self.results_prefix,
            "--concurrency",
            "2",
            "--max-attempts",
            "3",
            "--shutdown-timeout",
            "20s",
            "--fetch-idle-timeout",
            "10s",
            "--http-addr",
            "127.0.0.1:0",
            "--worker-id",
            &worker_id,
        ];
        match vadflow_worker::cli::parse(argv) {
            Ok(vadflow_worker::cli::Command::Run(args)) => *args,
            other => panic!("the test's worker command line: {other:?}"),
        }
    }

    /// Starts a worker in this process, through the builder `worker run` uses.
    pub async fn spawn_worker(&self, args: vadflow_worker::cli::RunArgs) -> RunningWorker {
        let worker = vadflow_worker::Worker::build(args)
            .await
            .expect("the worker builds");
        let (ready, metrics, http) = (worker.readiness(), worker.metrics(), worker.http_addr());
        let token = CancellationToken::new();
        let handle = tokio::spawn(worker.run_until_stopped(token.clone()));
        RunningWorker {
            running: Running { token, handle },
            ready,
            metrics,
            http,
        }
    }

    /// Collector settings for this test; adjust them before [`TestCtx::spawn_collector_with`].
    pub fn collect_args(&self) -> vadflow_producer::cli::CollectArgs {
        vadflow_producer::cli::CollectArgs {
            db: self.db.clone(),
            amqp: self.amqp.clone(),
            prefetch: 64,
            exit_when_idle: None,
            http_addr: None,
            store_segments: false,
            queue_poll_interval: Duration::from_secs(15),
            s3: self.stack.s3.clone(),
        }
    }

    /// Starts the collector in this process, through the builder `producer collect` uses.
    pub fn spawn_collector(&self) -> Running {
        self.spawn_collector_with(self.collect_args())
    }

    /// Starts the collector with `args`, through the builder `producer collect` uses.
    pub fn spawn_collector_with(&self, args: vadflow_producer::cli::CollectArgs) -> Running {
        let token = CancellationToken::new();
        let t = token.clone();
        let handle = tokio::spawn(async move {
            vadflow_producer::collect::Collector::build(args)
                .await?
                .run_until_stopped(t)
                .await
        });
        Running { token, handle }
    }

    /// The environment of a `producer` or `worker` process for this test: its broker, schema,
    /// queue prefix, S3 and results location; JSON logs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let s3 = &self.stack.s3;
        vec![
            ("AMQP_URL", self.stack.amqp_url.clone()),
            ("DATABASE_URL", self.stack.database_url.clone()),
            ("VADFLOW_QUEUE_PREFIX", self.amqp.queue_prefix.clone()),
            ("VADFLOW_RETRY_BASE", "200ms".into()),
            ("VADFLOW_DB_SCHEMA", self.db.db_schema.clone()),
            ("AWS_ENDPOINT_URL", s3.endpoint.clone().unwrap_or_default()),
            ("AWS_REGION", s3.region.clone().unwrap_or_default()),
            (
                "AWS_ACCESS_KEY_ID",
                s3.access_key_id.clone().unwrap_or_default(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                s3.secret_access_key
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("VADFLOW_RESULTS_BUCKET", BUCKET.into()),
            ("VADFLOW_RESULTS_PREFIX", self.results_prefix.clone()),
            ("LOG_FORMAT", "json".into()),
            ("VADFLOW_HTTP_ADDR", "127.0.0.1:0".into()),
            ("RUST_LOG", "info".into()),
        ]
    }

    /// A `producer` or `worker` process for this test, with [`TestCtx::env`] and nothing else
    /// inherited but `PATH`.
    pub fn command(&self, binary: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(bin(binary));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs `producer <args>` to completion; returns its exit code, stdout and stderr.
    pub async fn producer(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = tokio::time::timeout(DEADLINE, self.command("producer").args(args).output())
            .await
            .unwrap_or_else(|_| panic!("producer {args:?} did not finish"))
            .expect("run producer");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Deletes the test's queues, exchanges and schema. Objects stay under the test's prefix.
    pub async fn cleanup(self) {
        let (conn, ch) = self.channel().await;
        for q in self.topology.all_queues() {
            let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
        }
        for ex in [
            self.topology.work_exchange(),
            self.topology.dead_exchange(),
            self.topology.retry_exchange(),
            self.topology.results_exchange(),
        ] {
            let _ = ch
                .exchange_delete(ex.as_str().into(), Default::default())
                .await;
        }
        let _ = conn.close(200, "cleanup".into()).await;
        let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.db.db_schema);
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&self.pool)
            .await;
    }
}

/// A worker running in the test's process, with its readiness, metrics and health endpoint.
#[derive(Debug)]
pub struct RunningWorker {
    pub running: Running,
    pub ready: vadflow_worker::consumer::Readiness,
    pub metrics: Arc<vadflow_worker::metrics::Metrics>,
    pub http: std::net::SocketAddr,
}

impl RunningWorker {
    /// Stops it and waits for a clean exit.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await
    }
}

/// Sends `sig` (e.g. `-TERM`, `-INT`) to a child process.
pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("the process is running").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// Sends SIGTERM and waits for the process to exit; returns its exit code.
pub async fn terminate(mut child: tokio::process::Child) -> Option<i32> {
    signal(&child, "-TERM");
    tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the process exits after SIGTERM")
        .expect("wait")
        .code()
}

/// `wav` converted by ffmpeg with `args` into a `.{ext}` file's bytes. Each call has its own
/// folder: the tests of one binary run in parallel.
pub fn transcode(wav: &[u8], args: &[&str], ext: &str) -> Vec<u8> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "vadflow-transcode-{}-{call}-{ext}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (src, out) = (dir.join("in.wav"), dir.join(format!("out.{ext}")));
    std::fs::write(&src, wav).expect("write");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&src)
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg (deploy/local/up.sh installs it)");
    assert!(ok.success(), "ffmpeg {args:?}");
    let bytes = std::fs::read(&out).expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}
