//! One job, end to end: **fetch** the object as a stream, run the pipeline on a blocking thread
//! while the body downloads, and store the outputs. Returns the summary for the result event,
//! or a classified [`Failure`].

use crate::audio::pipeline::{Analysis, Params};
use crate::audio::render::Outputs;
use crate::audio::source;
use crate::results::process;
use crate::upload::S3Store;
use aws_sdk_s3::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use vadflow_common::keys::results_prefix;
use vadflow_common::s3::classify;
use vadflow_common::{Failure, Job, Reason};

/// Byte chunks buffered between the download and the decoder.
const CHUNKS_IN_FLIGHT: usize = 8;

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

/// Runs `job`. Never panics; every error is classified.
pub async fn run(ctx: Arc<JobContext>, job: &Job) -> Result<JobDone, Failure> {
    let uri = format!("s3://{}/{}", job.bucket, job.key);
    let fetch_started = std::time::Instant::now();
    let fetch_span =
        tracing::info_span!("fetch", otel.kind = "client", bucket = %job.bucket, key = %job.key);
    let object = tracing::Instrument::instrument(
        ctx.s3.get_object().bucket(&job.bucket).key(&job.key).send(),
        fetch_span,
    )
    .await
    .map_err(|e| classify(&e, &format!("download {uri}")))?;
    ctx.metrics
        .stage(crate::metrics::Stage::Fetch, fetch_started.elapsed());
    let max = ctx.params.limits.max_input_bytes;
    if let Some(len) = object.content_length()
        && u64::try_from(len).unwrap_or(0) > max
    {
        return Err(Failure::new(
            Reason::LimitExceeded,
            format!("{uri}: object is {len} bytes, more than the limit of {max} bytes"),
        ));
    }

    let (tx, source, status) = source::channel(CHUNKS_IN_FLIGHT, max);
    let idle = ctx.fetch_idle_timeout;
    let bytes_in = ctx.bytes_in.clone();
    let fetch_uri = uri.clone();
    let mut body = object.body;
    let fetch = tokio::spawn(async move {
        loop {
            let item = match tokio::time::timeout(idle, body.try_next()).await {
                Ok(Ok(Some(chunk))) => {
                    bytes_in.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok(chunk)
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => Err(Failure::new(
                    Reason::StorageUnavailable,
                    format!("download {fetch_uri}: {}", vadflow_common::s3::chain(&e)),
                )),
                Err(_) => Err(Failure::new(
                    Reason::Timeout,
                    format!("download {fetch_uri}: no data for {} s", idle.as_secs()),
                )),
            };
            let stop = item.is_err();
            // A closed channel means the decoder is done (or failed): stop downloading.
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });

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
        stages = "decode,resample,vad,segment,render,upload"
    );
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
    fetch.abort();
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
