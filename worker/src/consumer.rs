//! The consumer loop: take jobs from the work queue, run them with bounded concurrency, publish
//! their result events, and ack only once everything is stored. See `design.md` beside this file
//! for the delivery guarantees.

use crate::events::{self, msg};
use crate::job::{self, JobContext, JobDone};
use crate::metrics::Stage;
use crate::settle::{self, Attempt, Route};
use futures_util::{FutureExt, StreamExt};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::types::{FieldTable, ShortString};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vadflow_common::amqp::{PublishError, message_properties, publish_confirmed};
use vadflow_common::deadletter::LenientJob;
use vadflow_common::redact::SecretUrl;
use vadflow_common::session::{Backoff, Session, reconnect};
use vadflow_common::topology::{RESULT_ROUTING_KEY, header_i64, headers};
use vadflow_common::wire::{self, Outcome, ResultEvent};
use vadflow_common::{Failure, Job, Topology};

/// Settings of the consumer loop.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub amqp_url: SecretUrl,
    /// Trusted CA certificates (PEM) for amqps://, instead of the system's.
    pub amqp_ca_pem: Option<String>,
    pub topology: Topology,
    pub worker_id: String,
    pub concurrency: usize,
    pub prefetch: u16,
    pub max_attempts: u32,
    pub shutdown_timeout: Duration,
}

/// What the loop shares with every job task.
#[derive(Debug)]
struct Shared {
    config: ConsumerConfig,
    jobs: Arc<JobContext>,
}

/// Readiness: true while connected and consuming, false while reconnecting or draining.
/// Health endpoints read it; tests wait on its changes.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Readiness {
    pub fn get(&self) -> bool {
        *self.0.borrow()
    }
    fn set(&self, v: bool) {
        self.0.send_replace(v);
    }
    /// Waits until readiness equals `want`.
    pub async fn wait_for(&self, want: bool) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|v| *v == want).await;
    }
}

/// Consumes jobs until `shutdown` is cancelled, reconnecting with backoff when the broker goes
/// away. On shutdown: cancel the consumer, let in-flight jobs finish within the shutdown
/// timeout, then close the connection so that unfinished jobs return to the queue.
pub async fn run(
    config: ConsumerConfig,
    jobs: Arc<JobContext>,
    ready: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared { config, jobs });
    let cfg = &shared.config;
    let queue = cfg.topology.work_queue();
    let permits = Arc::new(Semaphore::new(cfg.concurrency));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = Backoff::new();
    let mut last_session: Option<Session> = None;
    let name = format!("vadflow-worker {}", cfg.worker_id);

    'connect: while !shutdown.is_cancelled() {
        let open = || {
            Session::open(
                cfg.amqp_url.expose(),
                cfg.amqp_ca_pem.as_deref(),
                &name,
                &cfg.topology,
                &queue,
                cfg.prefetch,
            )
        };
        let Some(mut session) =
            reconnect(&shutdown, &mut backoff, msg::CANNOT_REACH_BROKER, open).await
        else {
            break;
        };
        if let Some(old) = last_session.take() {
            old.close().await;
        }
        ready.set(true);
        tracing::info!(queue = %queue, concurrency = cfg.concurrency, prefetch = cfg.prefetch, "{}", msg::CONSUMING);
        let mut unstarted = 0;
        loop {
            // Backpressure: take a slot before taking a delivery. A lost session ends the wait at
            // once: its buffered deliveries can never be acked, so none of them is started.
            let lost = session.lost.clone();
            let waited = or_stop(&shutdown, &lost, async {
                let permit = permits.clone().acquire_owned().await?;
                loop {
                    tokio::select! {
                        Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                            if let Err(e) = done {
                                tracing::error!(error = %e, "job task ended abnormally");
                            }
                        }
                        next = session.consumer.next() => {
                            return Ok::<_, tokio::sync::AcquireError>((permit, next));
                        }
                    }
                }
            })
            .await;
            let (permit, next) = match waited {
                Ok(got) => got?,
                Err(Stop::Shutdown) => {
                    last_session = Some(session);
                    break 'connect;
                }
                Err(Stop::Lost) => {
                    tracing::warn!("{}", msg::SESSION_LOST);
                    break;
                }
            };
            match next {
                Some(Ok(delivery)) if session.usable() => {
                    let shared = shared.clone();
                    let publisher = session.publish.clone();
                    let lost = session.lost.clone();
                    tasks.spawn(async move {
                        // A job whose session is lost can no longer be acked: stop it, and let
                        // the broker redeliver it (its outputs are idempotent).
                        tokio::select! {
                            biased;
                            _ = lost.cancelled() => {
                                let delivery_tag = delivery.delivery_tag;
                                events::JobAbandoned { delivery_tag }.emit(&shared.jobs.metrics);
                            }
                            _ = handle(&shared, &publisher, &delivery) => {}
                        }
                        drop(permit);
                    });
                }
                Some(Ok(_)) => {
                    // Buffered before the failure was noticed: never started, redelivered.
                    unstarted = 1;
                    tracing::warn!("{}", msg::SESSION_LOST);
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "{}", msg::SESSION_LOST);
                    break;
                }
                None => {
                    tracing::warn!("{}", msg::CONSUMER_CANCELLED);
                    break;
                }
            }
        }
        ready.set(false);
        let count = unstarted + drop_buffered(&mut session);
        events::DeliveriesDropped { count }.emit(&shared.jobs.metrics);
        last_session = Some(session);
    }

    ready.set(false);
    if let Some(session) = &last_session {
        session.cancel().await;
    }
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(
            in_flight,
            timeout_ms = cfg.shutdown_timeout.as_millis() as u64,
            "{}",
            msg::DRAINING
        );
        let drained = tokio::time::timeout(cfg.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                unfinished = tasks.len(),
                "shutdown timeout: unfinished jobs return to the queue"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
    if let Some(session) = last_session {
        session.close().await;
    }
    tracing::info!("{}", msg::STOPPED);
    Ok(())
}

/// Why the consume loop stopped waiting.
enum Stop {
    Shutdown,
    Lost,
}

/// Runs `fut` unless shutdown is requested or the session is lost first (checked first, in
/// that order).
async fn or_stop<T>(
    shutdown: &CancellationToken,
    lost: &CancellationToken,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Stop> {
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => Err(Stop::Shutdown),
        _ = lost.cancelled() => Err(Stop::Lost),
        v = fut => Ok(v),
    }
}

/// Drops the deliveries the client buffered for a lost session, without starting them; returns
/// how many there were.
fn drop_buffered(session: &mut Session) -> u64 {
    let mut n = 0;
    while let Some(Some(Ok(_))) = session.consumer.next().now_or_never() {
        n += 1;
    }
    n
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Handles one delivery completely: it is acked, or rejected back to the queue, before return.
async fn handle(shared: &Shared, publisher: &Channel, delivery: &Delivery) {
    let metrics = &shared.jobs.metrics;
    let _in_flight = metrics.in_flight();
    let attempt = header_i64(delivery.properties.headers().as_ref(), headers::ATTEMPT)
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or(1)
        .max(1);
    // Parse strictly but validate apart, so a job whose only fault is a bad bucket or key still
    // gets its failure event; an unreadable one is dead-lettered, and the collector records
    // whatever file its body still names (deadletter.rs).
    let job = match Job::parse(&delivery.data) {
        Ok(job) => job,
        Err(e) => {
            let failure = Failure::from(e);
            let readable = LenientJob::read(&delivery.data);
            let job_id = readable.job_id().unwrap_or("-");
            tracing::error!(job_id, reason = %failure.reason, error = %failure.message, "malformed job message");
            settle_failure(shared, publisher, delivery, None, failure, attempt).await;
            return;
        }
    };
    if let Err(e) = job.validate() {
        let failure = Failure::from(e).context(format!("job {}", job.job_id));
        tracing::error!(job_id = %job.job_id, reason = %failure.reason, error = %failure.message, "invalid job");
        settle_failure(shared, publisher, delivery, Some(&job), failure, attempt).await;
        return;
    }
    let queue = shared.config.topology.work_queue();
    let span = tracing::info_span!(
        "job",
        otel.name = %format!("process {queue}"),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %queue,
        messaging.message.id = %job.job_id,
        job_id = %job.job_id,
        bucket = %job.bucket,
        key = %job.key,
        attempt
    );
    vadflow_common::trace::set_parent(&span, delivery.properties.headers().as_ref());
    let started = std::time::Instant::now();
    {
        let _entered = span.enter();
        events::JobStarted.emit(metrics);
    }
    match tracing::Instrument::instrument(job::run(shared.jobs.clone(), &job), span.clone()).await {
        Ok(done) => {
            let event = done_event(shared, &job, attempt, &done);
            let publish_started = std::time::Instant::now();
            let published = tracing::Instrument::instrument(
                publish_result(shared, publisher, &event),
                vadflow_common::trace::send_span(
                    &span,
                    &shared.config.topology.results_exchange(),
                    RESULT_ROUTING_KEY,
                    &job.job_id,
                ),
            )
            .await;
            metrics.stage(Stage::Publish, publish_started.elapsed());
            match published {
                Ok(()) => {
                    events::JobDone {
                        span: &span,
                        duration_s: done.analysis.duration_s(),
                        speech_s: done.analysis.speech_s(),
                        segments: done.analysis.segments.len(),
                        elapsed: started.elapsed(),
                    }
                    .emit(metrics);
                    ack(delivery, &job.job_id).await;
                }
                Err(e) => {
                    tracing::warn!(parent: &span, error = %e, "cannot publish the result event; returning the job to the queue");
                    requeue(delivery).await;
                }
            }
        }
        Err(failure) => {
            settle_failure(shared, publisher, delivery, Some(&job), failure, attempt).await;
        }
    }
}

fn base_event(shared: &Shared, job: &Job, attempt: u32, outcome: Outcome) -> ResultEvent {
    ResultEvent {
        v: wire::VERSION,
        job_id: job.job_id.clone(),
        file_id: job.file_id,
        bucket: job.bucket.clone(),
        key: job.key.clone(),
        outcome,
        attempt,
        worker_id: shared.config.worker_id.clone(),
        finished_at_ms: now_ms(),
        results_bucket: None,
        results_prefix: None,
        duration_s: None,
        speech_s: None,
        segments: None,
        reason: None,
        error: None,
        external_id: job.external_id.clone(),
        segment_list: None,
    }
}

fn done_event(shared: &Shared, job: &Job, attempt: u32, done: &JobDone) -> ResultEvent {
    ResultEvent {
        results_bucket: Some(shared.jobs.results_bucket.clone()),
        results_prefix: Some(done.results_prefix.clone()),
        duration_s: Some(done.analysis.duration_s()),
        speech_s: Some(done.analysis.speech_s()),
        segments: Some(u32::try_from(done.analysis.segments.len()).unwrap_or(u32::MAX)),
        segment_list: crate::audio::render::event_segments(&done.analysis),
        ..base_event(shared, job, attempt, Outcome::Done)
    }
}

/// Publishes a result event, carrying the current span's trace context.
async fn publish_result(
    shared: &Shared,
    publisher: &Channel,
    event: &ResultEvent,
) -> Result<(), PublishError> {
    let mut headers = FieldTable::default();
    vadflow_common::trace::inject(&tracing::Span::current(), &mut headers);
    publish_confirmed(
        publisher,
        &shared.config.topology.results_exchange(),
        RESULT_ROUTING_KEY,
        &event.encode(),
        message_properties(&event.job_id, headers),
    )
    .await
}

/// A failed attempt: publish what the settle plan says (a retry or a dead letter), then the
/// matching result event; ack once both are confirmed, otherwise return the job to the queue.
async fn settle_failure(
    shared: &Shared,
    publisher: &Channel,
    delivery: &Delivery,
    job: Option<&Job>,
    failure: Failure,
    attempt: u32,
) {
    let cfg = &shared.config;
    let props = &delivery.properties;
    let job_id = job.map_or_else(
        || {
            LenientJob::read(&delivery.data)
                .job_id()
                .unwrap_or("-")
                .to_owned()
        },
        |j| j.job_id.clone(),
    );
    let attempt_facts = Attempt {
        number: attempt,
        max_attempts: cfg.max_attempts,
        worker: &cfg.worker_id,
        now_ms: now_ms(),
    };
    let settlement = settle::plan(
        &failure,
        attempt_facts,
        props.headers().as_ref(),
        &cfg.topology,
        settle::equal_jitter,
    );
    let mut out_props = props.clone().with_headers(settlement.headers.clone());
    if out_props.delivery_mode().is_none() {
        out_props = out_props.with_delivery_mode(2);
    }
    let (exchange, routing_key) = match &settlement.route {
        Route::Retry {
            exchange,
            routing_key,
            expiration_ms,
        } => {
            out_props = out_props.with_expiration(ShortString::from(expiration_ms.to_string()));
            (exchange, routing_key)
        }
        Route::Dead {
            exchange,
            routing_key,
        } => (exchange, routing_key),
    };
    let forwarded =
        publish_confirmed(publisher, exchange, routing_key, &delivery.data, out_props).await;
    let (reason, message) = (settlement.failure.reason, &settlement.failure.error);
    // A job too malformed to read gets no event: the collector records its dead letter
    // from the dead-letter feed.
    let event = job.map(|j| ResultEvent {
        reason: Some(reason),
        error: Some(message.clone()),
        ..base_event(shared, j, attempt, settlement.outcome)
    });
    let published = match (&forwarded, &event) {
        (Ok(()), Some(ev)) => publish_result(shared, publisher, ev).await,
        (Ok(()), None) => Ok(()),
        (Err(_), _) => Ok(()),
    };
    match (forwarded, published) {
        (Ok(()), Ok(())) => {
            events::JobFailed {
                job_id: &job_id,
                attempt,
                reason,
                error: message,
                retrying: settlement.outcome == Outcome::Retrying,
            }
            .emit(&shared.jobs.metrics);
            ack(delivery, &job_id).await;
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(job_id = %job_id, error = %e, "cannot publish the failure; returning the job to the queue");
            requeue(delivery).await;
        }
    }
}

async fn ack(delivery: &Delivery, job_id: &str) {
    match delivery.ack(BasicAckOptions::default()).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            job_id,
            "ack not delivered: the channel is gone; the broker will redeliver the job, whose results are idempotent"
        ),
        Err(e) => {
            tracing::warn!(job_id, error = %e, "ack failed; the broker will redeliver the job, whose results are idempotent")
        }
    }
}

async fn requeue(delivery: &Delivery) {
    // reject (not nack): RabbitMQ 4 counts only rejects and returns toward delivery-limit.
    if let Err(e) = delivery.reject(BasicRejectOptions { requeue: true }).await {
        tracing::debug!(error = %e, "reject failed; the job returns to the queue when the channel closes");
    }
}
