//! Object keys from messages are validated before any use: `..` or `.` segments, a leading `/`,
//! NUL and control characters, and keys longer than 1024 bytes are dead-lettered as invalid-key,
//! without touching S3 or writing any result. `producer register` refuses them too.

use std::collections::BTreeMap;
use vadflow_common::Job;
use vadflow_common::topology::{header_str, headers};
use vadflow_tests::{BUCKET, TestCtx};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_keys_are_dead_lettered_and_never_used() {
    let ctx = TestCtx::new("keys").await;
    let p = &ctx.prefix;
    let bad = [
        ("dotdot", format!("{p}../../etc/passwd")),
        ("dot", format!("{p}./a.wav")),
        ("leading-slash", format!("/{p}a.wav")),
        ("nul", format!("{p}a\0.wav")),
        ("control", format!("{p}a\n.wav")),
        ("too-long", format!("{p}{}.wav", "k".repeat(1100))),
        ("empty", String::new()),
    ];
    let mut jobs = Vec::new();
    let mut names = BTreeMap::new();
    for (name, key) in &bad {
        let job = Job::new(BUCKET, key.clone());
        names.insert(job.job_id.clone(), *name);
        jobs.push(job);
    }
    // And one bad bucket name.
    let job = Job::new("Bad_Bucket", format!("{p}a.wav"));
    names.insert(job.job_id.clone(), "bad-bucket");
    jobs.push(job);
    ctx.publish_jobs(&jobs).await;

    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let (conn, letters) = ctx
        .take(&ctx.topology.dead_letter_queue(), jobs.len())
        .await;
    let mut seen = BTreeMap::new();
    for d in &letters {
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .expect("message id");
        let h = d.properties.headers().as_ref();
        let reason = header_str(h, headers::REASON).expect("reason");
        let error = header_str(h, headers::ERROR).expect("error");
        seen.insert(names[&id], (reason, error));
    }
    let _ = conn.close(200, "done".into()).await;
    assert_eq!(seen.len(), jobs.len(), "{seen:#?}");
    for (name, (reason, error)) in &seen {
        assert_eq!(reason, "invalid-key", "{name}: {error}");
        assert!(
            error.contains("key") || error.contains("bucket"),
            "{name}: the error names the field: {error}"
        );
        assert!(error.len() < 600, "{name}: a huge key is not echoed whole");
    }
    // No result was written anywhere for them.
    let listed = ctx
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(&ctx.results_prefix)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(0));
    worker.stop().await.expect("worker stops");

    // register refuses a bad key with a clear error, and registers nothing.
    let (code, _out, err) = ctx
        .producer(&["register", &format!("s3://{BUCKET}/{p}../x.wav")])
        .await;
    assert_ne!(code, Some(0));
    assert!(err.contains("..") && err.contains("key"), "{err}");
    assert!(ctx.files().await.is_empty());
    ctx.cleanup().await;
}
