//! The main path: files registered in PostgreSQL go through RabbitMQ to workers, which store
//! results in S3; the collector marks the rows done.

use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{BUCKET, TestCtx, segments_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_flow_from_database_to_results() {
    let ctx = TestCtx::new("e2e").await;
    let fixtures = [
        compose(&SENTENCES[0..2], &[0.8, 1.2, 0.7]),
        compose(&SENTENCES[2..5], &[0.5, 1.0, 1.5, 0.6]),
        compose(&SENTENCES[5..6], &[1.3, 0.9]),
    ];
    for (i, speech) in fixtures.iter().enumerate() {
        ctx.put(&format!("{}file{i}.wav", ctx.prefix), speech.wav())
            .await;
    }
    let now = chrono::Utc::now();
    for i in 0..fixtures.len() {
        ctx.insert_file(
            &format!("{}file{i}.wav", ctx.prefix),
            now - chrono::Duration::hours(1),
        )
        .await;
    }

    let report = ctx.enqueue("yesterday", "now", None, false).await;
    assert_eq!(
        (report.selected, report.published, report.failed),
        (3, 3, 0)
    );

    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let collector = ctx.spawn_collector();
    let rows = ctx
        .wait_files("all files done", |rows| {
            rows.iter().all(|r| r.status == "done")
        })
        .await;

    for (i, speech) in fixtures.iter().enumerate() {
        let key = format!("{}file{i}.wav", ctx.prefix);
        let row = rows.iter().find(|r| r.key == key).expect("row");
        let prefix = format!("{}{BUCKET}/{key}/", ctx.results_prefix);
        assert_eq!(row.result_prefix.as_deref(), Some(prefix.as_str()));
        assert_eq!(row.result_bucket.as_deref(), Some(BUCKET));
        assert_eq!(row.segment_count, Some(speech.truth.len() as i32));
        assert_eq!(row.attempts, 1);
        let doc: serde_json::Value = serde_json::from_slice(
            &ctx.get(&format!("{prefix}segments.json"))
                .await
                .expect("segments.json"),
        )
        .expect("valid json");
        let found = segments_of(&doc);
        assert_eq!(
            found.len(),
            speech.truth.len(),
            "{key}: {found:?} vs {:?}",
            speech.truth
        );
        for (got, want) in found.iter().zip(&speech.truth) {
            assert!(
                (got.0 - want.0).abs() <= 0.3 && (got.1 - want.1).abs() <= 0.3,
                "{key}: {got:?} vs {want:?}"
            );
        }
        assert!((doc["duration"].as_f64().expect("duration") - speech.duration()).abs() < 0.01);
        for name in ["segments.rttm", "manifest.jsonl", "speech.wav"] {
            assert!(
                ctx.get(&format!("{prefix}{name}")).await.is_some(),
                "{key}: {name} missing"
            );
        }
        let speech_s = row.speech_seconds.expect("speech seconds");
        let truth_s: f64 = speech.truth.iter().map(|(s, e)| e - s).sum();
        assert!(
            (speech_s - truth_s).abs() < 0.3 * speech.truth.len() as f64,
            "{speech_s} vs {truth_s}"
        );
    }

    worker.stop().await.expect("worker stops cleanly");
    collector.stop().await.expect("collector stops cleanly");
    assert_eq!(ctx.queue_depth(&ctx.topology.work_queue()).await, 0);
    ctx.cleanup().await;
}
