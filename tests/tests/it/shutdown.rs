//! The `worker` binary on SIGTERM: it stops taking jobs, finishes the one in flight, leaves the
//! rest in the queue and exits 0. A second signal exits at once, and the unfinished job goes back
//! to the queue. Synchronised on the worker's own log lines, never on sleeps.

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use vadflow_common::Job;
use vadflow_tests::audio::{SENTENCES, compose, wav_bytes};
use vadflow_tests::{BUCKET, DEADLINE, TestCtx, signal};

/// Spawns the worker binary (one job at a time, one prefetched) with its stderr piped.
fn spawn_worker(ctx: &TestCtx, shutdown_timeout: &str) -> Child {
    ctx.command("worker")
        .env("VADFLOW_CONCURRENCY", "1")
        .env("VADFLOW_PREFETCH", "1")
        .env("VADFLOW_SHUTDOWN_TIMEOUT", shutdown_timeout)
        .env("RUST_LOG", "info,vadflow_worker=debug")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn worker")
}

/// Reads the worker's JSON log lines until one satisfies `want`; returns every line read.
async fn wait_log(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    seen: &mut Vec<String>,
    want: impl Fn(&str) -> bool,
) {
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read worker log") {
            let hit = want(&line);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "log line not seen; log so far:\n{}",
        seen.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_the_job_in_flight_and_a_second_signal_exits_at_once() {
    let ctx = TestCtx::new("shutdown").await;
    // A long recording (several seconds of work for a debug build) and two short ones.
    let base = compose(&SENTENCES[0..3], &[0.5, 1.0, 1.0, 0.5]);
    let reps = (600.0 / base.duration()).ceil() as usize;
    let long: Vec<i16> = base.samples.repeat(reps);
    let long_key = format!("{}long.wav", ctx.prefix);
    ctx.put(&long_key, wav_bytes(base.rate, 1, &long)).await;
    let short = compose(&SENTENCES[3..4], &[0.3, 0.3]).wav();
    let mut jobs = vec![Job::new(BUCKET, &long_key)];
    for i in 0..2 {
        let key = format!("{}short-{i}.wav", ctx.prefix);
        ctx.put(&key, short.clone()).await;
        jobs.push(Job::new(BUCKET, key));
    }
    ctx.publish_jobs(&jobs).await;

    // 1. SIGTERM while the long job runs: it finishes, is acked, and the worker exits 0.
    let mut worker = spawn_worker(&ctx, "120s");
    let mut lines = BufReader::new(worker.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    let started = |line: &str| line.contains("job started") && line.contains("long.wav");
    wait_log(&mut lines, &mut seen, started).await;
    signal(&worker, "-TERM");
    wait_log(&mut lines, &mut seen, |l| {
        l.contains(vadflow_worker::events::msg::DRAINING)
    })
    .await;
    wait_log(&mut lines, &mut seen, |l| {
        l.contains(vadflow_worker::events::msg::STOPPED)
    })
    .await;
    let status = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("worker exits")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "log:\n{}", seen.join("\n"));
    assert!(
        seen.iter()
            .any(|l| l.contains("job done") && l.contains("long.wav")),
        "the in-flight job finished: {}",
        seen.join("\n")
    );
    assert!(
        !seen.iter().any(|l| l.contains("short-")),
        "no new job was taken"
    );
    let (conn, results) = ctx.take(&ctx.topology.results_queue(), 1).await;
    let event = vadflow_common::ResultEvent::decode(&results[0].data).expect("event");
    assert_eq!(
        (event.key.as_str(), event.outcome.as_str()),
        (long_key.as_str(), "done")
    );
    let _ = conn.close(200, "done".into()).await;
    assert_eq!(ctx.queue_depth(&ctx.topology.work_queue()).await, 2);
    assert_eq!(ctx.queue_depth(&ctx.topology.results_queue()).await, 1);

    // 2. Put the long job back in front; a second signal during the drain exits at once and
    //    the unfinished job returns to the queue.
    ctx.publish_jobs(&[Job::new(BUCKET, &long_key)]).await;
    let mut worker = spawn_worker(&ctx, "120s");
    let mut lines = BufReader::new(worker.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    // Jobs are taken in queue order: the two short ones, then the long one.
    wait_log(&mut lines, &mut seen, started).await;
    signal(&worker, "-TERM");
    wait_log(&mut lines, &mut seen, |l| {
        l.contains(vadflow_worker::events::msg::DRAINING)
    })
    .await;
    signal(&worker, "-INT");
    let status = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("worker exits")
        .expect("wait");
    assert_eq!(
        status.code(),
        Some(vadflow_common::shutdown::FORCED_EXIT_CODE),
        "log:\n{}",
        seen.join("\n")
    );
    assert_eq!(
        ctx.queue_depth(&ctx.topology.work_queue()).await,
        1,
        "the unfinished long job is back in the queue"
    );
    // Results: the first long one, the two short ones, and nothing for the interrupted one.
    assert_eq!(ctx.queue_depth(&ctx.topology.results_queue()).await, 3);
    ctx.cleanup().await;
}
