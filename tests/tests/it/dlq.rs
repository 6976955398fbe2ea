//! `producer dlq list|replay|purge` on real dead letters: listing leaves them in place, a replay
//! removes a dead letter only once its copy is confirmed and the replayed job then succeeds, and
//! purge refuses to run unconfirmed.

use chrono::{Duration, Utc};
use vadflow_common::Job;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{BUCKET, TestCtx};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_listed_replayed_and_purged() {
    let ctx = TestCtx::new("dlqcli").await;
    // Two files whose objects are not uploaded yet: both jobs die as object-missing.
    let late = format!("{}late.wav", ctx.prefix);
    let never = format!("{}never.wav", ctx.prefix);
    let created = Utc::now() - Duration::minutes(5);
    ctx.insert_file(&late, created).await;
    ctx.insert_file(&never, created).await;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 2);
    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let collector = ctx.spawn_collector();
    ctx.wait_files("both failed", |rows| {
        rows.iter().all(|r| r.status == "failed")
    })
    .await;

    // list: both, with reason and object, as JSON; listing twice changes nothing.
    let list = || async {
        let (code, out, err) = ctx.producer(&["dlq", "list", "--json"]).await;
        assert_eq!(code, Some(0), "dlq list failed: {err}");
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON list")
    };
    let first = list().await;
    let second = list().await;
    assert_eq!(first, second, "listing does not consume or reorder");
    let letters = first.as_array().expect("array");
    assert_eq!(letters.len(), 2);
    for l in letters {
        assert_eq!(l["reason"], "object-missing");
        assert_eq!(l["attempts"], 1);
        assert_eq!(l["bucket"], BUCKET);
        assert!(l["error"].as_str().is_some_and(|e| e.contains(".wav")));
    }
    let late_id = letters
        .iter()
        .find(|l| l["key"] == late.as_str())
        .and_then(|l| l["id"].as_str())
        .expect("late.wav listed")
        .to_owned();
    let (code, table, _) = ctx.producer(&["dlq", "list"]).await;
    assert_eq!(code, Some(0));
    assert!(
        table.contains("2 dead letter(s)") && table.contains(&late_id),
        "{table}"
    );

    // Fix the cause for one of them, then replay it by id.
    let audio = compose(&SENTENCES[0..2], &[0.5, 0.8, 0.5]);
    ctx.put(&late, audio.wav()).await;
    let (code, out, err) = ctx
        .producer(&["dlq", "replay", &late_id, "no-such-id"])
        .await;
    assert_eq!(code, Some(3), "an unknown id is reported: {out} {err}");
    assert!(
        out.contains("replayed=1") && err.contains("no-such-id"),
        "{out} {err}"
    );
    let rows = ctx
        .wait_files("the replayed file done", |rows| {
            rows.iter().any(|r| r.key == late && r.status == "done")
        })
        .await;
    let never_row = rows.iter().find(|r| r.key == never).expect("row");
    assert_eq!(never_row.status, "failed", "the other one is untouched");
    let left = list().await;
    let left = left.as_array().expect("array");
    assert_eq!(left.len(), 1, "only the replayed letter left the queue");
    assert_eq!(left[0]["key"], never.as_str());
    // The replay was a new job for the same object, with its own result rows.
    let jobs: Vec<(String, String)> = sqlx::query_as(
        "SELECT job_id, outcome FROM job_results WHERE key = $1 ORDER BY finished_at",
    )
    .bind(&late)
    .fetch_all(&ctx.pool)
    .await
    .expect("results");
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!((jobs[0].1.as_str(), jobs[1].1.as_str()), ("failed", "done"));
    assert_ne!(jobs[0].0, jobs[1].0);
    assert_eq!(jobs[0].0, late_id);

    // status: counts by state from the database, depths from the broker.
    let (code, out, err) = ctx.producer(&["status", "--json"]).await;
    assert_eq!(code, Some(0), "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status["files"]["done"], 1, "{status}");
    assert_eq!(status["files"]["failed"], 1, "{status}");
    assert_eq!(status["files"]["total"], 2, "{status}");
    let depth = |name: String| {
        status["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .find(|q| q["queue"] == name.as_str())
            .map(|q| q["messages"].clone())
    };
    assert_eq!(depth(ctx.topology.dead_letter_queue()), Some(1.into()));
    assert_eq!(depth(ctx.topology.work_queue()), Some(0.into()));
    let (code, table, _) = ctx.producer(&["status"]).await;
    assert_eq!(code, Some(0));
    assert!(
        table.contains("failed") && table.contains(&ctx.topology.dead_letter_queue()),
        "{table}"
    );

    // purge: refused without a terminal or --yes, then done with --yes.
    let (code, _, err) = ctx.producer(&["dlq", "purge"]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(ctx.queue_depth(&ctx.topology.dead_letter_queue()).await, 1);
    let (code, out, err) = ctx.producer(&["dlq", "purge", "--yes"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("purged=1"), "{out}");
    assert_eq!(ctx.queue_depth(&ctx.topology.dead_letter_queue()).await, 0);

    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_all_takes_only_the_letters_present_when_it_started() {
    let ctx = TestCtx::new("dlqall").await;
    // Three jobs for missing objects, dead-lettered; no collector needed.
    let jobs: Vec<Job> = (0..3)
        .map(|i| Job::new(BUCKET, format!("{}gone-{i}.wav", ctx.prefix)))
        .collect();
    ctx.publish_jobs(&jobs).await;
    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let (conn, _) = ctx.take(&ctx.topology.dead_letter_queue(), 3).await;
    let _ = conn.close(200, "done".into()).await;
    // Replay all while the worker is running: the replayed jobs fail again and come back, but
    // the replay does not chase them.
    let (code, out, err) = ctx.producer(&["dlq", "replay", "--all"]).await;
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("replayed=3"), "{out}");
    let (conn, again) = ctx.take(&ctx.topology.dead_letter_queue(), 3).await;
    let replays: Vec<Option<i64>> = again
        .iter()
        .map(|d| {
            vadflow_common::topology::header_i64(
                d.properties.headers().as_ref(),
                vadflow_common::topology::headers::REPLAYS,
            )
        })
        .collect();
    assert_eq!(replays, [Some(1), Some(1), Some(1)]);
    let _ = conn.close(200, "done".into()).await;
    worker.stop().await.expect("worker stops");
    ctx.cleanup().await;
}
