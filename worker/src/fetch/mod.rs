//! **fetch**: the source object, streamed. One GET; a task pumps its body into a bounded channel
//! that the decoder reads as a blocking byte source ([`source`]), so a job holds a few chunks in
//! memory however long the object is. A stalled download fails the job (transiently) after the
//! idle timeout; an object over the size limit fails before a byte of its body is read.

pub mod source;

use crate::metrics::{Metrics, Stage};
use aws_sdk_s3::Client;
use source::{ChannelSource, SourceStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use vadflow_common::s3::classify;
use vadflow_common::{Failure, Job, Reason};

/// Byte chunks buffered between the download and the decoder.
const CHUNKS_IN_FLIGHT: usize = 8;

/// A download under way: the decoder's end of it, and the pump.
#[derive(Debug)]
pub struct Download {
    pub source: ChannelSource,
    /// What went wrong on the download side, if anything (read by the pipeline on error).
    pub status: Arc<SourceStatus>,
    /// Stops the download when dropped.
    pub pump: Pump,
}

/// The task moving the body into the channel; aborted when dropped.
#[derive(Debug)]
pub struct Pump(JoinHandle<()>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a fetch needs, apart from the job.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// Largest object accepted, in bytes.
    pub max_bytes: u64,
    /// A download with no data for this long fails.
    pub idle: Duration,
}

/// Starts downloading `s3://{bucket}/{key}` of `job`; returns once the response headers arrived.
pub async fn fetch(
    s3: &Client,
    job: &Job,
    limits: FetchLimits,
    bytes_in: Arc<AtomicU64>,
    metrics: &Metrics,
) -> Result<Download, Failure> {
    let uri = format!("s3://{}/{}", job.bucket, job.key);
    let started = std::time::Instant::now();
    let span =
        tracing::info_span!("fetch", otel.kind = "client", bucket = %job.bucket, key = %job.key);
    let object = tracing::Instrument::instrument(
        s3.get_object().bucket(&job.bucket).key(&job.key).send(),
        span,
    )
    .await
    .map_err(|e| classify(&e, &format!("download {uri}")))?;
    metrics.stage(Stage::Fetch, started.elapsed());
    let max = limits.max_bytes;
    if let Some(len) = object.content_length()
        && u64::try_from(len).unwrap_or(0) > max
    {
        return Err(Failure::new(
            Reason::LimitExceeded,
            format!("{uri}: object is {len} bytes, more than the limit of {max} bytes"),
        ));
    }

    let (tx, source, status) = source::channel(CHUNKS_IN_FLIGHT, max);
    let idle = limits.idle;
    let mut body = object.body;
    let pump = tokio::spawn(async move {
        loop {
            let item = match tokio::time::timeout(idle, body.try_next()).await {
                Ok(Ok(Some(chunk))) => {
                    bytes_in.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok(chunk)
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => Err(Failure::new(
                    Reason::StorageUnavailable,
                    format!("download {uri}: {}", vadflow_common::s3::chain(&e)),
                )),
                Err(_) => Err(Failure::new(
                    Reason::Timeout,
                    format!("download {uri}: no data for {} s", idle.as_secs()),
                )),
            };
            let stop = item.is_err();
            // A closed channel means the decoder is done (or failed): stop downloading.
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    Ok(Download {
        source,
        status,
        pump: Pump(pump),
    })
}
