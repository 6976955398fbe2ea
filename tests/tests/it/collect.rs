//! The collector stores events in batches, one transaction each, and still isolates an event
//! the database can never store: the rest of its batch is recorded, and only that event is
//! dead-lettered.

use vadflow_common::wire::{Outcome, ResultEvent, VERSION};
use vadflow_tests::{BUCKET, TestCtx};

fn done_event(id: i64, key: &str, worker: &str) -> ResultEvent {
    ResultEvent {
        v: VERSION,
        job_id: format!("job-{id}"),
        file_id: Some(id),
        bucket: BUCKET.into(),
        key: key.into(),
        outcome: Outcome::Done,
        attempt: 1,
        worker_id: worker.into(),
        finished_at_ms: chrono::Utc::now().timestamp_millis(),
        results_bucket: Some(BUCKET.into()),
        results_prefix: Some(format!("results/{key}/")),
        duration_s: Some(2.0),
        speech_s: Some(1.5),
        segments: Some(1),
        reason: None,
        error: None,
        external_id: None,
        segment_list: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_an_unstorable_event_records_the_rest() {
    let ctx = TestCtx::new("collect").await;
    // A rule of this test's schema that one event breaks (SQLSTATE 23514, a data error).
    sqlx::query("ALTER TABLE job_results ADD CONSTRAINT no_poison CHECK (worker_id <> 'poison')")
        .execute(&ctx.pool)
        .await
        .expect("add constraint");
    let n = 300;
    let poisoned = 137;
    let mut events = Vec::new();
    for i in 0..n {
        let key = format!("{}f{i}.wav", ctx.prefix);
        let id = ctx.insert_file(&key, chrono::Utc::now()).await;
        let worker = if i == poisoned { "poison" } else { "w1" };
        events.push(done_event(id, &key, worker));
    }
    // All events wait in the queue before the writer starts, so they arrive in batches.
    ctx.publish_results(&events).await;

    let collector = ctx.spawn_collector();
    let rows = ctx
        .wait_files("every storable event recorded", |rows| {
            rows.iter().filter(|r| r.status == "done").count() == n - 1
        })
        .await;
    let (conn, dead) = ctx.take(&ctx.topology.results_dead_queue(), 1).await;
    let _ = conn.close(200, "done".into()).await;
    let dead = ResultEvent::decode(&dead[0].data).expect("the dead-lettered event");
    assert_eq!(dead.worker_id, "poison");
    let poisoned_key = &events[poisoned].key;
    for row in &rows {
        assert_eq!(
            row.status == "done",
            &row.key != poisoned_key,
            "{}",
            row.key
        );
    }
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM job_results")
        .fetch_one(&ctx.pool)
        .await
        .expect("count");
    assert_eq!(recorded, n as i64 - 1);
    collector.stop().await.expect("collector stops cleanly");
    assert_eq!(ctx.queue_depth(&ctx.topology.results_queue()).await, 0);
    ctx.cleanup().await;
}
