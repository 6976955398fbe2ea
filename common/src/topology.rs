//! The AMQP topology, declared by [`Topology::declare`], which both binaries call.
//!
//! ```text
//!  producer ──job──▶ {p}.work ──"job"──▶ {p}.jobs (quorum) ──▶ workers
//!                       ▲                    │ delivery-limit backstop
//!                       │ TTL expiry         ▼
//!  worker ──"retry.N"─▶ {p}.retry ──▶ {p}.retry.N ...      {p}.dead ──"dead"──▶ {p}.dead-letters
//!  worker ──"dead"────────────────────────────────────────▶   │      ──"dead"──▶ {p}.dead-letters.feed ─┐
//!                                                              │      ──"result"▶ {p}.results.dead      │
//!  worker ──result──▶ {p}.results ──"result"──▶ {p}.results (quorum) ──▶ collector ◀────────────────────┘
//! ```
//!
//! Every job dead letter, whoever made it (a worker, or the broker's delivery limit), lands in two
//! queues at once: `{p}.dead-letters`, where people inspect and replay it, and
//! `{p}.dead-letters.feed`, which the collector consumes to record the file as failed. So
//! every dead letter becomes an outcome in the database, and purging or replaying the
//! dead-letter queue changes nothing about that.
//!
//! Every name starts with a prefix (default `vadflow`), so several deployments, or tests running
//! in parallel, can share a broker without seeing each other's messages.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use std::time::Duration;

/// Routing key of jobs on the work exchange.
pub const JOB_ROUTING_KEY: &str = "job";
/// Routing key of job dead letters on the dead-letter exchange.
pub const DEAD_ROUTING_KEY: &str = "dead";
/// Routing key of result events, on the results exchange and on the dead-letter exchange.
pub const RESULT_ROUTING_KEY: &str = "result";
/// Number of retry delay queues; delay of level `i` is `retry_base × 4^i`.
pub const RETRY_LEVELS: u32 = 6;
/// Broker-side backstop: a job delivered this many times is dead-lettered by the broker even if
/// no worker ever finished it (for instance because every attempt crashed the worker).
pub const DELIVERY_LIMIT: i64 = 20;
/// Delivery limit of the dead-letter queues. RabbitMQ 4 gives every quorum queue a default limit
/// of 20 and counts the returns of `producer dlq list` (which reads without acking) toward it; a
/// dead-letter queue has nowhere to send a message past its limit, so it would be dropped. `-1`
/// (unlimited on 4.x) drops a message at its first return on 3.x, so the limit is just very
/// large instead.
pub const DEAD_LETTER_DELIVERY_LIMIT: i64 = 1_000_000;

/// Header names used on jobs and dead letters. The attempt counter is ours, not the broker's.
pub mod headers {
    /// 1-based number of the attempt this delivery is (absent means 1).
    pub const ATTEMPT: &str = "x-vadflow-attempt";
    /// Failure class, a [`crate::Reason`] name.
    pub const REASON: &str = "x-vadflow-reason";
    /// Failure message.
    pub const ERROR: &str = "x-vadflow-error";
    /// Attempts made before the job was dead-lettered.
    pub const ATTEMPTS: &str = "x-vadflow-attempts";
    /// Id of the worker that last failed the job.
    pub const WORKER: &str = "x-vadflow-worker";
    /// First and last failure, milliseconds since the Unix epoch.
    pub const FIRST_FAILURE_MS: &str = "x-vadflow-first-failure-ms";
    pub const LAST_FAILURE_MS: &str = "x-vadflow-last-failure-ms";
    /// Times the job was replayed from the dead-letter queue (`producer dlq replay`).
    pub const REPLAYS: &str = "x-vadflow-replays";
    /// On a replayed job: the id of the dead letter it was replayed from.
    pub const REPLAY_OF: &str = "x-vadflow-replay-of";
}

/// Names and declaration of every exchange and queue vadflow uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    retry_base: Duration,
}

impl Topology {
    /// `prefix` may contain `a-z A-Z 0-9 . _ -`, at most 100 characters.
    pub fn new(prefix: &str, retry_base: Duration) -> Result<Topology, String> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 100
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(format!(
                "queue prefix {prefix:?} must be 1 to 100 characters of a-z A-Z 0-9 . _ -"
            ));
        }
        if retry_base.is_zero() || retry_base > Duration::from_secs(3600) {
            return Err("retry base delay must be between 1 ms and 1 hour".into());
        }
        Ok(Topology {
            prefix: prefix.to_owned(),
            retry_base,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn work_exchange(&self) -> String {
        format!("{}.work", self.prefix)
    }
    pub fn work_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letters", self.prefix)
    }
    /// The copy of every job dead letter that the collector records as an outcome.
    pub fn dead_letter_feed_queue(&self) -> String {
        format!("{}.dead-letters.feed", self.prefix)
    }
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.prefix)
    }
    pub fn retry_queue(&self, level: u32) -> String {
        format!("{}.retry.{level}", self.prefix)
    }
    pub fn retry_routing_key(level: u32) -> String {
        format!("retry.{level}")
    }
    pub fn results_exchange(&self) -> String {
        format!("{}.results", self.prefix)
    }
    pub fn results_queue(&self) -> String {
        format!("{}.results", self.prefix)
    }
    pub fn results_dead_queue(&self) -> String {
        format!("{}.results.dead", self.prefix)
    }

    /// The delay of retry level `level` (clamped to the last level).
    pub fn retry_delay(&self, level: u32) -> Duration {
        let level = level.min(RETRY_LEVELS - 1);
        self.retry_base.saturating_mul(4u32.saturating_pow(level))
    }

    /// The retry level used after failed attempt number `attempt` (1-based).
    pub fn retry_level(attempt: u32) -> u32 {
        attempt.saturating_sub(1).min(RETRY_LEVELS - 1)
    }

    /// Every queue, in display order, for status and tests.
    pub fn all_queues(&self) -> Vec<String> {
        let mut q = vec![self.work_queue()];
        q.extend((0..RETRY_LEVELS).map(|l| self.retry_queue(l)));
        q.extend([
            self.dead_letter_queue(),
            self.dead_letter_feed_queue(),
            self.results_queue(),
            self.results_dead_queue(),
        ]);
        q
    }

    /// The queue's name without the deployment's prefix (`jobs`, `retry.0`, `dead-letters`),
    /// as metrics label it.
    pub fn role<'a>(&self, queue: &'a str) -> &'a str {
        queue
            .strip_prefix(self.prefix.as_str())
            .and_then(|q| q.strip_prefix('.'))
            .unwrap_or(queue)
    }

    /// The depth (ready and unacked messages) and consumer count of every queue, in
    /// [`Topology::all_queues`] order, by passive declares: nothing is created or changed. A
    /// queue that does not exist is `None`. Each queue gets its own channel, as a failed passive
    /// declare closes its channel.
    pub async fn depths(
        &self,
        conn: &lapin::Connection,
    ) -> lapin::Result<Vec<(String, Option<(u32, u32)>)>> {
        let mut out = Vec::new();
        for queue in self.all_queues() {
            let ch = conn.create_channel().await?;
            let declared = ch
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            let depth = declared
                .ok()
                .map(|q| (q.message_count(), q.consumer_count()));
            if ch.status().connected() {
                let _ = ch.close(200, "done".into()).await;
            }
            out.push((queue, depth));
        }
        Ok(out)
    }

    /// Declares every exchange, queue and binding. Idempotent; both binaries call it on connect.
    pub async fn declare(&self, ch: &Channel) -> lapin::Result<()> {
        for ex in [
            self.work_exchange(),
            self.dead_exchange(),
            self.retry_exchange(),
            self.results_exchange(),
        ] {
            ch.exchange_declare(
                ex.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        }

        let mut work = quorum_args();
        dead_letter_to(&mut work, &self.dead_exchange(), DEAD_ROUTING_KEY);
        work.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        self.queue(
            ch,
            &self.work_queue(),
            work,
            &self.work_exchange(),
            JOB_ROUTING_KEY,
        )
        .await?;

        self.queue(
            ch,
            &self.dead_letter_queue(),
            dead_letter_queue_args(),
            &self.dead_exchange(),
            DEAD_ROUTING_KEY,
        )
        .await?;

        // The collector's copy of each dead letter; one it cannot store goes to the results'
        // dead-letter queue.
        let mut feed = quorum_args();
        dead_letter_to(&mut feed, &self.dead_exchange(), RESULT_ROUTING_KEY);
        feed.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        self.queue(
            ch,
            &self.dead_letter_feed_queue(),
            feed,
            &self.dead_exchange(),
            DEAD_ROUTING_KEY,
        )
        .await?;

        for level in 0..RETRY_LEVELS {
            let mut args = quorum_args();
            dead_letter_to(&mut args, &self.work_exchange(), JOB_ROUTING_KEY);
            let ttl = i64::try_from(self.retry_delay(level).as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            self.queue(
                ch,
                &self.retry_queue(level),
                args,
                &self.retry_exchange(),
                &Self::retry_routing_key(level),
            )
            .await?;
        }

        let mut results = quorum_args();
        dead_letter_to(&mut results, &self.dead_exchange(), RESULT_ROUTING_KEY);
        self.queue(
            ch,
            &self.results_queue(),
            results,
            &self.results_exchange(),
            RESULT_ROUTING_KEY,
        )
        .await?;
        self.queue(
            ch,
            &self.results_dead_queue(),
            dead_letter_queue_args(),
            &self.dead_exchange(),
            RESULT_ROUTING_KEY,
        )
        .await?;
        Ok(())
    }

    async fn queue(
        &self,
        ch: &Channel,
        name: &str,
        args: FieldTable,
        exchange: &str,
        routing_key: &str,
    ) -> lapin::Result<()> {
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
        ch.queue_bind(
            name.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

fn quorum_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), long("quorum"));
    t
}

fn dead_letter_queue_args() -> FieldTable {
    let mut t = quorum_args();
    t.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_DELIVERY_LIMIT),
    );
    t
}

/// Dead-letters to `exchange` with `routing_key`, at least once: the broker keeps a message
/// until the dead-letter target confirmed it (needs `x-overflow: reject-publish`).
fn dead_letter_to(t: &mut FieldTable, exchange: &str, routing_key: &str) {
    t.insert("x-dead-letter-exchange".into(), long(exchange));
    t.insert("x-dead-letter-routing-key".into(), long(routing_key));
    t.insert("x-dead-letter-strategy".into(), long("at-least-once"));
    t.insert("x-overflow".into(), long("reject-publish"));
}

/// Reads an integer header, whatever integer width the publisher chose.
pub fn header_i64(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    match headers?.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// Reads a string header (long or short string).
pub fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Sets a string header; values are long strings, so any length is fine.
pub fn set_header_str(headers: &mut FieldTable, name: &'static str, value: &str) {
    headers.insert(ShortString::from(name), long(value));
}

pub fn set_header_i64(headers: &mut FieldTable, name: &'static str, value: i64) {
    headers.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let t = Topology::new("t-1", Duration::from_secs(1)).expect("valid");
        assert_eq!(t.work_queue(), "t-1.jobs");
        assert_eq!(t.dead_letter_queue(), "t-1.dead-letters");
        assert!(t.all_queues().iter().all(|q| q.starts_with("t-1.")));
        assert_eq!(t.all_queues().len(), 5 + RETRY_LEVELS as usize);
        assert!(Topology::new("bad prefix", Duration::from_secs(1)).is_err());
        assert!(Topology::new("", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn retry_delays_grow_exponentially_and_clamp() {
        let t = Topology::new("p", Duration::from_millis(500)).expect("valid");
        assert_eq!(Topology::retry_level(1), 0);
        assert_eq!(t.retry_delay(0), Duration::from_millis(500));
        assert_eq!(t.retry_delay(1), Duration::from_millis(2000));
        assert_eq!(t.retry_delay(99), t.retry_delay(RETRY_LEVELS - 1));
        assert_eq!(Topology::retry_level(100), RETRY_LEVELS - 1);
    }

    #[test]
    fn headers_read_any_integer_width() {
        let mut h = FieldTable::default();
        h.insert("a".into(), AMQPValue::ShortShortUInt(3));
        set_header_i64(&mut h, headers::ATTEMPT, 7);
        set_header_str(&mut h, headers::ERROR, &"x".repeat(1000));
        assert_eq!(header_i64(Some(&h), "a"), Some(3));
        assert_eq!(header_i64(Some(&h), headers::ATTEMPT), Some(7));
        assert_eq!(
            header_str(Some(&h), headers::ERROR).map(|s| s.len()),
            Some(1000)
        );
        assert_eq!(header_i64(None, "a"), None);
    }
}
