//! S3 credentials without static keys: temporary credentials from a container credentials
//! endpoint (EKS Pod Identity, ECS), served here on loopback, reach the real S3 server through
//! `producer` and `worker`; a named profile of the shared files works; a profile the files lack
//! fails fast, naming it. Every process runs with `AWS_EC2_METADATA_DISABLED=true` and no
//! address off loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vadflow_common::s3::S3_CREDENTIALS;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{BUCKET, DEADLINE, TestCtx, terminate};

/// A container credentials endpoint on loopback: answers every request carrying `token` in its
/// Authorization header with temporary credentials (the given key pair and a session token),
/// anything else with 401. Returns its URL and the number of requests it answered.
async fn credentials_endpoint(
    access_key_id: &str,
    secret: &str,
    token: &'static str,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/v1/credentials",
        listener.local_addr().expect("addr")
    );
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let expiration = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = serde_json::json!({
        "AccessKeyId": access_key_id,
        "SecretAccessKey": secret,
        "Token": "session-token-from-the-endpoint",
        "Expiration": expiration,
    })
    .to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") && got < buf.len() {
                    match sock.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..got]).to_ascii_lowercase();
                let authorized = head.contains(&format!("authorization: {token}"));
                let reply = if authorized {
                    count.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, served)
}

/// A `producer` or `worker` process of this test with no static keys and nothing shared on
/// disk: the credentials must come from what `env` adds.
fn keyless(ctx: &TestCtx, binary: &str, home: &std::path::Path) -> tokio::process::Command {
    let mut c = ctx.command(binary);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"));
    c
}

fn home(ctx: &TestCtx) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vadflow-creds-{}", ctx.id));
    std::fs::create_dir_all(&dir).expect("home");
    dir
}

async fn run(mut c: tokio::process::Command, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::time::timeout(DEADLINE, c.args(args).output())
        .await
        .expect("finishes")
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn container_endpoint_credentials_reach_s3_from_producer_and_worker() {
    let ctx = TestCtx::new("creds-endpoint").await;
    let home = home(&ctx);
    let s3 = &ctx.stack.s3;
    let (id, secret) = (
        s3.access_key_id.clone().expect("local key"),
        s3.secret_access_key
            .as_ref()
            .expect("local secret")
            .expose()
            .to_owned(),
    );
    let (url, served) = credentials_endpoint(&id, &secret, "pod-identity-token").await;
    let speech = compose(&SENTENCES[0..2], &[0.5, 0.8, 0.5]);
    for i in 0..2 {
        ctx.put(&format!("{}c{i}.wav", ctx.prefix), speech.wav())
            .await;
    }
    let with_endpoint = |binary: &str| {
        let mut c = keyless(&ctx, binary, &home);
        c.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token");
        c
    };

    // register lists the bucket with the endpoint's credentials.
    let target = format!("s3://{BUCKET}/{}", ctx.prefix);
    let (code, out, err) = run(with_endpoint("producer"), &["register", &target]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("found=2 inserted=2"), "{out}");
    assert!(served.load(Ordering::SeqCst) >= 1, "the endpoint was asked");
    let logged = err
        .lines()
        .find(|l| l.contains(S3_CREDENTIALS))
        .unwrap_or_else(|| panic!("the credential source is logged: {err}"));
    assert!(
        logged.contains("container credentials endpoint"),
        "{logged}"
    );
    assert!(!err.contains(&secret), "the secret is never logged");

    // The worker starts with no static key and does its jobs with the endpoint's credentials.
    let (code, out, err) = run(with_endpoint("producer"), &["enqueue", "--since", "1h"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let mut worker = with_endpoint("worker");
    let worker = worker
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn worker");
    let collector = ctx.spawn_collector();
    let rows = ctx
        .wait_files("both files done", |rows| {
            rows.iter().all(|r| r.status == "done")
        })
        .await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let prefix = row.result_prefix.as_deref().expect("prefix");
        assert!(ctx.get(&format!("{prefix}segments.json")).await.is_some());
    }
    assert_eq!(terminate(worker).await, Some(0));
    collector.stop().await.expect("collector stops");

    // The credentials really come from the endpoint: a wrong secret there is refused by S3.
    let (bad_url, _) = credentials_endpoint(&id, "not-the-secret", "pod-identity-token").await;
    let mut c = keyless(&ctx, "producer", &home);
    c.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &bad_url)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token");
    let (code, _, err) = run(c, &["register", &target]).await;
    assert_ne!(code, Some(0), "S3 refuses a wrong secret");
    assert!(err.contains("access-denied"), "{err}");
    // And an endpoint that refuses the pod's token ends the start with its error.
    let mut c = keyless(&ctx, "producer", &home);
    c.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "someone-else");
    let (code, _, err) = run(c, &["register", &target]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("container credentials endpoint"), "{err}");
    let _ = std::fs::remove_dir_all(home);
    ctx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_profile_works_and_a_missing_one_fails_fast() {
    let ctx = TestCtx::new("creds-profile").await;
    let home = home(&ctx);
    let s3 = &ctx.stack.s3;
    let secret = s3
        .secret_access_key
        .as_ref()
        .expect("local secret")
        .expose()
        .to_owned();
    std::fs::write(
        home.join("credentials"),
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
             [vadflow-ci]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
            s3.access_key_id.as_deref().expect("local key")
        ),
    )
    .expect("write credentials");
    std::fs::write(
        home.join("config"),
        "[profile vadflow-ci]\nregion = us-east-1\n",
    )
    .expect("write config");
    ctx.put(&format!("{}p.wav", ctx.prefix), vec![1, 2, 3])
        .await;
    let target = format!("s3://{BUCKET}/{}", ctx.prefix);
    let with_files = |profile: &str| {
        let mut c = keyless(&ctx, "producer", &home);
        c.env("AWS_CONFIG_FILE", home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
            .env("AWS_PROFILE", profile)
            .env_remove("AWS_REGION");
        c
    };

    let (code, out, err) = run(with_files("vadflow-ci"), &["register", &target]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("found=1 inserted=1"), "{out}");
    let logged = err
        .lines()
        .find(|l| l.contains(S3_CREDENTIALS))
        .expect("the source is logged");
    assert!(logged.contains("profile"), "{logged}");

    // The default profile's keys are wrong: the named profile was what made it work.
    let (code, _, err) = run(with_files("default"), &["register", &target]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("access-denied"), "{err}");

    let started = Instant::now();
    let (code, _, err) = run(with_files("no-such-profile"), &["register", &target]).await;
    assert_ne!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "fails fast, not after retries"
    );
    assert!(err.contains("no-such-profile"), "names the profile: {err}");
    let _ = std::fs::remove_dir_all(home);
    ctx.cleanup().await;
}

/// With nothing configured, the start fails at once and lists what it tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_anywhere_is_a_clear_error() {
    let ctx = TestCtx::new("creds-none").await;
    let home = home(&ctx);
    let target = format!("s3://{BUCKET}/{}", ctx.prefix);
    let (code, _, err) = run(keyless(&ctx, "producer", &home), &["register", &target]).await;
    assert_ne!(code, Some(0));
    assert!(err.contains("no S3 credentials"), "{err}");
    assert!(
        err.contains("container credentials endpoint"),
        "lists the sources tried: {err}"
    );
    assert!(!err.contains("instance metadata"), "metadata is off: {err}");
    let _ = std::fs::remove_dir_all(home);
    ctx.cleanup().await;
}
