//! Transient failures are retried through the delay queues and then dead-lettered; a worker
//! whose broker connection is cut reports not-ready, reconnects and goes on. Faults come from a
//! TCP proxy the test owns, so the shared servers are never disturbed.

use chrono::{Duration, Utc};
use vadflow_common::topology::{header_i64, header_str, headers};
use vadflow_tests::TestCtx;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::proxy::{Proxy, upstream_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_failures_are_retried_then_dead_lettered() {
    let ctx = TestCtx::new("retry").await;
    let key = format!("{}flaky.wav", ctx.prefix);
    ctx.put(&key, compose(&SENTENCES[0..1], &[0.4, 0.4]).wav())
        .await;
    ctx.insert_file(&key, Utc::now() - Duration::minutes(5))
        .await;
    let endpoint = ctx.stack.s3.endpoint.clone().expect("local S3 endpoint");
    let proxy = Proxy::start(upstream_of(&endpoint, 80)).await;
    proxy.refuse(true); // S3 resets every connection: a transient failure
    let mut args = ctx.worker_args();
    args.s3.endpoint = Some(proxy.url_for(&endpoint));
    args.s3.s3_max_attempts = 1;
    args.max_attempts = 3;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 1);
    let worker = ctx.spawn_worker(args).await;
    let collector = ctx.spawn_collector();

    let (conn, letters) = ctx.take(&ctx.topology.dead_letter_queue(), 1).await;
    let h = letters[0].properties.headers().as_ref();
    assert_eq!(
        header_str(h, headers::REASON).as_deref(),
        Some("retries-exhausted")
    );
    assert_eq!(header_i64(h, headers::ATTEMPTS), Some(3));
    let error = header_str(h, headers::ERROR).expect("error text");
    assert!(
        error.contains("3 attempts failed") && error.contains("flaky.wav"),
        "{error}"
    );
    assert!(
        header_i64(h, headers::FIRST_FAILURE_MS) < header_i64(h, headers::LAST_FAILURE_MS),
        "first and last failure differ by the backoff"
    );
    let _ = conn.close(200, "done".into()).await;
    let rows = ctx
        .wait_files("the row failed", |rows| rows[0].status == "failed")
        .await;
    assert_eq!(rows[0].attempts, 3);
    assert_eq!(rows[0].last_reason.as_deref(), Some("retries-exhausted"));
    let outcomes: Vec<(i32, String)> =
        sqlx::query_as("SELECT attempt, outcome FROM job_results ORDER BY attempt")
            .fetch_all(&ctx.pool)
            .await
            .expect("results");
    assert_eq!(
        outcomes,
        [
            (1, "retrying".to_owned()),
            (2, "retrying".to_owned()),
            (3, "failed".to_owned())
        ]
    );
    assert!(proxy.accepted() >= 3, "every attempt reached the proxy");
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_failure_that_clears_ends_done_on_a_later_attempt() {
    let ctx = TestCtx::new("recover").await;
    let key = format!("{}later.wav", ctx.prefix);
    ctx.put(&key, compose(&SENTENCES[1..2], &[0.4, 0.4]).wav())
        .await;
    ctx.insert_file(&key, Utc::now() - Duration::minutes(5))
        .await;
    let endpoint = ctx.stack.s3.endpoint.clone().expect("local S3 endpoint");
    let proxy = Proxy::start(upstream_of(&endpoint, 80)).await;
    proxy.refuse(true);
    let mut args = ctx.worker_args();
    args.s3.endpoint = Some(proxy.url_for(&endpoint));
    args.s3.s3_max_attempts = 1;
    args.max_attempts = 5;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 1);
    let worker = ctx.spawn_worker(args).await;
    let collector = ctx.spawn_collector();
    ctx.wait_files("the row retrying", |rows| rows[0].status == "retrying")
        .await;
    proxy.refuse(false);
    let rows = ctx
        .wait_files("the row done", |rows| rows[0].status == "done")
        .await;
    assert!(rows[0].attempts >= 2, "{rows:?}");
    assert!(rows[0].last_error.is_none());
    assert_eq!(ctx.queue_depth(&ctx.topology.dead_letter_queue()).await, 0);
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_reconnects_after_losing_the_broker() {
    let ctx = TestCtx::new("reconnect").await;
    let keys: Vec<String> = (0..2)
        .map(|i| format!("{}take-{i}.wav", ctx.prefix))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        ctx.put(key, compose(&SENTENCES[i..=i], &[0.3, 0.3]).wav())
            .await;
    }
    let proxy = Proxy::start(upstream_of(&ctx.stack.amqp_url, 5672)).await;
    let mut args = ctx.worker_args();
    args.amqp.amqp_url = vadflow_common::redact::SecretUrl::new(proxy.url_for(&ctx.stack.amqp_url));
    let worker = ctx.spawn_worker(args).await;
    let ready = worker.ready.clone();
    let collector = ctx.spawn_collector();
    ready.wait_for(true).await;

    // First job, before the fault.
    ctx.insert_file(&keys[0], Utc::now() - Duration::minutes(5))
        .await;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 1);
    ctx.wait_files("first done", |rows| rows[0].status == "done")
        .await;

    // The broker goes away: connections are cut and new ones refused.
    proxy.refuse(true);
    proxy.cut();
    tokio::time::timeout(vadflow_tests::DEADLINE, ready.wait_for(false))
        .await
        .expect("readiness goes false while disconnected");
    let refused_before = proxy.accepted();
    ctx.insert_file(&keys[1], Utc::now() - Duration::minutes(4))
        .await;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 1);
    // The worker keeps trying (with backoff) while the broker is away.
    tokio::time::timeout(
        vadflow_tests::DEADLINE,
        proxy.wait_accepted(refused_before + 1),
    )
    .await
    .expect("the worker retries its connection");
    assert!(!ready.get());
    proxy.refuse(false);
    tokio::time::timeout(vadflow_tests::DEADLINE, ready.wait_for(true))
        .await
        .expect("readiness comes back after reconnecting");
    let rows = ctx
        .wait_files("second done after the reconnect", |rows| {
            rows.len() == 2 && rows.iter().all(|r| r.status == "done")
        })
        .await;
    assert!(rows.iter().all(|r| r.attempts == 1), "{rows:?}");
    // Exactly one result per job: nothing was processed twice or lost.
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM job_results WHERE outcome = 'done'")
        .fetch_one(&ctx.pool)
        .await
        .expect("count");
    assert_eq!(done, 2);
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}
