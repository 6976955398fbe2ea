//! `producer collect`: the collector, the one consumer of result events. It records each
//! event once in `job_results` and moves the file's row to its new state, in one transaction,
//! and acks the event only after that transaction committed.
//!
//! It also consumes the dead-letter feed (a copy of every job dead letter, see
//! `common::topology`) and records each letter as its file's `failed` outcome: the worker's
//! dead letters (the same record as the worker's own `failed` event, so stored once), jobs too
//! malformed for the worker to name, and jobs the broker dead-lettered at the delivery limit.
//!
//! It is the seed design's single writer, distributed: workers never touch the database.

use crate::cli::CollectArgs;
use anyhow::Context;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vadflow_common::deadletter::Letter;
use vadflow_common::session::{Backoff, Session, reconnect};
use vadflow_common::wire::ResultEvent;

pub mod events;
mod queues;
mod record;
pub mod segments;
mod stats;
use events::msg;
use record::apply_in;
pub use record::{apply, is_permanent};
use segments::SegmentSource;
pub use stats::{CollectorStats, QueueGauge};

/// The collector, built from its settings and ready to run: the one builder that `main` and
/// the tests use.
#[derive(Debug)]
pub struct Collector {
    args: CollectArgs,
    pool: PgPool,
    topology: vadflow_common::Topology,
    ca_pem: Option<String>,
    stats: Arc<CollectorStats>,
    http: Option<tokio::net::TcpListener>,
    segments: Option<SegmentSource>,
}

impl Collector {
    /// Validates `args`, binds the health endpoint (when `--http-addr` is set) and connects to
    /// the database (retrying for `--connect-timeout`); the broker comes in
    /// [`Collector::run_until_stopped`], which reconnects to it for as long as it runs.
    pub async fn build(args: CollectArgs) -> anyhow::Result<Collector> {
        let topology = args.amqp.topology()?;
        let ca_pem = args.amqp.ca_pem()?;
        let http = match args.http_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listen on --http-addr {addr}"))?,
            ),
            None => None,
        };
        let pool = args.db.connect().await?;
        let segments = if args.store_segments {
            Some(SegmentSource::new(args.s3.client().await?))
        } else {
            None
        };
        Ok(Collector {
            args,
            pool,
            topology,
            ca_pem,
            stats: Arc::new(CollectorStats::default()),
            http,
            segments,
        })
    }

    /// The bound address of the health endpoint, if it has one.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Consumes result events and dead letters until `shutdown` is cancelled (or, with
    /// `--exit-when-idle`, until both queues stay empty that long).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Collector {
            args,
            pool,
            topology,
            ca_pem,
            stats,
            http,
            segments,
        } = self;
        let sink = Sink {
            pool: &pool,
            stats: &stats,
            segments: segments.as_ref(),
            store_segments: args.store_segments,
            shutdown: &shutdown,
        };
        if let Some(listener) = http {
            let bound = vadflow_common::http::serve_on(listener, stats.clone(), shutdown.clone())?;
            tracing::info!(addr = %bound, "{}", msg::SERVING);
        }
        // The queue poller has a connection, a runtime and a thread of its own: lapin runs a
        // connection's internal tasks on the runtime it was opened in, and under broker faults
        // the poller's traffic on the collector's runtime could starve the consumer (the fault
        // suite caught it). Monitoring never shares fate with recording results.
        let stop_polling = shutdown.child_token();
        let _poller = stop_polling.clone().drop_guard();
        queues::spawn(
            queues::Poller {
                url: args.amqp.amqp_url.expose().to_owned(),
                ca_pem: ca_pem.clone(),
                topology: topology.clone(),
                stats: stats.clone(),
                interval: args.queue_poll_interval,
            },
            stop_polling,
        );
        let queue = topology.results_queue();
        let mut backoff = Backoff::new();
        loop {
            let open = || async {
                let session = Session::open(
                    args.amqp.amqp_url.expose(),
                    ca_pem.as_deref(),
                    "vadflow-collector",
                    &topology,
                    &queue,
                    args.prefetch,
                )
                .await?;
                let letters = session
                    .consume_also(&topology.dead_letter_feed_queue())
                    .await?;
                Ok::<_, vadflow_common::session::SessionError>((session, letters))
            };
            let Some((session, letters)) =
                reconnect(&shutdown, &mut backoff, msg::CANNOT_REACH_BROKER, open).await
            else {
                return Ok(());
            };
            stats.ready.store(true, Ordering::Relaxed);
            tracing::info!(queue = %queue, "{}", msg::CONSUMING);
            let consumed = consume(&session, letters, &sink, args.exit_when_idle).await;
            stats.ready.store(false, Ordering::Relaxed);
            match consumed {
                Ok(()) => {
                    session.cancel().await;
                    session.close().await;
                    tracing::info!("{}", msg::STOPPED);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "{}", msg::SESSION_LOST);
                }
            }
        }
    }
}

/// Runs the collector until `shutdown` is cancelled.
pub async fn run(args: CollectArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    Collector::build(args)
        .await?
        .run_until_stopped(shutdown)
        .await
}

/// Where result events go, and what the collector needs to put them there.
struct Sink<'a> {
    pool: &'a PgPool,
    stats: &'a CollectorStats,
    /// Reads segments that did not fit in their event (with `--store-segments`).
    segments: Option<&'a SegmentSource>,
    store_segments: bool,
    shutdown: &'a CancellationToken,
}

/// Most result events stored in one transaction.
const MAX_BATCH: usize = 256;

/// Consumes until shutdown (Ok) or until the session breaks (Err). Events are stored in batches:
/// whatever the broker has already delivered (up to [`MAX_BATCH`]) goes into one transaction, so
/// a busy collector commits far less often than once per event, and an idle one adds no delay.
async fn consume(
    session: &Session,
    letters: lapin::Consumer,
    sink: &Sink<'_>,
    exit_when_idle: Option<Duration>,
) -> anyhow::Result<()> {
    let idle = exit_when_idle.unwrap_or(Duration::MAX);
    // Each stream ends with a marker, so that losing either consumer ends the session.
    let ended = |queue: &'static str| futures_util::stream::iter([Ok(Incoming::Ended(queue))]);
    let results = session
        .consumer
        .clone()
        .map(|d| d.map(Incoming::Result))
        .chain(ended("results"));
    let letters = letters
        .map(|d| d.map(Incoming::Letter))
        .chain(ended("dead-letter feed"));
    let mut incoming = futures_util::stream::select(results, letters);
    loop {
        let next = tokio::select! {
            _ = sink.shutdown.cancelled() => return Ok(()),
            _ = session.lost.cancelled() => anyhow::bail!("the broker connection failed"),
            next = tokio::time::timeout(idle, incoming.next()) => next,
        };
        let first = match next {
            Err(_) => {
                tracing::info!(
                    idle_ms = idle.as_millis() as u64,
                    "results queue idle; exiting"
                );
                return Ok(());
            }
            Ok(None) => anyhow::bail!("the broker cancelled the consumer"),
            Ok(Some(Err(e))) => return Err(e).context("receive result event"),
            Ok(Some(Ok(d))) => d,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match incoming.next().now_or_never() {
                Some(Some(Ok(d))) => batch.push(d),
                Some(Some(Err(e))) => return Err(e).context("receive result event"),
                Some(None) => anyhow::bail!("the broker cancelled the consumer"),
                None => break,
            }
        }
        handle_batch(batch, sink).await?;
    }
}

/// A delivery from one of the two queues the collector consumes.
enum Incoming {
    /// A result event, from the results queue.
    Result(Delivery),
    /// A copy of a job dead letter, from the dead-letter feed.
    Letter(Delivery),
    /// The consumer of the named queue ended (the broker cancelled it).
    Ended(&'static str),
}

/// A result event and the span it is recorded in (a child of the worker's send span).
struct Received {
    delivery: Delivery,
    event: ResultEvent,
    span: tracing::Span,
}

/// Handles a batch of deliveries: malformed events are dead-lettered, dead letters that name no
/// file are acked (there is no row to record them on; they stay in the dead-letter queue), the
/// rest [`store`]d.
async fn handle_batch(deliveries: Vec<Incoming>, sink: &Sink<'_>) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(deliveries.len());
    for incoming in deliveries {
        let (delivery, decoded) = match incoming {
            Incoming::Ended(queue) => {
                anyhow::bail!("the broker cancelled the consumer of the {queue} queue")
            }
            Incoming::Result(d) => {
                let decoded = ResultEvent::decode(&d.data);
                (d, decoded)
            }
            Incoming::Letter(d) => {
                let message_id = d.properties.message_id().as_ref().map(|m| m.to_string());
                let letter = Letter::read(
                    d.properties.headers().as_ref(),
                    &d.data,
                    message_id.as_deref(),
                );
                match letter.outcome(chrono::Utc::now().timestamp_millis()) {
                    Some(event) => (d, Ok(event)),
                    None => {
                        tracing::debug!(
                            id = letter.id().unwrap_or("-"),
                            "dead letter names no file; nothing to record"
                        );
                        ack(&d, letter.id().unwrap_or("-")).await?;
                        continue;
                    }
                }
            }
        };
        match decoded {
            Ok(event) => {
                let span = tracing::info_span!(
                    "record",
                    otel.name = "process result",
                    otel.kind = "consumer",
                    messaging.system = "rabbitmq",
                    messaging.operation.type = "process",
                    job_id = %event.job_id,
                    outcome = event.outcome.as_str(),
                );
                vadflow_common::trace::set_parent(&span, delivery.properties.headers().as_ref());
                batch.push(Received {
                    delivery,
                    event,
                    span,
                });
            }
            Err(e) => {
                events::EventDeadLettered {
                    span: &tracing::Span::current(),
                    job_id: None,
                    error: &e.to_string(),
                }
                .emit(sink.stats);
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .context("reject malformed result event")?;
            }
        }
    }
    store(batch, sink).await
}

/// Stores events in one transaction, then acks them. The database may be away: the events stay
/// unacked and the transaction is retried, so nothing is lost. If one event's data can never be
/// stored, a batch is split into single events, and only that event is dead-lettered: retrying
/// it could not help, and would hold up every event behind it.
async fn store(mut batch: Vec<Received>, sink: &Sink<'_>) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    if let Some(source) = sink.segments {
        for r in &mut batch {
            if !source
                .complete(&mut r.event, sink.stats, sink.shutdown)
                .await
            {
                // Stopping: leaving them unacked, the broker redelivers them.
                return Ok(());
            }
        }
    }
    let mut backoff = Backoff::new();
    let inserted = loop {
        match apply_batch(sink, &batch).await {
            Ok(inserted) => break inserted,
            Err(e) if is_permanent(&e) && batch.len() > 1 => {
                tracing::warn!(
                    events = batch.len(),
                    error = format!("{e:#}"),
                    "a result event in the batch cannot be stored; storing them one by one"
                );
                for r in batch {
                    Box::pin(store(vec![r], sink)).await?;
                }
                return Ok(());
            }
            Err(e) if is_permanent(&e) => {
                let r = &batch[0];
                events::EventDeadLettered {
                    span: &r.span,
                    job_id: Some(&r.event.job_id),
                    error: &format!("{e:#}"),
                }
                .emit(sink.stats);
                r.delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .context("reject unstorable result event")?;
                return Ok(());
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    events = batch.len(),
                    error = format!("{e:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot record results; retrying"
                );
                tokio::select! {
                    // Leaving them unacked: the broker redelivers them to the next collector.
                    _ = sink.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    for (r, inserted) in batch.iter().zip(inserted) {
        // A redelivery, or the dead-letter feed's copy of a failure the worker reported, adds
        // no record and is not counted again.
        if inserted {
            events::Recorded {
                span: &r.span,
                job_id: &r.event.job_id,
                outcome: r.event.outcome,
                reason: r.event.reason,
                lag: Duration::from_millis(
                    u64::try_from(now_ms - r.event.finished_at_ms).unwrap_or(0),
                ),
            }
            .emit(sink.stats);
        }
        ack(&r.delivery, &r.event.job_id).await?;
    }
    Ok(())
}

/// Stores events in one transaction; returns, per event, whether it added a record.
async fn apply_batch(sink: &Sink<'_>, batch: &[Received]) -> anyhow::Result<Vec<bool>> {
    let mut tx = sink.pool.begin().await.context("begin transaction")?;
    let mut inserted = Vec::with_capacity(batch.len());
    for r in batch {
        let applied = apply_in(&mut tx, &r.event, sink.store_segments)
            .instrument(r.span.clone())
            .await?;
        tracing::trace!(parent: &r.span, job_id = %r.event.job_id, inserted = applied.inserted, changed = applied.changed, "result event applied");
        inserted.push(applied.inserted);
    }
    tx.commit().await.context("commit results")?;
    Ok(inserted)
}

async fn ack(delivery: &Delivery, job_id: &str) -> anyhow::Result<()> {
    if !delivery
        .ack(BasicAckOptions::default())
        .await
        .context("ack result event")?
    {
        tracing::warn!(
            job_id,
            "ack not delivered (channel closed); the event will be redelivered and ignored"
        );
    }
    Ok(())
}
