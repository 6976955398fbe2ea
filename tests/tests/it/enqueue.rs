//! `producer enqueue`: window selection, dry runs, idempotence, and publishing with confirms.

use chrono::{Duration, TimeZone, Utc};
use vadflow_tests::TestCtx;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_until_select_the_right_rows() {
    let ctx = TestCtx::new("window").await;
    let now = Utc::now();
    // A calendar day 20 days back, clear of every other row (whatever today is).
    let day = (now - Duration::days(20)).date_naive();
    let next_day = day.succ_opt().expect("a next day");
    let rows = [
        ("old.wav", now - Duration::days(10)),
        ("week.wav", now - Duration::days(6)),
        ("hours.wav", now - Duration::hours(30)),
        ("recent.wav", now - Duration::minutes(5)),
        (
            "dated.wav",
            Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).expect("noon")),
        ),
    ];
    for (key, at) in rows {
        ctx.insert_file(&format!("{}{key}", ctx.prefix), at).await;
    }

    // Dry run: counts, publishes nothing, changes nothing.
    let dry = ctx.enqueue("7d", "now", None, true).await;
    assert!(dry.dry_run);
    assert_eq!(dry.published, 0);
    assert_eq!(ctx.queue_depth(&ctx.topology.work_queue()).await, 0);
    assert!(ctx.files().await.iter().all(|r| r.status == "pending"));

    // [36h, now) holds hours.wav and recent.wav only.
    let r = ctx.enqueue("36h", "now", None, false).await;
    assert_eq!((r.selected, r.published, r.skipped, r.failed), (2, 2, 0, 0));
    let queued: Vec<String> = ctx
        .files()
        .await
        .into_iter()
        .filter(|f| f.status == "queued")
        .map(|f| f.key.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(queued, ["hours.wav", "recent.wav"]);

    // A date window, e.g. [2026-11-10, 2026-11-11T00:00:00Z), holds dated.wav only.
    let r = ctx
        .enqueue(
            &day.format("%Y-%m-%d").to_string(),
            &format!("{}T00:00:00Z", next_day.format("%Y-%m-%d")),
            None,
            false,
        )
        .await;
    assert_eq!((r.selected, r.published), (1, 1));

    // --limit caps the batch; the oldest rows go first.
    let r = ctx.enqueue("30d", "now", Some(1), false).await;
    assert_eq!((r.selected, r.published), (1, 1));
    let old = ctx
        .files()
        .await
        .into_iter()
        .find(|f| f.key.ends_with("old.wav"))
        .expect("row");
    assert_eq!(old.status, "queued");

    // Every message is on the queue, one per published row.
    assert_eq!(ctx.queue_depth(&ctx.topology.work_queue()).await, 4);
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_twice_publishes_nothing_new() {
    let ctx = TestCtx::new("twice").await;
    let now = Utc::now();
    for i in 0..25 {
        ctx.insert_file(
            &format!("{}f{i:02}.wav", ctx.prefix),
            now - Duration::hours(2),
        )
        .await;
    }
    let first = ctx.enqueue("yesterday", "now", None, false).await;
    assert_eq!((first.selected, first.published), (25, 25));
    let second = ctx.enqueue("yesterday", "now", None, false).await;
    assert_eq!((second.selected, second.published), (0, 0));
    assert_eq!(ctx.queue_depth(&ctx.topology.work_queue()).await, 25);

    // The messages are well-formed jobs naming their rows.
    let (conn, deliveries) = ctx.take(&ctx.topology.work_queue(), 25).await;
    let rows = ctx.files().await;
    let mut ids: Vec<i64> = deliveries
        .iter()
        .map(|d| {
            let job = vadflow_common::Job::decode(&d.data).expect("valid job");
            assert_eq!(d.properties.delivery_mode(), &Some(2), "persistent");
            assert_eq!(
                d.properties.message_id().as_ref().map(|m| m.as_str()),
                Some(job.job_id.as_str())
            );
            job.file_id.expect("file id")
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, rows.iter().map(|r| r.id).collect::<Vec<_>>());
    let _ = conn.close(200, "done".into()).await;
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_jobs_leave_rows_pending_and_are_reported() {
    let ctx = TestCtx::new("unroutable").await;
    let id = ctx
        .insert_file(
            &format!("{}a.wav", ctx.prefix),
            Utc::now() - Duration::hours(1),
        )
        .await;
    // An exchange with no queue bound: every mandatory publish comes back.
    let (conn, ch) = ctx.channel().await;
    let nowhere = format!("{}.nowhere", ctx.topology.prefix());
    ch.exchange_declare(
        nowhere.as_str().into(),
        lapin::ExchangeKind::Direct,
        Default::default(),
        Default::default(),
    )
    .await
    .expect("declare exchange");
    let rows = vec![vadflow_producer::enqueue::Row {
        id,
        bucket: vadflow_tests::BUCKET.into(),
        key: format!("{}a.wav", ctx.prefix),
        size_bytes: None,
        external_id: None,
    }];
    let mut report = vadflow_producer::enqueue::EnqueueReport {
        selected: 1,
        ..Default::default()
    };
    vadflow_producer::enqueue::publish_window(
        &ctx.pool,
        &ch,
        &nowhere,
        &rows,
        Utc::now(),
        &tokio_util::sync::CancellationToken::new(),
        &mut report,
    )
    .await
    .expect("publish runs");
    assert_eq!((report.published, report.failed), (0, 1));
    assert_eq!(ctx.files().await[0].status, "pending");
    let _ = ch
        .exchange_delete(nowhere.as_str().into(), Default::default())
        .await;
    let _ = conn.close(200, "done".into()).await;
    ctx.cleanup().await;
}
