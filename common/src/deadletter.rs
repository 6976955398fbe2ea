//! The dead-letter protocol, defined once: the failure headers a worker writes on a dead letter
//! ([`FailureHeaders`]), what the broker writes when it dead-letters a job itself (`x-death`,
//! for instance at the queue's delivery limit), a lenient reading of whatever part of the body is
//! readable ([`LenientJob`]), and the outcome a dead letter stands for ([`Letter::outcome`]).
//!
//! Writers: the worker's consumer. Readers: `producer dlq` (list, replay) and the collector,
//! which records every dead letter as the file's `failed` outcome.

use crate::failure::Reason;
use crate::topology::{
    DELIVERY_LIMIT, header_i64, header_str, headers, set_header_i64, set_header_str,
};
use crate::wire::{self, Outcome, ResultEvent};
use lapin::types::{AMQPValue, FieldTable};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};

/// The worker's account of a failed job, carried in `x-vadflow-*` headers on dead letters and
/// retries.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureHeaders {
    pub reason: Reason,
    pub error: String,
    /// Attempts made so far (the failing one included).
    pub attempts: u32,
    pub worker: String,
    /// First and last failure, milliseconds since the Unix epoch.
    pub first_failure_ms: i64,
    pub last_failure_ms: i64,
}

/// Every header [`FailureHeaders::write`] sets.
const FAILURE_HEADERS: [&str; 6] = [
    headers::REASON,
    headers::ERROR,
    headers::ATTEMPTS,
    headers::WORKER,
    headers::FIRST_FAILURE_MS,
    headers::LAST_FAILURE_MS,
];

impl FailureHeaders {
    /// Sets the headers on `h`, replacing earlier values.
    pub fn write(&self, h: &mut FieldTable) {
        set_header_str(h, headers::REASON, self.reason.as_str());
        set_header_str(h, headers::ERROR, &self.error);
        set_header_i64(h, headers::ATTEMPTS, i64::from(self.attempts));
        set_header_str(h, headers::WORKER, &self.worker);
        set_header_i64(h, headers::FIRST_FAILURE_MS, self.first_failure_ms);
        set_header_i64(h, headers::LAST_FAILURE_MS, self.last_failure_ms);
    }

    /// The headers of a job to publish again as new (a replay): the failure headers, the attempt
    /// counter, the broker's death records and the replay markers are dropped; everything else
    /// (trace context, for instance) is kept.
    pub fn strip(old: Option<&FieldTable>) -> FieldTable {
        let mut h = FieldTable::default();
        for (k, v) in old.map(FieldTable::inner).into_iter().flatten() {
            let name = k.as_str();
            let drop = FAILURE_HEADERS.contains(&name)
                || name == headers::ATTEMPT
                || name == headers::REPLAYS
                || name == headers::REPLAY_OF
                || name.starts_with("x-death")
                || name.starts_with("x-first-death")
                || name.starts_with("x-last-death")
                || name == "x-delivery-count";
            if !drop {
                h.insert(k.clone(), v.clone());
            }
        }
        h
    }
}

/// The fields of a job body that could be read, each on its own: a body with a bad field or an
/// unknown version still names its job and file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LenientJob {
    pub v: Maybe<u32>,
    pub job_id: Maybe<String>,
    pub bucket: Maybe<String>,
    pub key: Maybe<String>,
    pub file_id: Maybe<i64>,
}

/// A field read if it has the expected type, `None` otherwise (wrong type, or absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maybe<T>(pub Option<T>);

impl<T> Default for Maybe<T> {
    fn default() -> Self {
        Maybe(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Or<T> {
            Yes(T),
            No(IgnoredAny),
        }
        Ok(Maybe(match Or::<T>::deserialize(d)? {
            Or::Yes(t) => Some(t),
            Or::No(_) => None,
        }))
    }
}

impl LenientJob {
    /// Reads what it can; a body over the message size limit, or not a MessagePack map (or
    /// array), gives nothing.
    pub fn read(body: &[u8]) -> LenientJob {
        if body.is_empty() || body.len() > wire::MAX_MESSAGE_BYTES {
            return LenientJob::default();
        }
        rmp_serde::from_slice(body).unwrap_or_default()
    }

    /// The job id, if it is a usable one (the rules of [`wire::Job::validate`]).
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.0.as_deref().filter(|id| {
            !id.is_empty()
                && id.len() <= wire::MAX_JOB_ID_BYTES
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
    }
}

/// The broker's reason for a dead letter it made itself, from `x-death` (or `x-first-death-reason`).
fn broker_death_reason(h: Option<&FieldTable>) -> Option<String> {
    let h = h?;
    if let Some(AMQPValue::FieldArray(deaths)) = h.inner().get("x-death") {
        for death in deaths.as_slice() {
            if let AMQPValue::FieldTable(t) = death
                && let Some(reason) = header_str(Some(t), "reason")
            {
                return Some(reason);
            }
        }
    }
    header_str(Some(h), "x-first-death-reason")
}

/// A dead letter as read back: the worker's failure headers, or the broker's death record.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    pub job: LenientJob,
    /// The AMQP message id (the producer sets it to the job id).
    pub message_id: Option<String>,
    pub reason: Option<Reason>,
    pub error: Option<String>,
    /// The vadflow attempt that failed (`x-vadflow-attempts`, else the job's `x-vadflow-attempt`).
    pub attempt: u32,
    pub worker: Option<String>,
    pub first_failure_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    /// Times the job was replayed from the dead-letter queue before.
    pub replays: i64,
}

impl Letter {
    /// Reads a dead letter's headers and body.
    pub fn read(h: Option<&FieldTable>, body: &[u8], message_id: Option<&str>) -> Letter {
        let job = LenientJob::read(body);
        let worker_reason = header_str(h, headers::REASON).and_then(|r| Reason::parse(&r));
        let broker_reason = broker_death_reason(h);
        let (reason, error) = match (worker_reason, broker_reason.as_deref()) {
            (Some(r), _) => (Some(r), header_str(h, headers::ERROR)),
            (None, Some("delivery_limit")) => (
                Some(Reason::DeliveryLimit),
                Some(format!(
                    "the broker dead-lettered the job after {DELIVERY_LIMIT} deliveries ended \
                     without an outcome (the queue's delivery limit): each worker that took it \
                     stopped before finishing, for instance killed for memory"
                )),
            ),
            (None, Some(other)) => (
                Some(Reason::Internal),
                Some(format!("the broker dead-lettered the job ({other})")),
            ),
            (None, None) => (None, header_str(h, headers::ERROR)),
        };
        let attempt = header_i64(h, headers::ATTEMPTS)
            .or_else(|| header_i64(h, headers::ATTEMPT))
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1)
            .max(1);
        Letter {
            job,
            message_id: message_id.map(str::to_owned),
            reason,
            error,
            attempt,
            worker: header_str(h, headers::WORKER),
            first_failure_ms: header_i64(h, headers::FIRST_FAILURE_MS),
            last_failure_ms: header_i64(h, headers::LAST_FAILURE_MS),
            replays: header_i64(h, headers::REPLAYS).unwrap_or(0),
        }
    }

    /// The id to show and replay by: the job id, else the message id.
    pub fn id(&self) -> Option<&str> {
        self.job
            .job_id()
            .or(self.message_id.as_deref().filter(|m| !m.is_empty()))
    }

    /// The `failed` outcome this dead letter stands for, as the result event the worker would
    /// have published; `None` when the body names no file (no file id, bucket or key), so there
    /// is no row to record it on.
    pub fn outcome(&self, now_ms: i64) -> Option<ResultEvent> {
        let file_id = self.job.file_id.0;
        let (bucket, key) = (self.job.bucket.0.clone(), self.job.key.0.clone());
        if file_id.is_none() && (bucket.is_none() || key.is_none()) {
            return None;
        }
        let job_id = self
            .id()
            .map(str::to_owned)
            .unwrap_or_else(|| match file_id {
                Some(id) => format!("dead-letter-file-{id}"),
                None => "dead-letter".to_owned(),
            });
        Some(ResultEvent {
            v: wire::VERSION,
            job_id,
            file_id,
            bucket: bucket.unwrap_or_default(),
            key: key.unwrap_or_default(),
            outcome: Outcome::Failed,
            attempt: self.attempt,
            worker_id: self.worker.clone().unwrap_or_else(|| "broker".into()),
            finished_at_ms: self.last_failure_ms.unwrap_or(now_ms),
            results_bucket: None,
            results_prefix: None,
            duration_s: None,
            speech_s: None,
            segments: None,
            reason: Some(self.reason.unwrap_or(Reason::Internal)),
            error: Some(
                self.error
                    .clone()
                    .unwrap_or_else(|| "dead-lettered without a reason".into()),
            ),
            external_id: None,
            segment_list: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString, ShortString};
    use serde::Serialize;

    #[test]
    fn reads_what_it_can_of_a_bad_body() {
        #[derive(Serialize)]
        struct Odd<'a> {
            v: u32,
            job_id: &'a str,
            bucket: &'a str,
            key: &'a str,
            file_id: i64,
            size: &'a str,
        }
        let body = rmp_serde::to_vec_named(&Odd {
            v: 2,
            job_id: "j-1",
            bucket: "audio",
            key: "a.wav",
            file_id: 7,
            size: "big",
        })
        .expect("encode");
        let job = LenientJob::read(&body);
        assert_eq!(job.v.0, Some(2));
        assert_eq!(job.job_id(), Some("j-1"));
        assert_eq!(job.file_id.0, Some(7));
        assert_eq!(job.key.0.as_deref(), Some("a.wav"));

        #[derive(Serialize)]
        struct Wrong {
            job_id: u64,
            bucket: Vec<u8>,
            key: bool,
        }
        let job = LenientJob::read(
            &rmp_serde::to_vec_named(&Wrong {
                job_id: 5,
                bucket: vec![1, 2],
                key: true,
            })
            .expect("encode"),
        );
        assert_eq!(job, LenientJob::default());
        assert_eq!(LenientJob::read(b"\xc1garbage"), LenientJob::default());
        assert_eq!(LenientJob::read(b""), LenientJob::default());
        assert_eq!(
            LenientJob::read(&vec![0x90; wire::MAX_MESSAGE_BYTES + 1]),
            LenientJob::default()
        );
    }

    fn job_body() -> Vec<u8> {
        let mut job = wire::Job::new("audio", "calls/a.wav");
        job.job_id = "job-1".into();
        job.file_id = Some(42);
        job.encode()
    }

    #[test]
    fn failure_headers_round_trip_and_strip() {
        let f = FailureHeaders {
            reason: Reason::InvalidAudio,
            error: "bad".into(),
            attempts: 3,
            worker: "w".into(),
            first_failure_ms: 1,
            last_failure_ms: 2,
        };
        let mut h = FieldTable::default();
        set_header_str(&mut h, "traceparent", "00-a-b-01");
        set_header_i64(&mut h, headers::ATTEMPT, 3);
        f.write(&mut h);
        let letter = Letter::read(Some(&h), &job_body(), Some("job-1"));
        assert_eq!(letter.reason, Some(Reason::InvalidAudio));
        assert_eq!(letter.attempt, 3);
        let ev = letter.outcome(99).expect("names a file");
        assert_eq!(
            (ev.file_id, ev.attempt, ev.outcome, ev.finished_at_ms),
            (Some(42), 3, Outcome::Failed, 2)
        );
        assert_eq!(ev.reason, Some(Reason::InvalidAudio));

        let stripped = FailureHeaders::strip(Some(&h));
        for name in FAILURE_HEADERS.iter().chain([&headers::ATTEMPT]) {
            assert!(!stripped.inner().contains_key(*name), "{name} kept");
        }
        assert_eq!(
            header_str(Some(&stripped), "traceparent").as_deref(),
            Some("00-a-b-01")
        );
    }

    #[test]
    fn a_broker_dead_letter_at_the_delivery_limit_is_a_delivery_limit_failure() {
        let mut death = FieldTable::default();
        death.insert(
            ShortString::from("reason"),
            AMQPValue::LongString(LongString::from("delivery_limit")),
        );
        death.insert(ShortString::from("count"), AMQPValue::LongLongInt(1));
        let mut h = FieldTable::default();
        set_header_i64(&mut h, headers::ATTEMPT, 1);
        h.insert(
            ShortString::from("x-death"),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        let letter = Letter::read(Some(&h), &job_body(), None);
        assert_eq!(letter.reason, Some(Reason::DeliveryLimit));
        assert_eq!(letter.id(), Some("job-1"));
        let ev = letter.outcome(5).expect("names a file");
        assert_eq!(ev.reason, Some(Reason::DeliveryLimit));
        assert_eq!(
            (ev.attempt, ev.worker_id.as_str(), ev.finished_at_ms),
            (1, "broker", 5)
        );
        assert!(ev.error.as_deref().unwrap_or("").contains("delivery limit"));
    }

    #[test]
    fn a_letter_that_names_no_file_has_no_outcome() {
        let mut h = FieldTable::default();
        set_header_str(&mut h, headers::REASON, "malformed-message");
        let letter = Letter::read(Some(&h), b"{\"json\": 1}", Some("m-1"));
        assert_eq!(letter.id(), Some("m-1"));
        assert_eq!(letter.reason, Some(Reason::MalformedMessage));
        assert_eq!(letter.outcome(1), None);
    }
}
