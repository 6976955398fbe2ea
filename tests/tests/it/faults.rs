//! The fault-injection suite. Several hundred jobs made from real speech, in a mix of sizes and
//! formats, plus two dozen kinds of poison, go through two worker processes and the collector
//! while the test:
//! - kills a worker with SIGKILL in the middle of a job, three times;
//! - cuts every broker connection (and refuses new ones for a moment), twice;
//! - injects S3 faults all along: 503 SlowDown, 500, connection resets, stalled bodies;
//! - takes PostgreSQL away from the collector (cut and refused) once;
//! - removes a few jobs' messages from the work queue, as a purge or a lost broker node would,
//!   and at the end runs `producer reconcile`, which must publish exactly those rows again.
//!
//! Broker and database faults go through TCP proxies the test owns, so the shared servers, and
//! the other tests using them, are never disturbed. A checker then prints one line in the style
//! of Jepsen's queue checker and asserts that nothing was lost or doubled.

use chrono::Utc;
use futures_util::StreamExt;
use sqlx::postgres::PgListener;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::watch;
use vadflow_common::Job;
use vadflow_common::topology::{JOB_ROUTING_KEY, header_str, headers};
use vadflow_tests::TestCtx;
use vadflow_tests::audio::{SENTENCES, compose, transcode};
use vadflow_tests::poison::message_poisons;
use vadflow_tests::proxy::{Proxy, upstream_of};
use vadflow_tests::s3fault::{Rates, S3Faults};

/// Good jobs; with the poison the suite runs over 500 jobs. `VADFLOW_FAULT_GOOD_JOBS` changes it
/// (for a quick look while working on the suite).
fn good_jobs() -> usize {
    std::env::var("VADFLOW_FAULT_GOOD_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(480)
}
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

struct Worker {
    child: Child,
    started: watch::Receiver<u64>,
}

fn spawn_worker(ctx: &TestCtx, name: &str, amqp: &str, s3: &str) -> Worker {
    let mut child = ctx
        .command("worker")
        .env("AMQP_URL", amqp)
        .env("AWS_ENDPOINT_URL", s3)
        .env("VADFLOW_WORKER_ID", name)
        .env("VADFLOW_CONCURRENCY", "2")
        .env("VADFLOW_PREFETCH", "4")
        .env("VADFLOW_MAX_ATTEMPTS", "6")
        .env("VADFLOW_S3_ATTEMPT_TIMEOUT", "3s")
        .env("VADFLOW_S3_OPERATION_TIMEOUT", "20s")
        .env("VADFLOW_FETCH_IDLE_TIMEOUT", "2s")
        .env("VADFLOW_SHUTDOWN_TIMEOUT", "20s")
        .env("VADFLOW_MAX_INPUT_BYTES", "4000000")
        .env(
            "RUST_LOG",
            "warn,vadflow_worker::consumer=debug,vadflow_worker::events=debug",
        )
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn worker");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, started) = watch::channel(0u64);
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(vadflow_worker::events::msg::JOB_STARTED) {
                tx.send_modify(|n| *n += 1);
            } else if !line.contains("\"DEBUG\"") {
                eprintln!("[{name}] {line}");
            }
        }
    });
    Worker { child, started }
}

impl Worker {
    /// Waits for the worker to start another job, then kills it with SIGKILL: mid-job.
    async fn kill_mid_job(mut self) {
        let seen = *self.started.borrow();
        tokio::time::timeout(
            vadflow_tests::DEADLINE,
            self.started.wait_for(|n| *n > seen),
        )
        .await
        .expect("the worker starts another job (its \"job started\" line)")
        .expect("the log reader lives as long as the worker");
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }

    async fn terminate(self) -> Option<i32> {
        vadflow_tests::terminate(self.child).await
    }
}

/// Cuts every connection through `proxy` and refuses new ones until the clients have tried, and
/// failed, to reconnect `tries` times.
async fn outage(proxy: &Proxy, tries: u64) {
    let before = proxy.accepted();
    proxy.refuse(true);
    proxy.cut();
    let _ = tokio::time::timeout(DEADLINE, proxy.wait_accepted(before + tries)).await;
    proxy.refuse(false);
}

/// Removes up to `n` good jobs' messages from the work queue, as an operator's purge or a broker
/// node lost with its disk would; returns their keys. Other messages taken on the way return to
/// the queue when the channel closes.
async fn remove_good_jobs(ctx: &TestCtx, n: usize) -> Vec<String> {
    let (conn, ch) = ctx.channel().await;
    let good = format!("{}good/", ctx.prefix);
    let mut removed = Vec::new();
    for _ in 0..4 * n {
        if removed.len() == n {
            break;
        }
        let Some(d) = ctx.get_job_message(&ch).await else {
            break;
        };
        match Job::decode(&d.data) {
            Ok(job) if job.key.starts_with(&good) => {
                d.ack(Default::default()).await.expect("ack");
                removed.push(job.key);
            }
            _ => {} // returned on close
        }
    }
    let _ = conn.close(200, "done".into()).await;
    removed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_or_doubled_under_faults() {
    let ctx = Arc::new(TestCtx::new("faults").await);
    let p = ctx.prefix.clone();
    let good = good_jobs();

    // Real speech in a mix of sizes (about 1 to 25 s) and formats.
    let dir = std::env::temp_dir().join(format!("vadflow-{}", ctx.id));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut sources: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..12 {
        let n = 1 + i % SENTENCES.len().min(6);
        let picked: Vec<&str> = (0..n)
            .map(|k| SENTENCES[(i + k) % SENTENCES.len()])
            .collect();
        let gaps: Vec<f64> = (0..=n).map(|k| 0.2 + 0.3 * ((i + k) % 4) as f64).collect();
        let speech = compose(&picked, &gaps);
        let ext = ["wav", "flac", "mp3", "wav", "flac", "ogg"][i % 6];
        let wav = dir.join(format!("s{i}.wav"));
        std::fs::write(&wav, speech.wav()).expect("write");
        let file = dir.join(format!("s{i}.{ext}"));
        if ext != "wav" {
            transcode(&wav, ext, &file);
        }
        sources.push((ext.to_owned(), std::fs::read(&file).expect("read")));
    }
    // Audio poison: each bad-input case, plus one object over the workers' size limit.
    let mut audio_poison: Vec<(String, Vec<u8>, &str)> = vadflow_tests::poison::cases()
        .into_iter()
        .map(|c| (format!("{p}poison/{}", c.file), c.bytes, c.reason))
        .collect();
    audio_poison.push((
        format!("{p}poison/huge.wav"),
        vec![0u8; 4_100_000],
        "limit-exceeded",
    ));

    // Upload everything and register the rows.
    let mut objects: Vec<(String, Vec<u8>)> = (0..good)
        .map(|j| {
            let (ext, bytes) = &sources[j % sources.len()];
            (format!("{p}good/{j:04}.{ext}"), bytes.clone())
        })
        .collect();
    objects.extend(audio_poison.iter().map(|(k, b, _)| (k.clone(), b.clone())));
    futures_util::stream::iter(objects.clone())
        .for_each_concurrent(16, |(key, bytes)| {
            let ctx = ctx.clone();
            async move { ctx.put(&key, bytes).await }
        })
        .await;
    let created = Utc::now() - chrono::Duration::minutes(5);
    for (key, _) in &objects {
        ctx.insert_file(key, created).await;
    }
    let source_of: HashMap<String, usize> = (0..good)
        .map(|j| (objects[j].0.clone(), j % sources.len()))
        .collect();

    // Proxies: broker, S3 (faults all along) and PostgreSQL.
    let amqp_proxy = Proxy::start(upstream_of(&ctx.stack.amqp_url, 5672)).await;
    let amqp = amqp_proxy.url_for(&ctx.stack.amqp_url);
    let s3_endpoint = ctx.stack.s3.endpoint.clone().expect("S3 endpoint");
    let s3 = S3Faults::start(
        upstream_of(&s3_endpoint, 80),
        Rates {
            slow_down: 40,
            internal_error: 20,
            reset: 20,
            stall: 10,
        },
    )
    .await;
    let pg_proxy = Proxy::start(upstream_of(&ctx.stack.database_url, 5432)).await;
    let pg = pg_proxy.url_for(&ctx.stack.database_url);

    let mut workers = vec![
        spawn_worker(&ctx, "fault-a-0", &amqp, &s3.url()),
        spawn_worker(&ctx, "fault-b-0", &amqp, &s3.url()),
    ];
    let collector = ctx
        .command("producer")
        .arg("collect")
        .env("AMQP_URL", &amqp)
        .env("DATABASE_URL", &pg)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn collector");

    // Enqueue the good and audio-poison jobs (producer), and the message poison (raw).
    let report = ctx.enqueue("1h", "now", None, false).await;
    // The workers already run: a job may finish before enqueue marks its row, which enqueue
    // then counts as skipped (confirmed, but its row already moved on).
    assert_eq!(
        (report.published + report.skipped) as usize,
        objects.len(),
        "{report}"
    );
    assert_eq!(report.failed, 0, "{report}");
    let poisons = message_poisons(&ctx);
    let (conn, ch) = ctx.channel().await;
    for m in &poisons {
        vadflow_common::amqp::publish_confirmed(
            &ch,
            &ctx.topology.work_exchange(),
            JOB_ROUTING_KEY,
            &m.body,
            vadflow_common::amqp::message_properties(&m.id, Default::default()),
        )
        .await
        .expect("publish poison");
    }
    let _ = conn.close(200, "done".into()).await;
    let enqueued = objects.len() + poisons.len();

    // Chaos, driven by progress: the number of rows in a final state.
    let total = objects.len() as i64;
    let mut listener = PgListener::connect_with(&ctx.pool).await.expect("listen");
    listener.listen("vadflow_files").await.expect("listen");
    let finals = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM audio_files WHERE status IN ('done', 'failed')",
        )
        .fetch_one(&ctx.pool)
        .await
        .expect("count")
    };
    // Rows not final whose message was removed: only a reconcile finishes them.
    let unfinished_purged = |purged: &[String]| {
        let purged = purged.to_vec();
        let pool = ctx.pool.clone();
        async move {
            let open: Vec<String> = sqlx::query_scalar(
                "SELECT key FROM audio_files WHERE status NOT IN ('done', 'failed')",
            )
            .fetch_all(&pool)
            .await
            .expect("open rows");
            open.iter().filter(|k| purged.contains(k)).count() as i64
        }
    };
    let plan: [(f64, &str); 8] = [
        (0.06, "kill a"),
        (0.15, "broker"),
        (0.28, "kill b"),
        (0.40, "database"),
        (0.48, "purge"),
        (0.55, "kill a"),
        (0.70, "broker"),
        (1.01, "end"),
    ];
    let started = std::time::Instant::now();
    let mut kills = 0;
    let mut purged: Vec<String> = Vec::new();
    for (at, action) in plan {
        let threshold = ((total as f64) * at).ceil() as i64;
        let target = threshold.min(total);
        loop {
            let n = finals().await;
            // The removed jobs never finish on their own.
            if n >= target || n + unfinished_purged(&purged).await >= total {
                break;
            }
            match tokio::time::timeout(DEADLINE.saturating_sub(started.elapsed()), listener.recv())
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("notifications failed: {e}"),
                Err(_) => panic!(
                    "stuck at {n}/{total} rows final before {action}; S3 {}",
                    s3.counts()
                ),
            }
        }
        eprintln!(
            "faults: {action} at {target}/{total} after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        match action {
            "kill a" | "kill b" => {
                let i = usize::from(action == "kill b");
                kills += 1;
                let victim = workers.remove(i);
                victim.kill_mid_job().await;
                let name = format!("fault-{}-{kills}", if i == 0 { "a" } else { "b" });
                workers.insert(i, spawn_worker(&ctx, &name, &amqp, &s3.url()));
            }
            "broker" => outage(&amqp_proxy, 3).await,
            "database" => outage(&pg_proxy, 2).await,
            "purge" => purged = remove_good_jobs(&ctx, 5).await,
            _ => {}
        }
    }
    // Every row is final but those whose message was removed; reconcile finds exactly them.
    let stranded = unfinished_purged(&purged).await;
    let (code, out, err) = ctx.producer(&["reconcile", "--stale-after", "0s"]).await;
    assert_eq!(code, Some(0), "reconcile failed: {err}");
    assert!(
        out.contains(&format!(
            "reconcile: stale={stranded} republished={stranded} "
        )),
        "reconcile publishes exactly the {stranded} rows whose message was removed: {out}"
    );
    ctx.wait_files("every row final after the reconcile", |rows| {
        rows.iter()
            .all(|r| r.status == "done" || r.status == "failed")
    })
    .await;
    let elapsed = started.elapsed();

    // Stop everything cleanly.
    for w in workers {
        assert_eq!(w.terminate().await, Some(0), "workers drain and exit 0");
    }
    assert_eq!(vadflow_tests::terminate(collector).await, Some(0));

    // Check.
    let rows = ctx.files().await;
    let dlq_depth = ctx.queue_depth(&ctx.topology.dead_letter_queue()).await as usize;
    let (conn, letters) = ctx.take(&ctx.topology.dead_letter_queue(), dlq_depth).await;
    let keys: std::collections::HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let mut dead: BTreeMap<String, Vec<String>> = BTreeMap::new(); // row key or message id -> reasons
    for d in &letters {
        let reason = header_str(d.properties.headers().as_ref(), headers::REASON)
            .unwrap_or_else(|| "(none)".into());
        let id = match rmp_serde::from_slice::<Job>(&d.data) {
            Ok(job) if keys.contains(job.key.as_str()) => job.key,
            _ => d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "(no id)".into()),
        };
        dead.entry(id).or_default().push(reason);
    }
    let _ = conn.close(200, "done".into()).await;
    let done_rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT key, count(*) FROM job_results WHERE outcome = 'done' GROUP BY key")
            .fetch_all(&ctx.pool)
            .await
            .expect("results");
    let done_results: HashMap<String, i64> = done_rows.into_iter().collect();

    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    let mut done = 0;
    let mut failed = 0;
    // Every good job: one done result, and outputs identical to every other job of its source.
    let mut reference: HashMap<usize, (Vec<u8>, serde_json::Value)> = HashMap::new();
    for r in &rows {
        match r.status.as_str() {
            "done" => done += 1,
            "failed" => failed += 1,
            _ => {}
        }
        // Lost counts rows: every row must end done or failed, whatever became of its message.
        if r.status != "done" && r.status != "failed" {
            lost.push(r.key.clone());
        }
        if done_results.get(&r.key).copied().unwrap_or(0) > 1
            || dead.get(&r.key).is_some_and(|v| v.len() > 1)
        {
            duplicated.push(r.key.clone());
        }
        if let (Some(&src), Some(prefix)) = (source_of.get(&r.key), &r.result_prefix) {
            let speech = ctx
                .get(&format!("{prefix}speech.wav"))
                .await
                .expect("speech.wav");
            let doc: serde_json::Value = serde_json::from_slice(
                &ctx.get(&format!("{prefix}segments.json"))
                    .await
                    .expect("segments.json"),
            )
            .expect("JSON");
            let segs = doc["segments"].clone();
            let (ref_speech, ref_segs) = reference
                .entry(src)
                .or_insert((speech.clone(), segs.clone()));
            if *ref_speech != speech || *ref_segs != segs {
                duplicated.push(format!("{} (differing outputs)", r.key));
            }
        }
    }
    let good_done = rows
        .iter()
        .filter(|r| source_of.contains_key(&r.key) && r.status == "done")
        .count();
    // Poison: every one dead-lettered, once, with its expected reason.
    let mut poison_in_dlq = 0;
    let mut with_reason = 0;
    let mut wrong = Vec::new();
    let expected: Vec<(String, &str)> = audio_poison
        .iter()
        .map(|(k, _, r)| (k.clone(), *r))
        .chain(poisons.iter().map(|m| (m.id.clone(), m.reason)))
        .collect();
    for (id, reason) in &expected {
        match dead.get(id) {
            Some(reasons) => {
                poison_in_dlq += 1;
                if reasons.iter().all(|r| r == reason) {
                    with_reason += 1;
                } else {
                    wrong.push(format!("{id}: expected {reason}, got {reasons:?}"));
                }
            }
            None => lost.push(id.clone()),
        }
    }
    let line = format!(
        "enqueued={enqueued} done={done} failed={failed} lost={} duplicated={} poison_in_dlq={poison_in_dlq}/{} with_reason={with_reason} purged={} reconciled={stranded}",
        lost.len(),
        duplicated.len(),
        expected.len(),
        purged.len()
    );
    println!("{line}");
    // Also kept in target/tmp, for tests/run.sh to show after a passing run.
    let record = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-suite.log");
    let _ = std::fs::write(&record, format!("{line}\n"));
    println!(
        "faults: worker kills={kills} broker outages=2 database outages=1 s3: {} ({:.1} s)",
        s3.counts(),
        elapsed.as_secs_f64()
    );
    println!(
        "poison kinds: {} audio + {} message ({})",
        audio_poison.len(),
        poisons.len(),
        poisons
            .iter()
            .map(|m| m.kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(lost.is_empty(), "{line}\nlost: {lost:?}");
    assert!(duplicated.is_empty(), "{line}\nduplicated: {duplicated:?}");
    assert!(wrong.is_empty(), "{line}\nwrong reasons: {wrong:#?}");
    assert_eq!(poison_in_dlq, expected.len(), "{line}");
    assert_eq!(good_done, good, "{line}: every good job is done");
    assert_eq!(
        dlq_depth,
        expected.len(),
        "{line}: nothing but poison in the dead-letter queue: {dead:#?}"
    );
    assert!(
        s3.counts()
            .slow_down
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    let _ = std::fs::remove_dir_all(&dir);
    match Arc::try_unwrap(ctx) {
        Ok(ctx) => ctx.cleanup().await,
        Err(_) => panic!("the test context is still shared"),
    }
}
