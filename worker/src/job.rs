//! One job, end to end: the orchestration of the stages, each in its own file — **fetch**
//! (`fetch/`), then on a blocking thread **decode → resample → vad → segment** (`audio/`),
//! **render** and **store** (`outputs.rs`, `store/`). Publishing the result event and the ack
//! are the consumer's (`consumer.rs`, `settle.rs`). Returns the summary for the result event, or
//! a classified [`Failure`].

use crate::audio::pipeline::{Analysis, Params};
use crate::audio::render::Outputs;
use crate::fetch::{Download, FetchLimits, fetch};
use crate::outputs::process;
use crate::store::S3Store;
use aws_sdk_s3::Client;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use vadflow_common::keys::results_prefix;
use vadflow_common::{Failure, Job, Reason};

/// Everything a job needs, shared by all jobs of a worker.
#[derive(Debug)]
pub struct JobContext {
    pub s3: Client,
    pub results_bucket: String,
    pub results_prefix: String,
    pub params: Params,
    pub outputs: Outputs,
    pub fetch_idle_timeout: Duration,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A finished job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDone {
    pub analysis: Analysis,
    pub results_prefix: String,
}

/// Runs `job`: fetch → (decode → resample → vad → segment → render → store, on a blocking
/// thread, while the body downloads). Never panics; every error is classified.
pub async fn run(ctx: Arc<JobContext>, job: &Job) -> Result<JobDone, Failure> {
    let uri = format!("s3://{}/{}", job.bucket, job.key);
    let limits = FetchLimits {
        max_bytes: ctx.params.limits.max_input_bytes,
        idle: ctx.fetch_idle_timeout,
    };
    let download = fetch(&ctx.s3, job, limits, ctx.bytes_in.clone(), &ctx.metrics).await?;

    let extension = std::path::Path::new(&job.key)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let prefix = results_prefix(&ctx.results_prefix, &job.bucket, &job.key);
    let mut store = S3Store {
        handle: tokio::runtime::Handle::current(),
        client: ctx.s3.clone(),
        bucket: ctx.results_bucket.clone(),
        prefix: prefix.clone(),
        bytes_out: ctx.bytes_out.clone(),
    };
    let blocking_ctx = ctx.clone();
    let process_started = std::time::Instant::now();
    let process_span = tracing::info_span!(
        "process",
        stages = "decode,resample,vad,segment,render,store"
    );
    let Download {
        source,
        status,
        pump,
    } = download;
    let result = tokio::task::spawn_blocking(move || {
        let _entered = process_span.enter();
        process(
            Box::new(source),
            extension.as_deref(),
            &uri,
            &blocking_ctx.params,
            &blocking_ctx.outputs,
            Some(&status),
            &mut store,
        )
        .map_err(|f| {
            if f.message.contains(&uri) {
                f
            } else {
                f.context(&uri)
            }
        })
    })
    .await;
    drop(pump);
    ctx.metrics
        .stage(crate::metrics::Stage::Process, process_started.elapsed());
    match result {
        Ok(Ok(analysis)) => Ok(JobDone {
            analysis,
            results_prefix: prefix,
        }),
        Ok(Err(f)) => Err(f),
        Err(join) => Err(Failure::new(
            Reason::Internal,
            format!(
                "s3://{}/{}: processing task failed: {join}",
                job.bucket, job.key
            ),
        )),
    }
}
