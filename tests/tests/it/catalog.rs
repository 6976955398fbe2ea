//! Your catalog: files listed in a table shaped like a user's are registered with
//! `producer register --sql`, enqueued with `enqueue --since yesterday`, and their segments come
//! back into the database (`collect --store-segments`), once each, also after the same result
//! events are delivered again.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use vadflow_common::wire::{Outcome, ResultEvent};
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{BUCKET, TestCtx, segments_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_rows_come_back_as_segments_once_each() {
    let ctx = TestCtx::new("catalog").await;
    let schema = &ctx.db.db_schema;
    // The user's table, in their own shape: an id, an s3:// URI, a creation time.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".calls (id BIGINT PRIMARY KEY, s3_uri TEXT, created_at TIMESTAMPTZ NOT NULL)"
    )))
    .execute(&ctx.pool)
    .await
    .expect("create the user's table");
    let fixtures = [
        compose(&SENTENCES[0..2], &[0.8, 1.2, 0.7]),
        compose(&SENTENCES[2..5], &[0.5, 1.0, 1.5, 0.6]),
        compose(&SENTENCES[5..6], &[1.3, 0.9]),
    ];
    for (i, speech) in fixtures.iter().enumerate() {
        let key = format!("{}call-{i}.wav", ctx.prefix);
        ctx.put(&key, speech.wav()).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{schema}\".calls VALUES ($1, $2, now() - interval '3 hours')"
        )))
        .bind(7000 + i as i64)
        .bind(format!("s3://{BUCKET}/{key}"))
        .execute(&ctx.pool)
        .await
        .expect("insert call");
    }
    // Rows that name no usable object are skipped, each with a warning, and the rest registered.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{schema}\".calls VALUES (7100, 'not-a-uri', now()), (7101, NULL, now())"
    )))
    .execute(&ctx.pool)
    .await
    .expect("insert bad rows");

    let query = format!(
        "SELECT id AS external_id, s3_uri AS uri, created_at FROM \"{schema}\".calls ORDER BY id"
    );
    let (code, out, err) = ctx
        .producer(&["register", "--sql", &query, "--batch-size", "2"])
        .await;
    assert_eq!(code, Some(0), "register --sql: {out}\n{err}");
    assert!(
        out.contains("found=3 inserted=3 already_registered=0 skipped_invalid_keys=2"),
        "{out}"
    );
    assert!(err.contains("not-a-uri"), "the bad row is named: {err}");
    // Again: nothing new.
    let (code, out, _) = ctx.producer(&["register", "--sql", &query]).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("inserted=0 already_registered=3"), "{out}");
    let ids: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT key, external_id FROM audio_files ORDER BY key")
            .fetch_all(&ctx.pool)
            .await
            .expect("rows");
    for (i, (key, id)) in ids.iter().enumerate() {
        assert_eq!(key, &format!("{}call-{i}.wav", ctx.prefix));
        assert_eq!(id.as_deref(), Some(format!("{}", 7000 + i).as_str()));
    }

    // A copy of every result event, to deliver them again afterwards.
    let (conn, ch) = ctx.channel().await;
    ctx.topology.declare(&ch).await.expect("declare topology");
    let capture = format!("{}.capture", ctx.amqp.queue_prefix);
    ch.queue_declare(
        capture.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare capture queue");
    ch.queue_bind(
        capture.as_str().into(),
        ctx.topology.results_exchange().as_str().into(),
        vadflow_common::topology::RESULT_ROUTING_KEY.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind capture queue");

    let (code, out, err) = ctx.producer(&["enqueue", "--since", "yesterday"]).await;
    assert_eq!(code, Some(0), "enqueue: {out}\n{err}");
    assert!(out.contains("published=3"), "{out}");

    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let mut args = ctx.collect_args();
    args.store_segments = true;
    let collector = ctx.spawn_collector_with(args);
    let rows = ctx
        .wait_files("every catalog file done", |rows| {
            rows.iter().all(|r| r.status == "done")
        })
        .await;
    worker.stop().await.expect("worker stops");

    let segments = |file_id: i64| {
        let pool = ctx.pool.clone();
        async move {
            sqlx::query_as::<_, (i32, Option<i16>, f64, f64)>(
                "SELECT seq, channel, start_s, end_s FROM speech_segments WHERE file_id = $1 ORDER BY seq",
            )
            .bind(file_id)
            .fetch_all(&pool)
            .await
            .expect("segments")
        }
    };
    let mut expected = Vec::new();
    for row in &rows {
        let doc: serde_json::Value = serde_json::from_slice(
            &ctx.get(&format!(
                "{}segments.json",
                row.result_prefix.as_deref().expect("prefix")
            ))
            .await
            .expect("segments.json"),
        )
        .expect("json");
        let want = segments_of(&doc);
        assert!(!want.is_empty(), "{}: no speech found", row.key);
        assert_eq!(row.segment_count, Some(want.len() as i32));
        let got = segments(row.id).await;
        assert_eq!(got.len(), want.len(), "{}: {got:?} vs {want:?}", row.key);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.0, i as i32);
            assert_eq!(g.1, None, "mixed channels carry no channel");
            assert!(
                (g.2 - w.0).abs() < 1e-9 && (g.3 - w.1).abs() < 1e-9,
                "{}: {g:?} vs {w:?}",
                row.key
            );
        }
        expected.push((row.id, got));
    }

    // The same result events again (as after a collector crash before its acks), then one more
    // event that changes a row: once that row is done, everything before it was handled.
    let (copies_conn, copies) = ctx.take(&capture, rows.len()).await;
    let copies: Vec<ResultEvent> = copies
        .iter()
        .map(|d| ResultEvent::decode(&d.data).expect("result event"))
        .collect();
    let _ = copies_conn.close(200, "done".into()).await;
    for e in &copies {
        assert_eq!(e.outcome, Outcome::Done);
        let id = e
            .external_id
            .as_deref()
            .expect("the event carries the external id");
        assert!(id.starts_with("700"), "{id}");
        assert!(
            e.segment_list.is_some(),
            "small files' segments travel in the event"
        );
    }
    // The last event's segments do not travel in it: the collector reads its segments.json.
    let key = format!("{}late.wav", ctx.prefix);
    let late_id = ctx.insert_file(&key, chrono::Utc::now()).await;
    let late_prefix = format!("{}late/", ctx.results_prefix);
    ctx.put(
        &format!("{late_prefix}segments.json"),
        br#"{"schema_version":1,"segments":[{"start":0.25,"end":1.5},{"start":2.0,"end":3.125,"channel":2,"score_mean":0.75,"score_min":0.5,"rms_dbfs":-30.5,"peak_dbfs":-6.0,"clipped":0.0,"snr_db":12.5}]}"#.to_vec(),
    )
    .await;
    let mut late = copies[0].clone();
    late.job_id = "late-job".into();
    late.file_id = Some(late_id);
    late.key = key;
    late.external_id = None;
    late.results_prefix = Some(late_prefix);
    late.segments = Some(2);
    late.segment_list = None;
    let mut again = copies.clone();
    again.push(late);
    ctx.publish_results(&again).await;
    ctx.wait_files("the last event recorded", |rows| {
        rows.iter().any(|r| r.id == late_id && r.status == "done")
    })
    .await;
    for (id, before) in &expected {
        assert_eq!(&segments(*id).await, before, "file {id}: once each");
    }
    assert_eq!(
        segments(late_id).await,
        vec![(0, None, 0.25, 1.5), (1, Some(2), 2.0, 3.125)]
    );
    // The scores come with the segments: from the events, and from segments.json.
    let unscored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM speech_segments WHERE scores IS NULL AND file_id <> $1",
    )
    .bind(late_id)
    .fetch_one(&ctx.pool)
    .await
    .expect("count");
    assert_eq!(unscored, 0, "every segment of the run has its scores");
    let late_scores: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT scores::text FROM speech_segments WHERE file_id = $1 ORDER BY seq",
    )
    .bind(late_id)
    .fetch_all(&ctx.pool)
    .await
    .expect("scores");
    assert_eq!(late_scores[0], None);
    let s: serde_json::Value =
        serde_json::from_str(late_scores[1].as_deref().expect("scores")).expect("json");
    assert_eq!(
        (s["rms_dbfs"].as_f64(), s["snr_db"].as_f64()),
        (Some(-30.5), Some(12.5))
    );
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM speech_segments")
        .fetch_one(&ctx.pool)
        .await
        .expect("count");
    let want: usize = expected.iter().map(|(_, s)| s.len()).sum::<usize>() + 2;
    assert_eq!(total as usize, want);
    collector.stop().await.expect("collector stops");
    let _ = ch
        .queue_delete(capture.as_str().into(), Default::default())
        .await;
    let _ = conn.close(200, "done".into()).await;
    ctx.cleanup().await;
}
