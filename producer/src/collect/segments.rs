//! `--store-segments`: where a done file's segments come from. A result event carries them up to
//! [`vadflow_common::wire::MAX_EVENT_SEGMENTS`]; for a file with more, they are read from its `segments.json`
//! before the event's transaction begins (never holding a transaction open across S3).

use super::CollectorStats;
use aws_sdk_s3::Client;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use vadflow_common::failure::{Failure, Reason, Retry};
use vadflow_common::session::Backoff;
use vadflow_common::wire::{Outcome, ResultEvent, SegmentScores, SegmentSpan};

/// Largest `segments.json` read (a 24-hour file with a segment every second is about 4 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// Reads segments that did not fit in their event.
#[derive(Debug, Clone)]
pub struct SegmentSource {
    client: Client,
}

#[derive(Deserialize)]
struct Document {
    segments: Vec<DocSegment>,
}

#[derive(Deserialize)]
struct DocSegment {
    start: f64,
    end: f64,
    #[serde(default)]
    channel: Option<u16>,
    // The segment's scores, when the worker wrote them.
    score_mean: Option<f32>,
    score_min: Option<f32>,
    rms_dbfs: Option<f32>,
    peak_dbfs: Option<f32>,
    clipped: Option<f32>,
    snr_db: Option<f32>,
}

impl DocSegment {
    fn scores(&self) -> Option<SegmentScores> {
        Some(SegmentScores(
            self.score_mean?,
            self.score_min?,
            self.rms_dbfs?,
            self.peak_dbfs?,
            self.clipped?,
            self.snr_db,
        ))
    }
}

/// Whether `event` needs its segments read from S3: a done file with segments the event does
/// not carry.
pub fn missing(event: &ResultEvent) -> bool {
    event.outcome == Outcome::Done
        && event.segment_list.is_none()
        && event.segments.is_some_and(|n| n > 0)
}

impl SegmentSource {
    pub fn new(client: Client) -> SegmentSource {
        SegmentSource { client }
    }

    /// Fills in `event`'s segments when it lacks them. Transient S3 failures are retried with
    /// backoff until `shutdown` (then `false`: leave the event unacked); a permanent one (no
    /// such document, too large, not valid) leaves the event without segments, logged and
    /// counted, so that the file's result is still recorded.
    pub async fn complete(
        &self,
        event: &mut ResultEvent,
        stats: &CollectorStats,
        shutdown: &CancellationToken,
    ) -> bool {
        if !missing(event) {
            return true;
        }
        let mut backoff = Backoff::new();
        loop {
            match self.read(event).await {
                Ok(list) => {
                    event.segment_list = Some(list);
                    return true;
                }
                Err(f) if f.retry() == Retry::Transient => {
                    let delay = backoff.next_delay();
                    tracing::warn!(job_id = %event.job_id, error = %f, retry_in_ms = delay.as_millis() as u64, "cannot read segments.json; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(f) => {
                    stats.segments_unavailable();
                    tracing::warn!(job_id = %event.job_id, error = %f, "segments not stored: segments.json unusable");
                    return true;
                }
            }
        }
    }

    async fn read(&self, event: &ResultEvent) -> Result<Vec<SegmentSpan>, Failure> {
        let (Some(bucket), Some(prefix)) = (&event.results_bucket, &event.results_prefix) else {
            return Err(Failure::new(
                Reason::MalformedMessage,
                "the result event names no results location",
            ));
        };
        let key = format!("{prefix}segments.json");
        let what = format!("get s3://{bucket}/{key}");
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| vadflow_common::s3::classify(&e, &what))?;
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            Failure::new(
                Reason::StorageUnavailable,
                format!("{what}: {}", vadflow_common::s3::chain(&e)),
            )
        })? {
            if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(Failure::new(
                    Reason::LimitExceeded,
                    format!("{what}: larger than {MAX_DOCUMENT_BYTES} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        parse(&bytes).map_err(|e| Failure::new(Reason::InvalidAudio, format!("{what}: {e}")))
    }
}

/// The segments of a `segments.json` document, in milliseconds as events carry them.
pub fn parse(bytes: &[u8]) -> Result<Vec<SegmentSpan>, String> {
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| format!("not a segments document: {e}"))?;
    doc.segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ok = s.start.is_finite() && s.end.is_finite() && s.start >= 0.0 && s.end > s.start;
            if !ok {
                return Err(format!("segment {i}: start {} end {}", s.start, s.end));
            }
            let ms = |t: f64| (t * 1000.0).round() as u64;
            Ok(SegmentSpan(ms(s.start), ms(s.end), s.channel, s.scores()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_to_milliseconds() {
        let doc = br#"{"schema_version":1,"segments":[{"start":0.51,"end":3.87},{"start":5.1,"end":8.94,"channel":2,
            "score_mean":0.9,"score_min":0.5,"rms_dbfs":-20.5,"peak_dbfs":-3.25,"clipped":0.0,"snr_db":null}]}"#;
        assert_eq!(
            parse(doc).expect("a valid document"),
            vec![
                SegmentSpan(510, 3870, None, None),
                SegmentSpan(
                    5100,
                    8940,
                    Some(2),
                    Some(SegmentScores(0.9, 0.5, -20.5, -3.25, 0.0, None))
                )
            ]
        );
        assert!(parse(br#"{"segments":[{"start":2.0,"end":1.0}]}"#).is_err());
        assert!(parse(b"not json").is_err());
    }
}
