//! The settle decision: what becomes of a failed attempt. A pure function of the failure, the
//! attempt number, the retry budget and the topology; the consumer only publishes what [`plan`]
//! returns (the copy, then the result event) and acks once both are confirmed.
//!
//! | failure | attempts left | outcome | where the job goes | reason |
//! |---|---|---|---|---|
//! | transient | yes | `retrying` | retry queue of its level, with `x-vadflow-attempt + 1` and a jittered TTL | the failure's |
//! | transient | no | `failed` | dead-letter exchange | `retries-exhausted` |
//! | permanent | any | `failed` | dead-letter exchange | the failure's |

use lapin::types::FieldTable;
use vadflow_common::deadletter::FailureHeaders;
use vadflow_common::topology::{DEAD_ROUTING_KEY, Topology, header_i64, headers, set_header_i64};
use vadflow_common::wire::Outcome;
use vadflow_common::{Failure, Reason, Retry};

/// Where a failed job is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To a retry delay queue; it returns to the work queue when `expiration_ms` has passed.
    Retry {
        exchange: String,
        routing_key: String,
        expiration_ms: u64,
    },
    /// To the dead-letter exchange, for good.
    Dead {
        exchange: String,
        routing_key: String,
    },
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// The result event's outcome: `retrying` or `failed`.
    pub outcome: Outcome,
    pub route: Route,
    /// The failure as recorded: reason and message in the headers and the result event.
    pub failure: FailureHeaders,
    /// The headers of the copy: the job's own, the failure headers, and the next attempt's
    /// number for a retry.
    pub headers: FieldTable,
}

/// The facts a settlement depends on, apart from the failure itself.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// 1-based number of the attempt that failed.
    pub number: u32,
    /// Attempts allowed before a transient failure is final.
    pub max_attempts: u32,
    /// This worker, recorded as the last to fail the job.
    pub worker: &'a str,
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// Decides a failed attempt's settlement. `jitter(delay)` picks the retry's TTL in
/// `[delay / 2, delay]` (equal jitter); tests pass a fixed choice.
pub fn plan(
    failure: &Failure,
    attempt: Attempt<'_>,
    job_headers: Option<&FieldTable>,
    topology: &Topology,
    jitter: impl FnOnce(u64) -> u64,
) -> Settlement {
    let n = attempt.number;
    let transient = failure.retry() == Retry::Transient;
    let retry = transient && n < attempt.max_attempts;
    let (outcome, reason, error) = if retry {
        (Outcome::Retrying, failure.reason, failure.message.clone())
    } else if transient {
        (
            Outcome::Failed,
            Reason::RetriesExhausted,
            format!(
                "{n} attempts failed; last: {}: {}",
                failure.reason, failure.message
            ),
        )
    } else {
        (Outcome::Failed, failure.reason, failure.message.clone())
    };
    let failure = FailureHeaders {
        reason,
        error,
        attempts: n,
        worker: attempt.worker.to_owned(),
        // A replayed job carries no failure headers: its failures start afresh.
        first_failure_ms: header_i64(job_headers, headers::FIRST_FAILURE_MS)
            .unwrap_or(attempt.now_ms),
        last_failure_ms: attempt.now_ms,
    };
    let mut h = job_headers.cloned().unwrap_or_default();
    failure.write(&mut h);
    let route = if retry {
        set_header_i64(&mut h, headers::ATTEMPT, i64::from(n) + 1);
        let level = Topology::retry_level(n);
        let delay = u64::try_from(topology.retry_delay(level).as_millis()).unwrap_or(u64::MAX);
        Route::Retry {
            exchange: topology.retry_exchange(),
            routing_key: Topology::retry_routing_key(level),
            expiration_ms: jitter(delay).clamp(delay / 2, delay),
        }
    } else {
        Route::Dead {
            exchange: topology.dead_exchange(),
            routing_key: DEAD_ROUTING_KEY.to_owned(),
        }
    };
    Settlement {
        outcome,
        route,
        failure,
        headers: h,
    }
}

/// Equal jitter: uniformly between half and all of `delay`.
pub fn equal_jitter(delay: u64) -> u64 {
    delay / 2 + fastrand::u64(0..=delay / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vadflow_common::topology::{RETRY_LEVELS, header_str, set_header_str};

    fn topology() -> Topology {
        Topology::new("p", Duration::from_secs(1)).expect("topology")
    }

    fn attempt(number: u32) -> Attempt<'static> {
        Attempt {
            number,
            max_attempts: 5,
            worker: "w-1",
            now_ms: 1_000,
        }
    }

    fn settle(reason: Reason, number: u32, headers: Option<&FieldTable>) -> Settlement {
        plan(
            &Failure::new(reason, "it broke"),
            attempt(number),
            headers,
            &topology(),
            |d| d,
        )
    }

    #[test]
    fn every_reason_settles_by_its_retry_class() {
        for reason in Reason::ALL {
            for number in 1..=5 {
                let s = settle(reason, number, None);
                let retries = reason.retry() == Retry::Transient && number < 5;
                assert_eq!(
                    s.outcome == Outcome::Retrying,
                    retries,
                    "{reason} attempt {number}"
                );
                assert_eq!(matches!(s.route, Route::Retry { .. }), retries, "{reason}");
                assert_eq!(s.failure.attempts, number);
                assert_eq!(
                    header_str(Some(&s.headers), headers::REASON).as_deref(),
                    Some(s.failure.reason.as_str())
                );
                let next = header_i64(Some(&s.headers), headers::ATTEMPT);
                assert_eq!(next, retries.then(|| i64::from(number) + 1), "{reason}");
                match (reason.retry(), retries) {
                    (Retry::Permanent, _) => {
                        assert_eq!(s.failure.reason, reason);
                        assert_eq!(s.failure.error, "it broke");
                    }
                    (Retry::Transient, true) => assert_eq!(s.failure.reason, reason),
                    (Retry::Transient, false) => {
                        assert_eq!(s.failure.reason, Reason::RetriesExhausted);
                        assert!(s.failure.error.starts_with("5 attempts failed; last: "));
                        assert!(s.failure.error.contains(reason.as_str()));
                    }
                }
            }
        }
    }

    #[test]
    fn the_last_attempt_of_a_transient_failure_is_dead_lettered() {
        let s = settle(Reason::StorageUnavailable, 5, None);
        assert_eq!(s.outcome, Outcome::Failed);
        assert_eq!(
            s.route,
            Route::Dead {
                exchange: "p.dead".into(),
                routing_key: DEAD_ROUTING_KEY.into()
            }
        );
        // Beyond the budget (a lowered --max-attempts) is final too.
        assert_eq!(settle(Reason::Timeout, 9, None).outcome, Outcome::Failed);
    }

    #[test]
    fn retries_go_to_growing_levels_with_jittered_ttls() {
        let t = topology();
        for number in 1..5 {
            let s = plan(
                &Failure::new(Reason::Timeout, "slow"),
                attempt(number),
                None,
                &t,
                |_| u64::MAX,
            );
            let level = (number - 1).min(RETRY_LEVELS - 1);
            let delay = 1000 * 4u64.pow(level);
            assert_eq!(
                s.route,
                Route::Retry {
                    exchange: "p.retry".into(),
                    routing_key: format!("retry.{level}"),
                    expiration_ms: delay,
                }
            );
        }
        let low = plan(
            &Failure::new(Reason::Timeout, "slow"),
            attempt(1),
            None,
            &t,
            |_| 0,
        );
        assert!(matches!(
            low.route,
            Route::Retry {
                expiration_ms: 500,
                ..
            }
        ));
        for _ in 0..100 {
            let j = equal_jitter(1000);
            assert!((500..=1000).contains(&j));
        }
    }

    #[test]
    fn failures_keep_the_first_failure_time_and_the_jobs_own_headers() {
        let mut h = FieldTable::default();
        set_header_i64(&mut h, headers::FIRST_FAILURE_MS, 10);
        set_header_i64(&mut h, headers::ATTEMPT, 2);
        set_header_str(&mut h, "traceparent", "00-a-b-01");
        let s = settle(Reason::Timeout, 2, Some(&h));
        assert_eq!(
            (s.failure.first_failure_ms, s.failure.last_failure_ms),
            (10, 1_000)
        );
        assert_eq!(
            header_str(Some(&s.headers), "traceparent").as_deref(),
            Some("00-a-b-01")
        );
        assert_eq!(header_i64(Some(&s.headers), headers::ATTEMPT), Some(3));
    }

    #[test]
    fn a_replayed_job_starts_its_attempts_and_failure_times_afresh() {
        // What `dlq replay` publishes: the failure headers stripped, replays counted.
        let mut dead = FieldTable::default();
        let s = settle(Reason::Timeout, 5, None);
        s.failure.write(&mut dead);
        set_header_i64(&mut dead, headers::ATTEMPT, 5);
        let mut replayed = FailureHeaders::strip(Some(&dead));
        set_header_i64(&mut replayed, headers::REPLAYS, 1);
        // The replay's first attempt (no attempt header: 1) fails transiently: it is retried.
        let s = plan(
            &Failure::new(Reason::Timeout, "slow"),
            Attempt {
                now_ms: 7_000,
                ..attempt(1)
            },
            Some(&replayed),
            &topology(),
            |d| d,
        );
        assert_eq!(s.outcome, Outcome::Retrying);
        assert_eq!(s.failure.first_failure_ms, 7_000);
        assert_eq!(header_i64(Some(&s.headers), headers::REPLAYS), Some(1));
        assert_eq!(header_i64(Some(&s.headers), headers::ATTEMPT), Some(2));
    }
}
