//! The test's own view of the broker: channels on its topology, queue depths, taking and
//! publishing messages directly.

use crate::{DEADLINE, TestCtx};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

impl TestCtx {
    /// A channel on a fresh connection, with the topology declared.
    pub async fn channel(&self) -> (lapin::Connection, lapin::Channel) {
        let conn =
            vadflow_common::amqp::connect(&self.stack.amqp_url, &format!("test {}", self.id))
                .await
                .expect("connect to RabbitMQ");
        let ch = vadflow_common::amqp::confirm_channel(&conn)
            .await
            .expect("channel");
        self.topology.declare(&ch).await.expect("declare topology");
        (conn, ch)
    }

    /// Messages ready in `queue` (passive declare).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let (conn, ch) = self.channel().await;
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive declare");
        let _ = conn.close(200, "done".into()).await;
        q.message_count()
    }

    /// Consumes `n` messages from `queue` (they are left unacked and return to the queue when
    /// the returned connection closes). Fails after the deadline.
    pub async fn take(&self, queue: &str, n: usize) -> (lapin::Connection, Vec<Delivery>) {
        let (conn, ch) = self.channel().await;
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "test-reader".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while out.len() < n {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(d))) => out.push(d),
                Ok(other) => panic!("consumer of {queue} ended: {other:?}"),
                Err(_) => panic!(
                    "timed out waiting for {n} messages on {queue}; got {}",
                    out.len()
                ),
            }
        }
        (conn, out)
    }

    /// Publishes jobs straight to the work exchange, with confirms.
    pub async fn publish_jobs(&self, jobs: &[vadflow_common::Job]) {
        let messages: Vec<(String, Vec<u8>)> = jobs
            .iter()
            .map(|j| (j.job_id.clone(), j.encode()))
            .collect();
        let exchange = self.topology.work_exchange();
        self.publish(
            &exchange,
            vadflow_common::topology::JOB_ROUTING_KEY,
            &messages,
        )
        .await;
    }

    /// Publishes result events straight to the results exchange, with confirms.
    pub async fn publish_results(&self, events: &[vadflow_common::wire::ResultEvent]) {
        let messages: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| (e.job_id.clone(), e.encode()))
            .collect();
        let exchange = self.topology.results_exchange();
        self.publish(
            &exchange,
            vadflow_common::topology::RESULT_ROUTING_KEY,
            &messages,
        )
        .await;
    }

    /// Publishes (message id, body) pairs in order, with confirms.
    pub async fn publish(&self, exchange: &str, routing_key: &str, messages: &[(String, Vec<u8>)]) {
        let (conn, ch) = self.channel().await;
        for (id, body) in messages {
            vadflow_common::amqp::publish_confirmed(
                &ch,
                exchange,
                routing_key,
                body,
                vadflow_common::amqp::message_properties(id, FieldTable::default()),
            )
            .await
            .expect("publish");
        }
        let _ = conn.close(200, "done".into()).await;
    }

    /// Takes the next ready message of the work queue on `ch` (a channel the test holds, so the
    /// delivery can be acked, i.e. removed, or left to return when the channel closes).
    pub async fn get_job_message(&self, ch: &lapin::Channel) -> Option<Delivery> {
        ch.basic_get(
            self.topology.work_queue().as_str().into(),
            lapin::options::BasicGetOptions { no_ack: false },
        )
        .await
        .expect("basic.get")
        .map(|m| m.delivery)
    }
}
