//! No secret reaches the logs: runs of both binaries whose configured URLs and keys carry
//! passwords, at debug level, through success and through authentication failures.

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, BufReader};
use vadflow_tests::{BUCKET, DEADLINE, TestCtx};

const DB_SECRET: &str = "Pg-S3cret-7731";
const AMQP_SECRET: &str = "Amqp-S3cret-9913";
const S3_SECRET_MARK: &str = "vadflow-dev-secret";

fn assert_clean(what: &str, log: &str) {
    for secret in [DB_SECRET, AMQP_SECRET, S3_SECRET_MARK] {
        assert!(
            !log.contains(secret),
            "{what}: a secret appears in the log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configured_passwords_never_appear_in_logs() {
    let ctx = TestCtx::new("secrets").await;
    assert_eq!(
        ctx.stack.s3.secret_access_key, S3_SECRET_MARK,
        "this test checks the local stack's S3 secret"
    );
    // The local PostgreSQL trusts loopback, so a password in the URL is accepted and ignored:
    // a successful run with a secret in its configuration.
    let db_url =
        ctx.stack
            .database_url
            .replacen("vadflow:vadflow@", &format!("vadflow:{DB_SECRET}@"), 1);
    assert!(
        db_url.contains(DB_SECRET),
        "unexpected DATABASE_URL {db_url}"
    );
    let (user_amqp, _) = ctx
        .stack
        .amqp_url
        .split_once('@')
        .expect("AMQP URL with credentials");
    let (scheme_user, _) = user_amqp.rsplit_once(':').expect("user:password");
    let bad_amqp =
        ctx.stack
            .amqp_url
            .replacen(user_amqp, &format!("{scheme_user}:{AMQP_SECRET}"), 1);

    let key = format!("{}a.wav", ctx.prefix);
    ctx.put(
        &key,
        vadflow_tests::audio::compose(&[vadflow_tests::audio::SENTENCES[0]], &[0.2, 0.2]).wav(),
    )
    .await;

    // register (S3 and PostgreSQL, succeeds) and enqueue (fails on the broker's password).
    let out = ctx
        .command("producer")
        .args(["register", &format!("s3://{BUCKET}/{key}")])
        .env("DATABASE_URL", &db_url)
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("register");
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "register failed:\n{log}");
    assert_clean("register", &log);
    assert!(ctx.files().await.len() == 1);
    sqlx::query("UPDATE audio_files SET created_at = $1")
        .bind(Utc::now() - chrono::Duration::minutes(5))
        .execute(&ctx.pool)
        .await
        .expect("backdate");

    let out = ctx
        .command("producer")
        .args(["enqueue", "--since", "1h"])
        .env("DATABASE_URL", &db_url)
        .env("AMQP_URL", &bad_amqp)
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("enqueue");
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "enqueue must fail on a wrong password:\n{log}"
    );
    assert!(
        log.contains("127.0.0.1"),
        "the error names the broker:\n{log}"
    );
    assert_clean("enqueue", &log);

    // The worker, retrying a broker that refuses its password.
    let mut worker = ctx
        .command("worker")
        .env("AMQP_URL", &bad_amqp)
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn worker");
    let mut lines = BufReader::new(worker.stderr.take().expect("stderr")).lines();
    let mut log = String::new();
    let mut failures = 0;
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read log") {
            if line.contains("cannot reach the broker") {
                failures += 1;
            }
            log.push_str(&line);
            log.push('\n');
            if failures == 2 {
                break;
            }
        }
    })
    .await
    .expect("the worker reports the broker failure");
    assert_eq!(failures, 2, "{log}");
    vadflow_tests::signal(&worker, "-TERM");
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    let status = worker.wait().await.expect("wait");
    assert_eq!(status.code(), Some(0), "{log}");
    assert_clean("worker", &log);
    ctx.cleanup().await;
}
