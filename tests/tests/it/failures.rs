//! Bad input ends in the dead-letter queue with its reason, the row failed with a readable
//! error; the worker keeps running.

use chrono::{Duration, Utc};
use vadflow_common::amqp::{message_properties, publish_confirmed};
use vadflow_common::topology::{JOB_ROUTING_KEY, header_i64, header_str, headers};
use vadflow_tests::TestCtx;
use vadflow_tests::audio::{SENTENCES, compose};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_missing_and_malformed_jobs_are_dead_lettered() {
    let ctx = TestCtx::new("dlq").await;
    let good = compose(&SENTENCES[0..1], &[0.5, 0.5]);
    ctx.put(&format!("{}good.wav", ctx.prefix), good.wav())
        .await;
    // Corrupt: a WAV file cut off inside its format chunk.
    let mut corrupt = good.wav();
    corrupt.truncate(30);
    ctx.put(&format!("{}corrupt.wav", ctx.prefix), corrupt)
        .await;
    let now = Utc::now() - Duration::minutes(10);
    for key in ["good.wav", "corrupt.wav", "missing.wav"] {
        ctx.insert_file(&format!("{}{key}", ctx.prefix), now).await;
    }
    let report = ctx.enqueue("1h", "now", None, false).await;
    assert_eq!(report.published, 3);

    // A message that is not MessagePack at all.
    let (conn, ch) = ctx.channel().await;
    publish_confirmed(
        &ch,
        &ctx.topology.work_exchange(),
        JOB_ROUTING_KEY,
        b"{\"not\": \"msgpack\"}",
        message_properties("garbage-1", Default::default()),
    )
    .await
    .expect("published");
    let _ = conn.close(200, "done".into()).await;

    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let collector = ctx.spawn_collector();
    let rows = ctx
        .wait_files("good done, corrupt and missing failed", |rows| {
            rows.iter()
                .all(|r| r.status == "done" || r.status == "failed")
        })
        .await;
    let by = |name: &str| {
        rows.iter()
            .find(|r| r.key.ends_with(name))
            .expect("row")
            .clone()
    };
    assert_eq!(by("good.wav").status, "done");
    let corrupt = by("corrupt.wav");
    assert_eq!(corrupt.status, "failed");
    assert_eq!(corrupt.last_reason.as_deref(), Some("invalid-audio"));
    let err = corrupt.last_error.expect("error text");
    assert!(err.contains("corrupt.wav"), "error names the file: {err}");
    let missing = by("missing.wav");
    assert_eq!(missing.status, "failed");
    assert_eq!(missing.last_reason.as_deref(), Some("object-missing"));
    assert!(missing.last_error.expect("error").contains("missing.wav"));

    // Three dead letters: corrupt, missing, malformed — each with the original body and reasons.
    let (conn, letters) = ctx.take(&ctx.topology.dead_letter_queue(), 3).await;
    let mut reasons: Vec<String> = letters
        .iter()
        .map(|d| {
            let h = d.properties.headers().as_ref();
            assert!(header_str(h, headers::ERROR).is_some_and(|e| !e.is_empty()));
            assert_eq!(header_i64(h, headers::ATTEMPTS), Some(1));
            assert!(header_str(h, headers::WORKER).is_some());
            assert!(header_i64(h, headers::FIRST_FAILURE_MS).is_some());
            assert!(header_i64(h, headers::LAST_FAILURE_MS).is_some());
            header_str(h, headers::REASON).expect("reason header")
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["invalid-audio", "malformed-message", "object-missing"]
    );
    let malformed = letters
        .iter()
        .find(|d| {
            header_str(d.properties.headers().as_ref(), headers::REASON).as_deref()
                == Some("malformed-message")
        })
        .expect("malformed letter");
    assert_eq!(
        malformed.data, b"{\"not\": \"msgpack\"}",
        "original body kept"
    );
    let _ = conn.close(200, "done".into()).await;

    // The worker survived all of it.
    assert!(!worker.running.handle.is_finished());
    worker.stop().await.expect("worker stops cleanly");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_delivery_leaves_one_result_and_one_done_row() {
    let ctx = TestCtx::new("dup").await;
    let speech = compose(&SENTENCES[1..3], &[0.6, 1.0, 0.6]);
    let key = format!("{}dup.wav", ctx.prefix);
    ctx.put(&key, speech.wav()).await;
    let id = ctx
        .insert_file(&key, Utc::now() - Duration::minutes(5))
        .await;
    // The same job, delivered twice (as after a worker crash before its ack).
    let mut job = vadflow_common::Job::new(vadflow_tests::BUCKET, &key);
    job.file_id = Some(id);
    ctx.publish_jobs(&[job.clone(), job.clone()]).await;

    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    // Both deliveries produce a result event.
    let (conn, deliveries) = ctx.take(&ctx.topology.results_queue(), 2).await;
    let _ = conn.close(200, "done".into()).await;
    worker.stop().await.expect("worker stops");
    let events: Vec<_> = deliveries
        .iter()
        .map(|d| vadflow_common::ResultEvent::decode(&d.data).expect("event"))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e.job_id == job.job_id && e.attempt == 1)
    );
    // The collector applies the first and ignores the second.
    let first = vadflow_producer::collect::apply(&ctx.pool, &events[0], false)
        .await
        .expect("apply");
    let second = vadflow_producer::collect::apply(&ctx.pool, &events[1], false)
        .await
        .expect("apply");
    assert!(first, "the first event changes the row");
    assert!(!second, "the duplicate changes nothing");

    let results: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_results WHERE outcome = 'done'")
            .fetch_one(&ctx.pool)
            .await
            .expect("count");
    assert_eq!(results, 1, "the duplicate event changed nothing");
    let rows = ctx.files().await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("done", 1));
    let listed = ctx
        .s3
        .list_objects_v2()
        .bucket(vadflow_tests::BUCKET)
        .prefix(&ctx.results_prefix)
        .send()
        .await
        .expect("list");
    let mut names: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| {
            o.key()
                .map(|k| k.rsplit('/').next().unwrap_or_default().to_owned())
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "manifest.jsonl",
            "segments.json",
            "segments.rttm",
            "speech.wav"
        ],
        "one result set"
    );
    ctx.cleanup().await;
}
