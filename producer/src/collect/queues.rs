//! The queue poller: the depth and consumers of every queue for `/metrics`, read on a
//! connection of its own, from a thread and a runtime of its own, so that nothing it does can
//! hold up the connection and the runtime that results are consumed and acked on.

use super::{CollectorStats, QueueGauge};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the queue poller needs.
pub(super) struct Poller {
    pub url: String,
    pub ca_pem: Option<String>,
    pub topology: vadflow_common::Topology,
    pub stats: Arc<CollectorStats>,
    pub interval: Duration,
}

/// Starts [`poll`] on a thread of its own, with a single-threaded runtime; it ends with `stop`.
pub(super) fn spawn(p: Poller, stop: CancellationToken) {
    let started = std::thread::Builder::new()
        .name("queue-poller".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(poll(p, stop)),
                Err(e) => tracing::warn!(error = %e, "queue poller cannot start; no queue metrics"),
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "queue poller cannot start; no queue metrics");
    }
}

/// Reads the depth and consumers of every queue each `interval` into the stats, on a connection
/// of its own, until `stop`. A read that fails or takes longer than the interval drops the
/// connection (a new one is made for the next read) and leaves the last figures, whose
/// timestamp shows their age.
async fn poll(p: Poller, stop: CancellationToken) {
    let interval = p.interval.max(Duration::from_millis(100));
    let budget = interval.max(Duration::from_secs(5));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<lapin::Connection> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if conn.as_ref().is_none_or(|c| !c.status().connected()) {
            let connect = vadflow_common::amqp::connect_tls(
                &p.url,
                p.ca_pem.as_deref(),
                "vadflow-collector-queues",
            );
            conn = match tokio::time::timeout(budget, connect).await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "queue poller cannot reach the broker");
                    None
                }
                Err(_) => None,
            };
        }
        let Some(c) = &conn else { continue };
        match tokio::time::timeout(budget, p.topology.depths(c)).await {
            Ok(Ok(depths)) => p.stats.set_queues(
                depths
                    .into_iter()
                    .filter_map(|(queue, depth)| {
                        let (messages, consumers) = depth?;
                        Some(QueueGauge {
                            role: p.topology.role(&queue).to_owned(),
                            messages: messages.into(),
                            consumers: consumers.into(),
                        })
                    })
                    .collect(),
            ),
            failed => {
                tracing::debug!(
                    timed_out = failed.is_err(),
                    "cannot read queue depths; reconnecting"
                );
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.close(200, "stopping".into())).await;
    }
}
