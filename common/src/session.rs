//! A consuming session on the broker: connection, a consuming channel with a prefetch limit,
//! a confirm-mode channel for publishing, the declared topology, and the consumer.
//! Both long-running consumers (the worker and the collector) open one per connection and
//! open a new one, after a backoff, when the connection is lost.
//!
//! A session knows the moment it is lost ([`Session::lost`]): the client library hands over
//! deliveries it had buffered before it reports a dead connection on the consumer stream, so a
//! consumer that only read the stream would start work it can never acknowledge.

use crate::amqp::{self, ConnectError};
use crate::topology::Topology;
use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

/// An open session. Dropping it closes nothing gracefully; call [`Session::close`].
#[derive(Debug)]
pub struct Session {
    pub conn: Connection,
    pub consume: Channel,
    pub publish: Channel,
    pub consumer: Consumer,
    pub tag: String,
    /// Cancelled the moment the connection or one of its channels fails.
    pub lost: CancellationToken,
    /// Stops the watcher of connection events when the session is dropped.
    _watch: DropGuard,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("set up channels, topology and consumer on queue {queue}: {source}")]
    Setup {
        queue: String,
        #[source]
        source: lapin::Error,
    },
}

impl Session {
    /// Connects, declares the topology, sets `basic_qos(prefetch)` and then starts consuming
    /// `queue` (qos before consume, so the broker never sends more than `prefetch` unacked).
    pub async fn open(
        url: &str,
        ca_pem: Option<&str>,
        name: &str,
        topology: &Topology,
        queue: &str,
        prefetch: u16,
    ) -> Result<Session, SessionError> {
        let conn = amqp::connect_tls(url, ca_pem, name).await?;
        let lost = CancellationToken::new();
        let watch = CancellationToken::new();
        // Listen before anything can fail: the client only reports errors to live listeners.
        let mut events = conn.events_listener();
        let (on_lost, stop) = (lost.clone(), watch.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = events.next() => match ev {
                        Some(lapin::Event::Error(e)) => {
                            tracing::debug!(error = %e, "broker session lost");
                            on_lost.cancel();
                            return;
                        }
                        Some(_) => {}
                        None => {
                            on_lost.cancel();
                            return;
                        }
                    },
                }
            }
        });
        let setup = |source| SessionError::Setup {
            queue: queue.to_owned(),
            source,
        };
        let publish = amqp::confirm_channel(&conn).await.map_err(setup)?;
        topology.declare(&publish).await.map_err(setup)?;
        let consume = conn.create_channel().await.map_err(setup)?;
        consume
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(setup)?;
        let tag = format!("{name}-{}", uuid::Uuid::now_v7());
        let consumer = start_consumer(&consume, queue, &tag).await?;
        Ok(Session {
            conn,
            consume,
            publish,
            consumer,
            tag,
            lost,
            _watch: watch.drop_guard(),
        })
    }

    /// Also consumes `queue` on the consuming channel (same prefetch), under its own tag.
    pub async fn consume_also(&self, queue: &str) -> Result<Consumer, SessionError> {
        start_consumer(&self.consume, queue, &format!("{}-{queue}", self.tag)).await
    }

    /// Whether the session can still take deliveries: nothing failed, both channels are open.
    pub fn usable(&self) -> bool {
        !self.lost.is_cancelled()
            && self.conn.status().connected()
            && self.consume.status().connected()
            && self.publish.status().connected()
    }

    /// Stops deliveries: the broker sends nothing more on this consumer.
    pub async fn cancel(&self) {
        if let Err(e) = self
            .consume
            .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default())
            .await
        {
            tracing::debug!(error = %e, "cancel consumer");
        }
    }

    /// Closes the connection; unacked deliveries return to their queue.
    pub async fn close(self) {
        let _ = self.conn.close(200, "shutdown".into()).await;
    }
}

async fn start_consumer(ch: &Channel, queue: &str, tag: &str) -> Result<Consumer, SessionError> {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|source| SessionError::Setup {
        queue: queue.to_owned(),
        source,
    })
}

/// Opens a session with `open`, retrying with `backoff` (each failure logged as `message`)
/// until it opens, or returns `None` once `shutdown` is cancelled. The worker's consumer and the
/// collector both reconnect through it.
pub async fn reconnect<T, E, F, Fut>(
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
    message: &str,
    mut open: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    loop {
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = open() => r,
        };
        match opened {
            Ok(session) => {
                backoff.reset();
                return Some(session);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "{message}");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Exponential backoff with full jitter for reconnect loops: 0.5 s doubling up to 30 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: uniformly random in [cap/2, cap], cap = min(30 s, 0.5 s × 2^n).
    pub fn next_delay(&mut self) -> Duration {
        let cap_ms = (500u64 << self.attempt.min(6)).min(30_000);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(cap_ms / 2 + fastrand::u64(0..=cap_ms / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_secs(15));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }
}
