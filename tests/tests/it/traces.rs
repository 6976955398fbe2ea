//! One trace spans the queue: `producer enqueue` → worker (fetch, process, send result) →
//! collector, exported over OTLP/HTTP by the three binaries to a receiver this test runs, and linked
//! parent to child through W3C trace context in the AMQP headers.

use chrono::{Duration, Utc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{DEADLINE, TestCtx, terminate};

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

/// A minimal OTLP/HTTP (protobuf) trace receiver.
struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    count: watch::Receiver<usize>,
}

async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let spans = Arc::new(Mutex::new(Vec::new()));
    let (tx, count) = watch::channel(0usize);
    let tx = Arc::new(tx);
    let store = spans.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (store, tx) = (store.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    // One request: head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
                    if let Ok(req) = ExportTraceServiceRequest::decode(body.as_slice()) {
                        let mut got = Vec::new();
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| r.attributes.iter())
                                .find(|kv| kv.key == "service.name")
                                .and_then(|kv| kv.value.as_ref()?.value.clone())
                                .map(|v| match v {
                                    Value::StringValue(s) => s,
                                    other => format!("{other:?}"),
                                })
                                .unwrap_or_default();
                            for ss in rs.scope_spans {
                                for s in ss.spans {
                                    got.push(Span {
                                        service: service.clone(),
                                        name: s.name,
                                        kind: s.kind,
                                        trace_id: s.trace_id,
                                        span_id: s.span_id,
                                        parent: s.parent_span_id,
                                    });
                                }
                            }
                        }
                        let n = {
                            let mut all = store.lock().expect("spans");
                            all.extend(got);
                            all.len()
                        };
                        tx.send_replace(n);
                    }
                    let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if conn.write_all(ok.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Receiver {
        endpoint,
        spans,
        count,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_spans_enqueue_worker_and_result_writer() {
    let ctx = TestCtx::new("traces").await;
    let mut recv = receiver().await;
    let key = format!("{}traced.wav", ctx.prefix);
    ctx.put(&key, compose(&SENTENCES[0..1], &[0.3, 0.3]).wav())
        .await;
    ctx.insert_file(&key, Utc::now() - Duration::minutes(5))
        .await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", recv.endpoint.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ];
    let worker = ctx
        .command("worker")
        .envs(otel.clone())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker");
    let collector = ctx
        .command("producer")
        .arg("collect")
        .envs(otel.clone())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("collector");
    let out = ctx
        .command("producer")
        .args(["enqueue", "--since", "1h"])
        .envs(otel.clone())
        .output()
        .await
        .expect("enqueue");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctx.wait_files("the file done", |rows| rows[0].status == "done")
        .await;
    assert_eq!(terminate(worker).await, Some(0));
    assert_eq!(terminate(collector).await, Some(0));

    // Every process flushed on exit; wait for the spans of all three.
    let want = |spans: &[Span]| {
        ["vadflow-producer", "vadflow-worker"]
            .iter()
            .all(|s| spans.iter().any(|x| x.service == *s))
            && spans.iter().any(|x| x.name == "process result")
    };
    tokio::time::timeout(DEADLINE, async {
        loop {
            if want(&recv.spans.lock().expect("spans")) {
                return;
            }
            recv.count.changed().await.expect("receiver alive");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("spans missing: {:#?}", recv.spans.lock().expect("spans")));

    let spans = recv.spans.lock().expect("spans").clone();
    let one = |pred: &dyn Fn(&Span) -> bool, what: &str| -> Span {
        let found: Vec<&Span> = spans.iter().filter(|s| pred(s)).collect();
        assert_eq!(found.len(), 1, "{what}: {spans:#?}");
        found[0].clone()
    };
    let send = one(
        &|s| s.service == "vadflow-producer" && s.kind == SpanKind::Producer as i32,
        "the producer's send span",
    );
    assert!(
        send.name.starts_with("send ") && send.name.ends_with(".work"),
        "{}",
        send.name
    );
    let job = one(
        &|s| s.service == "vadflow-worker" && s.kind == SpanKind::Consumer as i32,
        "the worker's process span",
    );
    assert!(
        job.name.starts_with("process ") && job.name.ends_with(".jobs"),
        "{}",
        job.name
    );
    assert_eq!(job.trace_id, send.trace_id, "one trace across the queue");
    assert_eq!(
        job.parent, send.span_id,
        "the job continues the producer's span"
    );
    for name in ["fetch", "process"] {
        let child = one(
            &|s| s.service == "vadflow-worker" && s.name == name,
            &format!("the {name} span"),
        );
        assert_eq!(
            (child.trace_id.clone(), child.parent.clone()),
            (job.trace_id.clone(), job.span_id.clone()),
            "{name} is a child of the job"
        );
    }
    let result = one(
        &|s| s.service == "vadflow-worker" && s.kind == SpanKind::Producer as i32,
        "the worker's result send span",
    );
    assert_eq!(result.parent, job.span_id);
    let record = one(&|s| s.name == "process result", "the collector's span");
    assert_eq!(record.service, "vadflow-producer");
    assert_eq!(
        record.trace_id, send.trace_id,
        "the result write is in the same trace"
    );
    assert_eq!(
        record.parent, result.span_id,
        "it continues the worker's result span"
    );
    ctx.cleanup().await;
}
