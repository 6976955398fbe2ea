//! The vadflow worker: consumes jobs, finds the speech in the audio, stores the results.
//!
//! Stages, each a file: **fetch** ([`fetch`]) → **decode** → **resample** → **vad** →
//! **segment** ([`audio`]) → **render** ([`audio::render`], driven by [`outputs`]) → **store**
//! ([`store`]); [`job`] runs them for one job, [`consumer`] takes jobs and settles failures
//! ([`settle`]), [`local`] runs them on local files.

pub mod audio;
pub mod cli;
pub mod consumer;
pub mod eval;
pub mod events;
pub mod fetch;
pub mod job;
pub mod local;
pub mod metrics;
pub mod outputs;
pub mod report;
pub mod resegment;
pub mod settle;
pub mod store;
pub mod tune;

use anyhow::Context;
use cli::RunArgs;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use vadflow_common::keys;

/// Jobs in flight per CPU by default. A job spends much of its time waiting on storage and the
/// broker (a request to S3 takes milliseconds to tens of milliseconds), and its CPU work runs on
/// a thread of its own, so a few jobs per CPU keep the CPUs busy: on 1-second files, 4 per CPU
/// gave 1.5× the jobs/s of 2 per CPU and 2.7× that of 1 (docs/performance.md).
pub const JOBS_PER_CPU: usize = 4;

/// The distributed worker, built from its settings and ready to run. `main` and the tests use
/// this one builder, so both run the same defaults, validation and health endpoint.
#[derive(Debug)]
pub struct Worker {
    config: consumer::ConsumerConfig,
    jobs: Arc<job::JobContext>,
    ready: consumer::Readiness,
    metrics: Arc<metrics::Metrics>,
    http: tokio::net::TcpListener,
    http_addr: std::net::SocketAddr,
}

impl Worker {
    /// Validates `args`, builds the S3 client and binds the health endpoint (fails fast on any
    /// of them); connects to nothing yet.
    pub async fn build(args: RunArgs) -> anyhow::Result<Worker> {
        let (params, outputs) = args.analysis.resolve()?;
        keys::validate_bucket(&args.results_bucket).context("--results-bucket")?;
        keys::validate_prefix(&args.results_prefix).context("--results-prefix")?;
        anyhow::ensure!(args.max_attempts >= 1, "--max-attempts must be at least 1");
        let topology = args.amqp.topology()?;
        let concurrency = args
            .concurrency
            .unwrap_or_else(|| {
                JOBS_PER_CPU * std::thread::available_parallelism().map_or(1, |n| n.get())
            })
            .max(1);
        let prefetch = args
            .prefetch
            .unwrap_or_else(|| u16::try_from(concurrency * 2).unwrap_or(u16::MAX))
            .max(1);
        let s3 = args.s3.client().await?;
        let metrics = Arc::new(metrics::Metrics::default());
        let jobs = Arc::new(job::JobContext {
            s3,
            results_bucket: args.results_bucket.clone(),
            results_prefix: args.results_prefix.clone(),
            params,
            outputs,
            fetch_idle_timeout: args.fetch_idle_timeout,
            bytes_in: metrics.bytes_in.clone(),
            bytes_out: metrics.bytes_out.clone(),
            metrics: metrics.clone(),
        });
        let http = tokio::net::TcpListener::bind(args.http_addr)
            .await
            .with_context(|| format!("listen on --http-addr {}", args.http_addr))?;
        let http_addr = http.local_addr()?;
        let config = consumer::ConsumerConfig {
            amqp_url: args.amqp.amqp_url.clone(),
            amqp_ca_pem: args.amqp.ca_pem()?,
            topology,
            worker_id: args
                .worker_id
                .clone()
                .unwrap_or_else(vadflow_common::config::instance_id),
            concurrency,
            prefetch,
            max_attempts: args.max_attempts,
            shutdown_timeout: args.shutdown_timeout,
        };
        Ok(Worker {
            config,
            jobs,
            ready: consumer::Readiness::default(),
            metrics,
            http,
            http_addr,
        })
    }

    /// The bound address of `/healthz`, `/readyz` and `/metrics` (useful with port 0).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http_addr
    }

    /// Readiness, as `/readyz` reports it.
    pub fn readiness(&self) -> consumer::Readiness {
        self.ready.clone()
    }

    /// The worker's metrics, as `/metrics` reports them.
    pub fn metrics(&self) -> Arc<metrics::Metrics> {
        self.metrics.clone()
    }

    /// Serves the health endpoint and consumes jobs until `shutdown` is cancelled, then drains.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let probe = Arc::new(Probe {
            metrics: self.metrics,
            ready: self.ready.clone(),
        });
        let addr = vadflow_common::http::serve_on(self.http, probe, shutdown.clone())?;
        tracing::info!(addr = %addr, "{}", events::msg::SERVING);
        consumer::run(self.config, self.jobs, self.ready, shutdown).await
    }
}

/// Runs the distributed worker until `shutdown` is cancelled.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    Worker::build(args).await?.run_until_stopped(shutdown).await
}

/// What the worker's HTTP endpoint reports.
#[derive(Debug)]
struct Probe {
    metrics: Arc<metrics::Metrics>,
    ready: consumer::Readiness,
}

impl vadflow_common::http::Probe for Probe {
    fn ready(&self) -> bool {
        self.ready.get()
    }
    fn metrics(&self) -> String {
        self.metrics.render(self.ready.get())
    }
}
