//! The HTTP endpoints of the worker and the collector binaries: `/healthz` answers, `/readyz` follows the consumer, and
//! `/metrics` counts the jobs of a run by outcome, with their audio and bytes.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use vadflow_common::Job;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{BUCKET, DEADLINE, TestCtx, terminate};

async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the worker's endpoint");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Spawns `command` with its stderr piped, and reads its JSON log until `ready_line`; returns the
/// child and the address its health and metrics endpoint logged.
async fn spawn_with_endpoint(
    mut command: tokio::process::Command,
    ready_line: &str,
) -> (tokio::process::Child, String) {
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut addr = None;
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("log") {
            if line.contains(vadflow_worker::events::msg::SERVING) {
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
                addr = v["addr"].as_str().map(str::to_owned);
            }
            if line.contains(ready_line) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {ready_line:?} in the log"));
    (child, addr.expect("the endpoint's address is logged"))
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("series {series} missing:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_metrics_reflect_a_run() {
    let ctx = TestCtx::new("metrics").await;
    let speech = compose(&SENTENCES[0..2], &[0.5, 0.7, 0.5]);
    let mut jobs = Vec::new();
    for i in 0..2 {
        let key = format!("{}ok-{i}.wav", ctx.prefix);
        ctx.put(&key, speech.wav()).await;
        jobs.push(Job::new(BUCKET, key));
    }
    jobs.push(Job::new(BUCKET, format!("{}missing.wav", ctx.prefix)));

    let (worker, addr) = spawn_with_endpoint(
        ctx.command("worker"),
        vadflow_worker::events::msg::CONSUMING,
    )
    .await;
    assert_eq!(get(&addr, "/healthz").await.0, 200);
    assert_eq!(get(&addr, "/readyz").await.0, 200);
    assert_eq!(get(&addr, "/nope").await.0, 404);

    ctx.publish_jobs(&jobs).await;
    let (conn, _) = ctx.take(&ctx.topology.results_queue(), 3).await;
    let _ = conn.close(200, "done".into()).await;
    // Result events are published before the counters move past them; scrape until settled.
    let metrics = tokio::time::timeout(DEADLINE, async {
        loop {
            let (status, body) = get(&addr, "/metrics").await;
            assert_eq!(status, 200);
            if value(&body, "vadflow_jobs_in_flight") == 0.0 {
                return body;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("jobs settle");
    assert_eq!(value(&metrics, "vadflow_jobs_total{outcome=\"done\"}"), 2.0);
    assert_eq!(
        value(&metrics, "vadflow_jobs_total{outcome=\"failed\"}"),
        1.0
    );
    // docs/operations.md's failure ratio, evaluated on this run's counters (over a whole run a
    // ratio of rates is the ratio of counts), equals the run's share of failed jobs: 1 of 3.
    let query = "sum(rate(vadflow_jobs_total{outcome=\"failed\"}[15m])) / sum(rate(vadflow_jobs_total[15m]))";
    assert!(
        include_str!("../../../docs/operations.md").contains(query),
        "docs/operations.md no longer gives the failure ratio as {query}"
    );
    let all: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("vadflow_jobs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let failed = value(&metrics, "vadflow_jobs_total{outcome=\"failed\"}");
    assert_eq!(
        failed / all,
        1.0 / 3.0,
        "each attempt counted once:\n{metrics}"
    );
    assert_eq!(
        value(&metrics, "vadflow_jobs_total{outcome=\"retried\"}"),
        0.0
    );
    assert_eq!(value(&metrics, "vadflow_job_duration_seconds_count"), 2.0);
    let audio = value(&metrics, "vadflow_audio_seconds_total");
    assert!((audio - 2.0 * speech.duration()).abs() < 0.1, "{audio}");
    assert!(value(&metrics, "vadflow_input_bytes_total") >= 2.0 * speech.wav().len() as f64);
    assert!(value(&metrics, "vadflow_output_bytes_total") > 0.0);
    assert_eq!(
        value(
            &metrics,
            "vadflow_stage_duration_seconds_count{stage=\"process\"}"
        ),
        2.0
    );
    assert_eq!(value(&metrics, "vadflow_ready{component=\"worker\"}"), 1.0);

    assert_eq!(terminate(worker).await, Some(0));
    let worker_metrics = metrics;

    // The collector's endpoint: ready while consuming, and its counts once it drained the
    // three result events.
    let mut collect = ctx.command("producer");
    collect
        .arg("collect")
        .env("VADFLOW_QUEUE_POLL_INTERVAL", "200ms");
    let (collector, addr) =
        spawn_with_endpoint(collect, vadflow_producer::collect::events::msg::CONSUMING).await;
    assert_eq!(get(&addr, "/healthz").await.0, 200);
    assert_eq!(get(&addr, "/readyz").await.0, 200);
    let metrics = tokio::time::timeout(DEADLINE, async {
        loop {
            let (_, body) = get(&addr, "/metrics").await;
            let recorded: f64 = ["done", "failed", "retrying"]
                .iter()
                .map(|o| {
                    value(
                        &body,
                        &format!("vadflow_results_recorded_total{{outcome=\"{o}\"}}"),
                    )
                })
                .sum();
            // The queue poller has read the queues: the collector consumes the results queue.
            let polled = body.contains("vadflow_queue_consumers{queue=\"results\"} 1\n");
            if recorded >= 3.0 && polled {
                return body;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the collector records the events");
    assert_eq!(
        value(&metrics, "vadflow_results_recorded_total{outcome=\"done\"}"),
        2.0
    );
    assert_eq!(
        value(
            &metrics,
            "vadflow_results_recorded_total{outcome=\"failed\"}"
        ),
        1.0
    );
    assert!(metrics.contains("vadflow_ready{component=\"collector\"} 1\n"));
    assert_eq!(
        value(
            &metrics,
            "vadflow_dead_letters_total{reason=\"object-missing\"}"
        ),
        1.0,
        "the failed file, by its reason"
    );
    assert_eq!(value(&metrics, "vadflow_result_lag_seconds_count"), 3.0);
    assert_eq!(
        value(&metrics, "vadflow_queue_messages{queue=\"jobs\"}"),
        0.0,
        "every job was taken"
    );
    assert!(value(&metrics, "vadflow_queue_read_timestamp_seconds") > 1.7e9);
    assert_eq!(terminate(collector).await, Some(0));

    // Every series the chart's dashboard and alerts use is served by one of the two.
    let served = format!("{worker_metrics}{metrics}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/vadflow");
    let mut used = std::collections::BTreeSet::new();
    for file in ["files/dashboard.json", "templates/prometheusrule.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).expect("chart file");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("vadflow_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            used.insert(name);
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| served.contains(&format!("# TYPE {base} histogram")))
            .unwrap_or(name);
        assert!(
            served.contains(&format!("# TYPE {family} ")),
            "{name} is used by the chart but served by neither binary"
        );
    }
    ctx.cleanup().await;
}
