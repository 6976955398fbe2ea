//! Every enqueued row ends `done` or `failed`, whatever happened to its message:
//! - a job too malformed for the worker to read (a newer wire version, a field of the wrong
//!   type) is dead-lettered, and its row still ends `failed` with the reason;
//! - a job that kills every worker that takes it is dead-lettered by the broker at the queue's
//!   delivery limit, and its row ends `failed` with reason `delivery-limit`;
//! - a row whose message vanished (purged) is published again once it is stale, and ends `done`,
//!   while a row queued for less than the stale age is left alone.

use chrono::{Duration, Utc};
use serde::Serialize;
use std::collections::HashMap;
use tokio::net::TcpListener;
use vadflow_common::Job;
use vadflow_common::topology::{JOB_ROUTING_KEY, headers, set_header_i64};
use vadflow_tests::{BUCKET, DEADLINE, FileRow, TestCtx};

/// A second of a 440 Hz tone as a 16 kHz WAV: any decodable audio will do here.
fn tone() -> Vec<u8> {
    let samples: Vec<i16> = (0..16_000)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin() * 8000.0) as i16)
        .collect();
    vadflow_tests::audio::wav_bytes(16_000, 1, &samples)
}

/// Uploads `names` under the test's prefix and registers them; returns key → row id.
async fn files(ctx: &TestCtx, names: &[&str]) -> HashMap<String, i64> {
    let mut ids = HashMap::new();
    for name in names {
        let key = format!("{}{name}", ctx.prefix);
        ctx.put(&key, tone()).await;
        let id = ctx
            .insert_file(&key, Utc::now() - Duration::minutes(5))
            .await;
        ids.insert((*name).to_owned(), id);
    }
    ids
}

fn final_state(rows: &[FileRow]) -> bool {
    rows.iter()
        .all(|r| r.status == "done" || r.status == "failed")
}

/// `producer dlq list --json`, keyed by object key.
async fn dead_letters(ctx: &TestCtx) -> HashMap<String, serde_json::Value> {
    let (code, out, err) = ctx.producer(&["dlq", "list", "--json"]).await;
    assert_eq!(code, Some(0), "dlq list failed: {err}");
    let letters: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON list");
    letters
        .into_iter()
        .map(|l| (l["key"].as_str().unwrap_or("-").to_owned(), l))
        .collect()
}

/// The failure recorded in `job_results` for a file: (reason, error).
async fn failure_of(ctx: &TestCtx, file_id: i64) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT reason, error FROM job_results WHERE file_id = $1 AND outcome = 'failed'",
    )
    .bind(file_id)
    .fetch_optional(&ctx.pool)
    .await
    .expect("job_results")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreadable_jobs_end_failed_with_their_reason() {
    let ctx = TestCtx::new("unreadable").await;
    let ids = files(&ctx, &["newer.wav", "oddtype.wav", "fine.wav"]).await;
    // Enqueued with no worker running; then two of the messages are replaced.
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 3);
    // Taken on a channel the test holds, so that each can be acked (removed) once read.
    let (conn, ch) = ctx.channel().await;
    let mut taken = Vec::new();
    while taken.len() < 3 {
        let got = ctx.get_job_message(&ch).await;
        taken.push(got.expect("the three enqueued jobs are ready"));
    }
    #[derive(Serialize)]
    struct OddType<'a> {
        v: u32,
        job_id: &'a str,
        bucket: &'a str,
        key: &'a str,
        file_id: Option<i64>,
        size: &'a str,
    }
    let mut replaced = Vec::new();
    for d in &taken {
        let mut job = Job::decode(&d.data).expect("a job from enqueue");
        let body = if job.key.ends_with("newer.wav") {
            job.v = 2;
            job.encode()
        } else if job.key.ends_with("oddtype.wav") {
            rmp_serde::to_vec_named(&OddType {
                v: 1,
                job_id: &job.job_id,
                bucket: &job.bucket,
                key: &job.key,
                file_id: job.file_id,
                size: "big",
            })
            .expect("encode")
        } else {
            d.data.clone()
        };
        replaced.push((job.job_id.clone(), body));
        d.ack(Default::default())
            .await
            .expect("remove the original");
    }
    for (id, body) in &replaced {
        let mut h = lapin::types::FieldTable::default();
        set_header_i64(&mut h, headers::ATTEMPT, 1);
        vadflow_common::amqp::publish_confirmed(
            &ch,
            &ctx.topology.work_exchange(),
            JOB_ROUTING_KEY,
            body,
            vadflow_common::amqp::message_properties(id, h),
        )
        .await
        .expect("publish the replacement");
    }
    let _ = conn.close(200, "done".into()).await;

    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let collector = ctx.spawn_collector();
    let rows = ctx.wait_files("every row final", final_state).await;
    let by_key: HashMap<&str, &FileRow> = rows
        .iter()
        .map(|r| (r.key.rsplit('/').next().unwrap_or(""), r))
        .collect();
    assert_eq!(by_key["fine.wav"].status, "done");
    for (name, reason) in [
        ("newer.wav", "unsupported-version"),
        ("oddtype.wav", "malformed-message"),
    ] {
        let row = by_key[name];
        assert_eq!(row.status, "failed", "{name}: {row:?}");
        assert_eq!(row.last_reason.as_deref(), Some(reason), "{name}: {row:?}");
        let (recorded, error) = failure_of(&ctx, ids[name]).await.expect("a failed outcome");
        assert_eq!(recorded, reason, "{name}");
        assert!(!error.is_empty());
    }
    let letters = dead_letters(&ctx).await;
    assert_eq!(letters.len(), 2, "{letters:#?}");
    for (name, reason) in [
        ("newer.wav", "unsupported-version"),
        ("oddtype.wav", "malformed-message"),
    ] {
        let l = &letters[&format!("{}{name}", ctx.prefix)];
        assert_eq!(l["reason"], reason, "{l}");
        assert_eq!(l["bucket"], BUCKET);
    }
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

/// A worker that never gets its object: the S3 endpoint accepts connections and never answers,
/// and announces each one, so the test knows the worker has taken the job.
struct BlackHole {
    url: String,
    accepted: tokio::sync::mpsc::UnboundedReceiver<()>,
}

async fn black_hole() -> BlackHole {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    BlackHole { url, accepted }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_kills_every_worker_fails_at_the_delivery_limit() {
    let ctx = TestCtx::new("deliverylimit").await;
    let ids = files(&ctx, &["killer.wav"]).await;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 1);
    let collector = ctx.spawn_collector();
    let mut hole = black_hole().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&ctx.pool)
        .await
        .expect("listen");
    listener.listen("vadflow_files").await.expect("listen");

    // Each worker takes the job, starts fetching it, and is killed (SIGKILL) in the middle, as
    // an out-of-memory kill would; until the broker gives up on the job.
    let mut kills = 0;
    loop {
        assert!(kills <= 30, "the job was never dead-lettered");
        let mut worker = ctx
            .command("worker")
            .env("AWS_ENDPOINT_URL", &hole.url)
            .env("VADFLOW_CONCURRENCY", "1")
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("spawn worker");
        // Either the worker takes the job (its GET reaches the black hole), or the job has been
        // dead-lettered and this test's row turns failed. The notification channel is shared
        // by every test's schema: only this one's count.
        let failed = loop {
            tokio::select! {
                taken = hole.accepted.recv() => {
                    taken.expect("black hole");
                    break false;
                }
                n = listener.recv() => {
                    let n = n.expect("notification");
                    let about: serde_json::Value =
                        serde_json::from_str(n.payload()).expect("JSON payload");
                    if about["schema"] == ctx.db.db_schema.as_str()
                        && ctx.files().await[0].status == "failed"
                    {
                        break true;
                    }
                }
                _ = tokio::time::sleep(DEADLINE) => panic!("the worker neither took the job nor did it fail"),
            }
        };
        worker.start_kill().expect("SIGKILL");
        let _ = worker.wait().await;
        if failed {
            break;
        }
        kills += 1;
    }
    let row = &ctx.files().await[0];
    assert_eq!(
        row.last_reason.as_deref(),
        Some("delivery-limit"),
        "{row:?}"
    );
    assert!(
        kills >= 20,
        "the broker gave up after {kills} deliveries, before its limit of 20"
    );
    let (reason, error) = failure_of(&ctx, ids["killer.wav"]).await.expect("recorded");
    assert_eq!(reason, "delivery-limit");
    assert!(error.contains("delivery limit"), "{error}");
    let letters = dead_letters(&ctx).await;
    let l = &letters[&row.key];
    assert_eq!(l["reason"], "delivery-limit", "{l}");
    println!("dead-lettered by the broker after {kills} killed workers");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purged_row_is_published_again_once_stale_and_ends_done() {
    let ctx = TestCtx::new("stale").await;
    let ids = files(&ctx, &["old.wav", "recent.wav"]).await;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 2);
    // An operator purges the work queue: both messages are gone, both rows stay queued.
    let (conn, ch) = ctx.channel().await;
    let purged = ch
        .queue_purge(
            ctx.topology.work_queue().as_str().into(),
            Default::default(),
        )
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    let _ = conn.close(200, "done".into()).await;
    // One of them was queued two hours ago, the other just now.
    sqlx::query("UPDATE audio_files SET updated_at = now() - interval '2 hours' WHERE id = $1")
        .bind(ids["old.wav"])
        .execute(&ctx.pool)
        .await
        .expect("backdate");

    let (code, out, err) = ctx
        .producer(&["status", "--json", "--stale-after", "1h"])
        .await;
    assert_eq!(code, Some(0), "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(status["files"]["stale"], 1, "{status}");
    assert_eq!(status["files"]["queued"], 2, "{status}");

    // The everyday command publishes the stale row again, whatever its creation time, and
    // leaves the recent one alone.
    let (code, out, err) = ctx
        .producer(&["enqueue", "--since", "1h", "--stale-after", "1h"])
        .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("selected=0 published=0 skipped=0 failed=0 stale=1 republished=1"),
        "{out}"
    );
    let worker = ctx.spawn_worker(ctx.worker_args()).await;
    let collector = ctx.spawn_collector();
    let rows = ctx
        .wait_files("the stale row done", |rows| {
            rows.iter()
                .any(|r| r.id == ids["old.wav"] && r.status == "done")
        })
        .await;
    let recent = rows
        .iter()
        .find(|r| r.id == ids["recent.wav"])
        .expect("row");
    assert_eq!(recent.status, "queued", "not stale yet: left alone");
    // A second run finds nothing more to do at that age; reconcile at age 0 takes the other.
    let (code, out, _) = ctx.producer(&["reconcile", "--stale-after", "1h"]).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("reconcile: stale=0 republished=0"), "{out}");
    let (code, out, _) = ctx.producer(&["reconcile", "--stale-after", "0s"]).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("reconcile: stale=1 republished=1"), "{out}");
    ctx.wait_files("every row done", |rows| {
        rows.iter().all(|r| r.status == "done")
    })
    .await;
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_starts_no_job_on_a_dead_connection() {
    use vadflow_tests::proxy::{Proxy, upstream_of};
    let ctx = TestCtx::new("deadconn").await;
    let names: Vec<String> = (0..6).map(|i| format!("f{i}.wav")).collect();
    files(&ctx, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(ctx.enqueue("1h", "now", None, false).await.published, 6);

    // The broker through a proxy the test can cut; S3 through one that holds the first fetch.
    let amqp = Proxy::start(upstream_of(&ctx.stack.amqp_url, 5672)).await;
    let s3 = Proxy::start(upstream_of(
        ctx.stack.s3.endpoint.as_deref().expect("S3 endpoint"),
        80,
    ))
    .await;
    s3.hold(true);
    let mut args = ctx.worker_args();
    args.concurrency = Some(1);
    args.prefetch = Some(8);
    args.amqp.amqp_url = vadflow_common::redact::SecretUrl::new(amqp.url_for(&ctx.stack.amqp_url));
    args.s3.endpoint = Some(s3.url_for(ctx.stack.s3.endpoint.as_deref().expect("endpoint")));
    let worker = ctx.spawn_worker(args).await;
    let (ready, metrics) = (worker.ready.clone(), worker.metrics.clone());
    let collector = ctx.spawn_collector();

    // One job is fetching (held); the other five are buffered in the client, unstarted.
    tokio::time::timeout(DEADLINE, s3.wait_accepted(1))
        .await
        .expect("the first job fetches");
    assert!(ready.get());
    let before = amqp.accepted();
    amqp.refuse(true);
    amqp.cut();
    let cut_at = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(1), ready.wait_for(false))
        .await
        .expect("readiness turns false within a second of the connection failing");
    let not_ready_after = cut_at.elapsed();
    // Let the held fetch go on: a worker that kept working would now finish that job and start
    // the buffered ones, one after the other, before it noticed the dead connection.
    s3.hold(false);
    tokio::time::timeout(DEADLINE, amqp.wait_accepted(before + 2))
        .await
        .expect("the worker tries to reconnect");
    assert_eq!(
        metrics.jobs_started(),
        1,
        "no buffered delivery was started on the dead connection"
    );
    assert_eq!(s3.accepted(), 1, "no fetch after the connection failed");

    // Back on the broker, every job is redelivered and done.
    amqp.refuse(false);
    ctx.wait_files("every row done", |rows| {
        rows.iter().all(|r| r.status == "done")
    })
    .await;
    assert_eq!(
        metrics.jobs_started(),
        7,
        "the abandoned job ran again, once"
    );
    assert!(ready.get());
    println!("readiness false {not_ready_after:?} after the connection was cut");
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    ctx.cleanup().await;
}

/// A producer process with a per-target directive in `RUST_LOG` (the case that used to drop
/// lines) and JSON logs; returns its stdout and stderr.
async fn producer_logged(ctx: &TestCtx, amqp_url: &str, args: &[&str]) -> (String, String) {
    let out = ctx
        .command("producer")
        .args(args)
        .env("AMQP_URL", amqp_url)
        .env("RUST_LOG", "info,some_target=debug")
        .output()
        .await
        .expect("run producer");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "producer {args:?}: {stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_lines_survive_per_target_directives_and_commands_ride_out_outages() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    use vadflow_producer::collect::events::msg;
    use vadflow_tests::proxy::{Proxy, upstream_of};
    let ctx = TestCtx::new("logs").await;
    files(&ctx, &["a.wav"]).await;
    let amqp = Proxy::start(upstream_of(&ctx.stack.amqp_url, 5672)).await;
    let url = amqp.url_for(&ctx.stack.amqp_url);

    let (_, err) = producer_logged(&ctx, &ctx.stack.amqp_url, &["migrate"]).await;
    assert!(err.contains("schema is up to date"), "{err}");

    // enqueue meets a broker that refuses connections, retries, and gets through once it is back.
    amqp.refuse(true);
    let before = amqp.accepted();
    let enqueue = {
        let (ctx, url) = (&ctx, url.clone());
        async move { producer_logged(ctx, &url, &["enqueue", "--since", "1h"]).await }
    };
    let reopen = async {
        tokio::time::timeout(DEADLINE, amqp.wait_accepted(before + 2))
            .await
            .expect("enqueue retries");
        amqp.refuse(false);
    };
    let ((out, err), ()) = tokio::join!(enqueue, reopen);
    assert!(out.contains("enqueue: selected=1 published=1"), "{out}");
    for line in [
        "cannot reach the broker",
        "selected files to enqueue",
        "enqueue finished",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }

    // The collector loses its broker connection and says so, then consumes again.
    let mut writer = ctx
        .command("producer")
        .arg("collect")
        .env("AMQP_URL", &url)
        .env("RUST_LOG", "info,some_target=debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn collector");
    let mut lines = BufReader::new(writer.stderr.take().expect("stderr")).lines();
    let mut wait_for = async |text: &str| {
        tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.expect("read log") {
                if line.contains(text) {
                    return;
                }
            }
            panic!("the collector exited before logging {text:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("no {text:?} line"));
    };
    wait_for(msg::CONSUMING).await;
    amqp.cut();
    wait_for(msg::SESSION_LOST).await;
    wait_for(msg::CONSUMING).await;
    assert_eq!(vadflow_tests::terminate(writer).await, Some(0));
    ctx.cleanup().await;
}
