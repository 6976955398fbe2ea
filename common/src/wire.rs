//! The wire format: jobs (producer → worker) and result events (worker → collector).
//!
//! Both are MessagePack maps with named fields (`rmp_serde::to_vec_named`) and a version field
//! `v`, so that fields can be added without breaking older readers; unknown fields are ignored.
//! `docs/wire-format.md` documents the format for other languages.

use crate::failure::{Failure, Reason};
use crate::keys;
use serde::{Deserialize, Serialize};

/// The wire-format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Messages larger than this are rejected before MessagePack parsing.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The AMQP content type of every vadflow message.
pub const CONTENT_TYPE: &str = "application/msgpack";
/// Longest accepted job id, in bytes.
pub const MAX_JOB_ID_BYTES: usize = 128;
/// Longest accepted external id (the catalog's own id of a file), in bytes.
pub const MAX_EXTERNAL_ID_BYTES: usize = 256;
/// Most segments a result event carries (at most about 45 bytes each with their scores, so
/// at most ~45 KB of the 64 KB message limit). A file with more carries none, and the
/// collector reads them from the file's `segments.json`.
pub const MAX_EVENT_SEGMENTS: usize = 1000;

/// One unit of work: find the speech in `s3://{bucket}/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Wire-format version, [`VERSION`].
    pub v: u32,
    /// Unique id of this job (the producer uses a UUIDv7); also the AMQP `message_id`.
    pub job_id: String,
    /// The source bucket.
    pub bucket: String,
    /// The source object key.
    pub key: String,
    /// The database row of the file, when the job came from the producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<i64>,
    /// The object's size in bytes, when known. A hint only: limits apply to the bytes read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The catalog's own id of the file (`register --sql`'s `external_id`), carried into the
    /// result event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// One speech segment in a result event: start and end in milliseconds from the start of the
/// audio (as `segments.json` rounds them), the 1-based channel when channels were analysed
/// separately, and the segment's scores when the worker measured them. A MessagePack array
/// `[start_ms, end_ms, channel|nil, scores|nil]` (a 3-element array reads as no scores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentSpan(
    pub u64,
    pub u64,
    pub Option<u16>,
    #[serde(default)] pub Option<SegmentScores>,
);

/// A segment's scores as `segments.json` has them (`docs/segments-schema.md`): a MessagePack
/// array `[score_mean, score_min, rms_dbfs, peak_dbfs, clipped, snr_db|nil]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentScores(pub f32, pub f32, pub f32, pub f32, pub f32, pub Option<f32>);

impl SegmentScores {
    /// The scores as a JSON object named as in `segments.json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "score_mean": self.0,
            "score_min": self.1,
            "rms_dbfs": self.2,
            "peak_dbfs": self.3,
            "clipped": self.4,
            "snr_db": self.5,
        })
    }
}

impl SegmentSpan {
    pub fn start_ms(&self) -> u64 {
        self.0
    }
    pub fn end_ms(&self) -> u64 {
        self.1
    }
    pub fn channel(&self) -> Option<u16> {
        self.2
    }
    pub fn scores(&self) -> Option<SegmentScores> {
        self.3
    }
}

/// What became of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Results are stored.
    Done,
    /// The job failed for good and was dead-lettered.
    Failed,
    /// The job failed transiently and was scheduled for another attempt.
    Retrying,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Retrying => "retrying",
        }
    }
}

/// The outcome of one attempt at a job, published by the worker before it acks the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEvent {
    pub v: u32,
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<i64>,
    pub bucket: String,
    pub key: String,
    pub outcome: Outcome,
    /// 1-based attempt number that produced this event.
    pub attempt: u32,
    pub worker_id: String,
    /// When the attempt finished, in milliseconds since the Unix epoch.
    pub finished_at_ms: i64,
    /// Bucket holding the results (done only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_bucket: Option<String>,
    /// Key prefix of the results, ending in `/` (done only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_prefix: Option<String>,
    /// Decoded audio duration in seconds (done only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Total speech in seconds (done only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_s: Option<f64>,
    /// Number of speech segments (done only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    /// Failure class (failed and retrying only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Failure message (failed and retrying only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The job's `external_id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The speech segments (done only), when there are at most [`MAX_EVENT_SEGMENTS`]; absent
    /// otherwise (read `segments.json` under the results prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_list: Option<Vec<SegmentSpan>>,
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("message is {0} bytes, more than the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("message is empty")]
    Empty,
    #[error("message is not a valid vadflow MessagePack map: {0}")]
    Malformed(String),
    #[error("message has wire-format version {0}; this build reads version {VERSION}")]
    UnsupportedVersion(u32),
    #[error("field {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

impl WireError {
    pub fn reason(&self) -> Reason {
        match self {
            WireError::TooLarge(_) => Reason::LimitExceeded,
            WireError::UnsupportedVersion(_) => Reason::UnsupportedVersion,
            WireError::InvalidField { field, .. } if *field == "bucket" || *field == "key" => {
                Reason::InvalidKey
            }
            WireError::Empty | WireError::Malformed(_) | WireError::InvalidField { .. } => {
                Reason::MalformedMessage
            }
        }
    }
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Failure {
        Failure::new(e.reason(), e.to_string())
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<u32>,
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.is_empty() {
        return Err(WireError::Empty);
    }
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let probe: VersionProbe =
        rmp_serde::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    match probe.v {
        None => return Err(WireError::Malformed("missing field `v`".into())),
        Some(VERSION) => {}
        Some(other) => return Err(WireError::UnsupportedVersion(other)),
    }
    rmp_serde::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

impl Job {
    /// A new job for a source object, with a fresh time-ordered id.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Job {
        Job {
            v: VERSION,
            job_id: uuid::Uuid::now_v7().to_string(),
            bucket: bucket.into(),
            key: key.into(),
            file_id: None,
            size: None,
            external_id: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers into a Vec cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Parses and validates a job: size cap, version, and every field.
    pub fn decode(bytes: &[u8]) -> Result<Job, WireError> {
        let job = Job::parse(bytes)?;
        job.validate()?;
        Ok(job)
    }

    /// Parses a job (size cap, version, shape) without checking its fields' values: a consumer
    /// that must report a bad field against the job's own ids calls [`Job::validate`] next.
    pub fn parse(bytes: &[u8]) -> Result<Job, WireError> {
        decode(bytes)
    }

    /// Checks the fields of a job.
    pub fn validate(&self) -> Result<(), WireError> {
        let id_ok = !self.job_id.is_empty()
            && self.job_id.len() <= MAX_JOB_ID_BYTES
            && self
                .job_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !id_ok {
            return Err(WireError::InvalidField {
                field: "job_id",
                reason: format!(
                    "must be 1 to {MAX_JOB_ID_BYTES} characters of A-Z a-z 0-9 - _ . :"
                ),
            });
        }
        keys::validate_bucket(&self.bucket).map_err(|f| WireError::InvalidField {
            field: "bucket",
            reason: f.message,
        })?;
        keys::validate_key(&self.key).map_err(|f| WireError::InvalidField {
            field: "key",
            reason: f.message,
        })?;
        if let Some(id) = &self.external_id {
            validate_external_id(id).map_err(|reason| WireError::InvalidField {
                field: "external_id",
                reason,
            })?;
        }
        Ok(())
    }
}

/// An external id is 1 to [`MAX_EXTERNAL_ID_BYTES`] bytes with no control characters.
pub fn validate_external_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_EXTERNAL_ID_BYTES || id.chars().any(char::is_control) {
        return Err(format!(
            "must be 1 to {MAX_EXTERNAL_ID_BYTES} bytes with no control characters"
        ));
    }
    Ok(())
}

impl ResultEvent {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<ResultEvent, WireError> {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            v: VERSION,
            job_id: "0192f0e4-1c2d-7b3a-9f00-1234567890ab".into(),
            bucket: "audio".into(),
            key: "calls/2026/a.wav".into(),
            file_id: Some(42),
            size: Some(1234),
            external_id: Some("call-0042".into()),
        }
    }

    #[test]
    fn job_round_trips_with_named_fields() {
        let bytes = job().encode();
        assert_eq!(Job::decode(&bytes), Ok(job()));
        // Named fields: the map carries its keys, so other languages can read it.
        let value: rmpv_like::Map = rmp_serde::from_slice(&bytes).expect("a map");
        assert!(value.0.contains_key("job_id") && value.0.contains_key("key"));
    }

    mod rmpv_like {
        #[derive(serde::Deserialize)]
        pub struct Map(pub std::collections::BTreeMap<String, serde::de::IgnoredAny>);
    }

    #[test]
    fn unknown_fields_are_ignored_and_optional_ones_may_be_missing() {
        #[derive(Serialize)]
        struct Newer<'a> {
            v: u32,
            job_id: &'a str,
            bucket: &'a str,
            key: &'a str,
            priority: u8,
        }
        let bytes = rmp_serde::to_vec_named(&Newer {
            v: 1,
            job_id: "j1",
            bucket: "audio",
            key: "a.wav",
            priority: 3,
        })
        .expect("encode");
        let parsed = Job::decode(&bytes).expect("decodes");
        assert_eq!(parsed.file_id, None);
        assert_eq!(parsed.key, "a.wav");
    }

    #[test]
    fn rejects_bad_messages_with_the_right_reason() {
        assert_eq!(
            Job::decode(b"").map_err(|e| e.reason()),
            Err(Reason::MalformedMessage)
        );
        assert_eq!(
            Job::decode(b"\xc1\xc1garbage").map_err(|e| e.reason()),
            Err(Reason::MalformedMessage)
        );
        let big = vec![0x90u8; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            Job::decode(&big).map_err(|e| e.reason()),
            Err(Reason::LimitExceeded)
        );

        let mut j = job();
        j.v = 2;
        assert_eq!(
            Job::decode(&j.encode()),
            Err(WireError::UnsupportedVersion(2))
        );

        let mut j = job();
        j.key = "../etc/passwd".into();
        assert_eq!(
            Job::decode(&j.encode()).map_err(|e| e.reason()),
            Err(Reason::InvalidKey)
        );

        let mut j = job();
        j.job_id = "has space".into();
        let err = Job::decode(&j.encode()).expect_err("bad id");
        assert!(err.to_string().contains("job_id"), "{err}");
    }

    #[test]
    fn a_segment_without_scores_reads_from_three_elements() {
        let three = rmp_serde::to_vec(&(510u64, 3870u64, Option::<u16>::None)).expect("encode");
        let span: SegmentSpan = rmp_serde::from_slice(&three).expect("decode");
        assert_eq!(span, SegmentSpan(510, 3870, None, None));
        let scores = SegmentScores(0.5, 0.25, -20.0, -1.0, 0.0, None);
        assert_eq!(scores.to_json()["rms_dbfs"], -20.0);
        assert!(scores.to_json()["snr_db"].is_null());
    }

    /// The largest event: `MAX_EVENT_SEGMENTS` segments with channels and every score fits in
    /// a message.
    #[test]
    fn the_most_segments_an_event_carries_fit_in_a_message() {
        let span = SegmentSpan(
            86_399_000,
            86_399_999,
            Some(8),
            Some(SegmentScores(
                0.123,
                0.456,
                -45.67,
                -12.34,
                0.000_123,
                Some(23.45),
            )),
        );
        let list = vec![span; MAX_EVENT_SEGMENTS];
        let bytes = rmp_serde::to_vec_named(&list).expect("encode");
        assert!(
            bytes.len() + 2048 < MAX_MESSAGE_BYTES,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn result_event_round_trips() {
        let ev = ResultEvent {
            v: VERSION,
            job_id: "j".into(),
            file_id: None,
            bucket: "audio".into(),
            key: "a.wav".into(),
            outcome: Outcome::Failed,
            attempt: 2,
            worker_id: "w-1".into(),
            finished_at_ms: 1,
            results_bucket: None,
            results_prefix: None,
            duration_s: None,
            speech_s: None,
            segments: None,
            reason: Some(Reason::InvalidAudio),
            error: Some("bad".into()),
            external_id: Some("call-7".into()),
            segment_list: Some(vec![
                SegmentSpan(510, 3870, None, None),
                SegmentSpan(
                    5100,
                    8940,
                    Some(2),
                    Some(SegmentScores(0.9, 0.2, -23.5, -3.0, 0.0, Some(18.25))),
                ),
            ]),
        };
        assert_eq!(ResultEvent::decode(&ev.encode()), Ok(ev));
    }
}
